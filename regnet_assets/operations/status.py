"""``regnet status``: one line per asset with its state and, for gene assets, counts and examples."""

import dagster as dg

from regnet_assets.defs.definitions import ALL_ASSETS, defs
from regnet_assets.defs.instance import asset_statuses
from regnet_assets.defs.partitions import GENES


def status_lines(instance: dg.DagsterInstance, examples: int = 5) -> list[str]:
    """The status report, grouped by asset group: a header, one row per asset, the totals."""
    graph = defs.resolve_asset_graph()
    statuses = asset_statuses(instance, ALL_ASSETS)
    genes = len(instance.get_dynamic_partitions(GENES))
    rows = []
    for key, st in sorted(
        statuses.items(), key=lambda kv: (graph.get(kv[0]).group_name or "", kv[0].to_user_string())
    ):
        if st.partitioned:
            detail = (
                f"{len(st.materialized)}/{genes} genes materialized, {len(st.stale)} stale, "
                f"{len(st.failed)} failed, {len(st.missing)} missing"
            )
            shown = [
                f"{name}: {', '.join(getattr(st, name)[:examples])}"
                for name in ("failed", "stale")
                if getattr(st, name)
            ]
            if shown:
                detail += "  (" + "; ".join(shown) + ")"
        else:
            detail = f"newer inputs: {', '.join(st.stale_because)}" if st.stale else ""
        rows.append((graph.get(key).group_name or "", key.to_user_string(), st.state, detail))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{'group':<{width[0]}}  {'asset':<{width[1]}}  {'state':<{width[2]}}  detail"]
    lines += [f"{g:<{width[0]}}  {n:<{width[1]}}  {s:<{width[2]}}  {d}" for g, n, s, d in rows]
    counts = {s: sum(1 for r in rows if r[2] == s) for s in ("materialized", "stale", "missing", "failed")}
    return [*lines, "", ", ".join(f"{n} {s}" for s, n in counts.items())]
