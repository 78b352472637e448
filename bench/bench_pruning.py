"""Benchmark: minimal KPNN DAG on the real human network, structural vs acyclic-flow MILP.

Both formulations go through cvxpy + HiGHS with the same time limit and gap settings, in one run,
on networks built by ``human_kpnn`` (genes -> DoRothEA TFs -> signalling PKN -> TCR). The
acyclic-flow model (CORNETO's formulation) is the baseline; the ratio is baseline / structural.

    python bench/bench_pruning.py --time-limit 60
    python bench/bench_pruning.py --networks ABCDE:dag --time-limit 30 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from regnet_assets.science.network.pkn import human_kpnn, input_nodes  # noqa: E402
from regnet_assets.science.network.pruning import PruningError, inputs_reach_root, prune_to_minimal_dag  # noqa: E402


def _fmt(v, nd=3):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def run(networks: list[str], time_limit: float) -> list[dict]:
    rows = []
    for spec in networks:
        conf, _, kind = spec.partition(":")
        kind = kind or "dag"
        if kind not in {"dag", "cyclic"}:
            raise SystemExit(f"network kind must be 'dag' or 'cyclic', got {kind!r} in {spec!r}")
        t0 = time.perf_counter()
        edges = human_kpnn(confidence=conf, acyclic=(kind == "dag"))
        inputs = input_nodes(edges)
        t_net = time.perf_counter() - t0
        n_nodes = len(set(edges["source"]) | set(edges["target"]))
        print(
            f"\n== network {conf}:{kind}: {n_nodes:,} nodes, {len(edges):,} edges, {len(inputs):,} gene inputs, "
            f"{n_nodes - len(inputs):,} neurons (built in {t_net:.1f} s)"
        )
        per = {}
        for method in ("structural", "acyclic_flow"):
            t1 = time.perf_counter()
            try:
                res = prune_to_minimal_dag(edges, inputs, "TCR", method=method, time_limit=time_limit)
            except PruningError as exc:
                print(f"  {method:13s} NO SOLUTION: {exc}")
                per[method] = None
                continue
            wall = time.perf_counter() - t1
            s = dict(res.summary)
            s["wall_seconds"] = wall
            s["verified"] = bool(s["result_acyclic"] and inputs_reach_root(res.edges, inputs, "TCR"))
            per[method] = s
            print(
                f"  {method:13s} status={s['status']}\n"
                f"    build {s['build_seconds']:.2f} s (incl. cvxpy compile) | solve {s['solve_seconds']:.2f} s | "
                f"prepare {s['prepare_seconds']:.2f} s | total wall {wall:.2f} s\n"
                f"    objective {s['objective']:,} kept edges | bound {_fmt(s['best_bound'], 0)} | "
                f"gap {_fmt(s['mip_gap'], 5)} (on edges), {_fmt(s['neuron_gap'], 4)} (on kept neurons) | "
                f"HiGHS own: obj {_fmt(s['solver_objective'], 0)}, bound {_fmt(s['solver_bound'], 2)}, "
                f"gap {_fmt(s['solver_mip_gap'], 5)}\n"
                f"    neurons {s['neurons_before']:,} -> {s['neurons_after']:,} | edges {s['edges_before']:,} -> "
                f"{s['edges_after']:,} (-{s['edge_compression_pct']:.1f} %; -{s['edge_compression_with_artificial_pct']:.1f} % "
                f"counting CORNETO's artificial edges) | params {s['params_before']:,} -> {s['params_after']:,} "
                f"(-{s['parameter_compression_pct']:.1f} %) | acyclic & all inputs reach root: {s['verified']}\n"
                f"    model {s['model']}"
            )
        st, fl = per.get("structural"), per.get("acyclic_flow")
        row = {
            "network": spec,
            "nodes": n_nodes,
            "edges": len(edges),
            "inputs": len(inputs),
            **{
                f"{m}_{k}": (per[m] or {}).get(k)
                for m in per
                for k in (
                    "status",
                    "build_seconds",
                    "solve_seconds",
                    "wall_seconds",
                    "objective",
                    "best_bound",
                    "mip_gap",
                    "neuron_gap",
                )
            },
        }
        if st and fl:
            ratio_total = fl["wall_seconds"] / max(st["wall_seconds"], 1e-9)
            ratio_solve = fl["solve_seconds"] / max(st["solve_seconds"], 1e-9)
            ratio_build = fl["build_seconds"] / max(st["build_seconds"], 1e-9)
            lower = "" if fl["status"] == "optimal" else " (>=: the baseline stopped at the time limit)"
            print(
                f"  ratio acyclic_flow / structural: total {ratio_total:,.0f}x, solve {ratio_solve:,.0f}x, "
                f"build {ratio_build:,.1f}x{lower}; objectives {fl['objective']:,} vs {st['objective']:,} "
                f"(structural {'≤' if st['objective'] <= fl['objective'] else '>'} baseline)"
            )
            row.update(ratio_total=ratio_total, ratio_solve=ratio_solve, ratio_build=ratio_build)
        rows.append(row)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--time-limit", type=float, default=60.0, help="HiGHS time limit per solve, seconds (default 60)"
    )
    ap.add_argument(
        "--networks",
        default="ABC:dag,ABCDE:dag,ABC:cyclic",
        help="comma list of <DoRothEA confidence>:<dag|cyclic> (default ABC:dag,ABCDE:dag,ABC:cyclic)",
    )
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    from importlib.metadata import version

    import cvxpy
    import highspy  # noqa: F401

    print(f"bench_pruning: {' '.join(sys.argv)}")
    print(
        f"python {platform.python_version()}, cvxpy {cvxpy.__version__}, highspy {version('highspy')}, "
        f"time limit {args.time_limit:g} s, reference KPNN size: 12,767 nodes / 25,928 edges"
    )
    rows = run([s.strip() for s in args.networks.split(",") if s.strip()], args.time_limit)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))
    return rows


if __name__ == "__main__":
    main()
