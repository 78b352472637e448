"""Which runs made the results in storage now, with what settings, and which asset made each figure.

Read from the instance's event log: for each asset (each gene partition of a partitioned one),
the run of its latest materialization; for each such run, the effective config of its ops
(what was given plus every default, so a reader needs no regnet to know the settings), its
partition range and its start time; and the dataset settings recorded by ``multiome``.
"""

from collections.abc import Iterable
from datetime import UTC

import dagster as dg
from dagster._config import process_config

from regnet_assets.defs.instance import latest_runs
from regnet_assets.defs.partitions import GENES

RUN_TAGS = (
    "dagster/asset_partition_range_start",
    "dagster/asset_partition_range_end",
    "dagster/backfill",
    "dagster/sensor_name",
    "regnet/trigger",
)


def effective_config(assets_def: dg.AssetsDefinition, given: dict | None) -> dict | None:
    """The op's config with its defaults filled in (``None`` when the op takes no config)."""
    schema = assets_def.op.config_schema
    if schema is None or schema.config_type is None:
        return None
    result = process_config(schema.config_type, given or {})
    return result.value if result.success else given


def run_provenance(instance: dg.DagsterInstance, defs: dg.Definitions, keys: Iterable[dg.AssetKey]) -> dict:
    """``{"dataset": ..., "runs": [...]}`` for the latest materializations of ``keys``."""
    graph = defs.resolve_asset_graph()
    genes = instance.get_dynamic_partitions(GENES)
    runs: dict[str, dict] = {}
    for key in keys:
        partitioned = graph.get(key).partitions_def is not None
        for partition, run_id in latest_runs(instance, key, genes if partitioned else None).items():
            entry = runs.setdefault(run_id, {"assets": set(), "partitions": set()})
            entry["assets"].add(key)
            if partition is not None:
                entry["partitions"].add(partition)
    out = []
    for run_id, entry in runs.items():
        run = instance.get_run_by_id(run_id)
        if run is None:  # deleted from the instance
            continue
        given = (run.run_config or {}).get("ops", {})
        config = {}
        for key in sorted(entry["assets"], key=lambda k: k.to_user_string()):
            assets_def = defs.get_assets_def(key)
            name = assets_def.op.name
            if name not in config:
                value = effective_config(assets_def, given.get(name, {}).get("config"))
                if value:  # ops without settings are left out
                    config[name] = value
        stats = instance.get_run_stats(run_id)
        parts = sorted(entry["partitions"])
        out.append(
            {
                "run_id": run_id,
                "started": None if stats.start_time is None else _iso(stats.start_time),
                "status": run.status.value,
                "assets": sorted(k.to_user_string() for k in entry["assets"]),
                **({"n_genes": len(parts), "genes": parts} if parts else {}),
                "config": config,
                "tags": {k: v for k, v in run.tags.items() if k in RUN_TAGS},
            }
        )
    out.sort(key=lambda r: (r["started"] or "", r["run_id"]))
    return {"dataset": _dataset_settings(instance), "runs": out}


def figure_descriptions(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, str]:
    """``{figure: "made by `asset`: its description"}`` for the figures of the latest materializations."""
    graph = defs.resolve_asset_graph()
    figures = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        event = instance.get_latest_materialization_event(key)
        if event is None or event.asset_materialization is None:
            continue
        description = " ".join((graph.get(key).description or "").split())
        for name in event.asset_materialization.metadata:
            if name.endswith("_png"):
                figures[name[:-4]] = f"made by `{key.to_user_string()}`: {description}"
    return figures


def _dataset_settings(instance: dg.DagsterInstance) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey("multiome"))
    if event is None or event.asset_materialization is None:
        return {}
    meta = event.asset_materialization.metadata
    value = meta.get("dataset_config")
    return dict(value.value) if value is not None else {}


def _iso(timestamp: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")
