"""Benchmark: the dataset group at real size, against the default dataset in the same run.

For the ``default`` preset (the baseline: 3,000 cells) and the ``large`` preset (10x-Multiome
sized: 50,000 cells, 20,000 genes, ~100,000 peaks), it writes the simulated ``.h5mu`` with
``regnet simulate`` and then materializes the whole dataset group through Dagster with
``regnet run --dataset FILE --select group:dataset``, each in its own process, and prints
wall time and peak memory (largest single process, and the whole process tree, sampled every
0.2 s), and each step's time from Dagster's step stats with its large / default ratio.
Targets (issue #14): the dataset group <= 10 min wall and <= 8 GiB peak RSS on 2 CPU cores.

    python bench/bench_scale.py                   # default vs large (about 15 min on 2 cores)
    python bench/bench_scale.py --cells 10000     # a smaller large preset
    python bench/bench_scale.py --keep DIR --reuse   # the dataset group again on DIR's files
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
REGNET = [sys.executable, "-m", "regnet_assets.cli"]


def _measure(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; its wall seconds, peak RSS of one process and of the whole tree (GiB)."""
    start = time.perf_counter()
    proc = psutil.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    single = tree = 0
    while proc.poll() is None:
        try:
            procs = [proc, *proc.children(recursive=True)]
            rss = [p.memory_info().rss for p in procs]
        except psutil.Error:
            continue
        single, tree = max(single, *rss), max(tree, sum(rss))
        time.sleep(0.2)
    out = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    return {"seconds": time.perf_counter() - start, "rss_gib": single / 2**30, "tree_gib": tree / 2**30}


def _step_seconds(storage: Path, since: float = 0.0) -> dict[str, float]:
    """Each step's seconds, summed over the runs of the storage's Dagster instance that started
    after ``since`` (``regnet run`` makes one run per wave of dependencies and gene batch)."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(storage / "dagster_home")
    seconds: dict[str, float] = {}
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs():
            for s in instance.get_run_step_stats(run.run_id):
                if s.start_time and s.end_time and s.start_time >= since:
                    seconds[s.step_key] = seconds.get(s.step_key, 0.0) + s.end_time - s.start_time
    return seconds


def _sizes(path: Path) -> dict[str, int]:
    import h5py

    with h5py.File(path, "r") as f:
        return {
            "cells": int(f["mod/rna/X"].attrs["shape"][0]),
            "genes": int(f["mod/rna/X"].attrs["shape"][1]),
            "peaks": int(f["mod/atac/X"].attrs["shape"][1]),
            "atac_nnz": int(f["mod/atac/X/data"].shape[0]),
        }


def measure(preset: str, folder: Path, cells: int | None, reuse: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["PYTHONWARNINGS"] = "ignore"
    path = folder / f"{preset}.h5mu"
    if reuse and path.exists():  # measure the dataset group again on the file written before
        simulate = {"seconds": float("nan"), "rss_gib": float("nan"), "tree_gib": float("nan")}
    elif preset == "large" and cells:  # a smaller large preset: same settings, fewer cells
        code = (
            "from regnet_assets.science.dataset.simulator import SimulationConfig, write_simulated;"
            f"write_simulated({str(path)!r}, SimulationConfig.large(n_cells={cells}))"
        )
        simulate = _measure([sys.executable, "-c", code], env)
    else:
        simulate = _measure([*REGNET, "simulate", str(path), "--preset", preset], env)
    storage = folder / f"storage_{preset}"
    shutil.rmtree(storage, ignore_errors=True)
    group = _measure(
        [*REGNET, "run", "--storage", str(storage), "--dataset", str(path), "--select", "group:dataset"], env
    )
    return {"sizes": _sizes(path), "simulate": simulate, "group": group, "steps": _step_seconds(storage)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=None, help="cells of the large preset (50,000)")
    parser.add_argument("--keep", help="folder to keep the files and results in (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="reuse the .h5mu files already in --keep")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench_scale_"))
    folder.mkdir(parents=True, exist_ok=True)
    results = {p: measure(p, folder, args.cells, args.reuse) for p in ("default", "large")}
    base, large = results["default"], results["large"]
    print(f"\n{'':28}{'default':>12}{'large':>12}{'ratio':>8}")
    for key in ("cells", "genes", "peaks", "atac_nnz"):
        a, b = base["sizes"][key], large["sizes"][key]
        print(f"{key:28}{a:>12,}{b:>12,}{b / a:>8.1f}")
    for phase in ("simulate", "group"):
        for key, unit in (("seconds", "s"), ("rss_gib", "GiB"), ("tree_gib", "GiB")):
            a, b = base[phase][key], large[phase][key]
            print(f"{phase + ' ' + key + ' (' + unit + ')':28}{a:>12.2f}{b:>12.2f}{b / a:>8.1f}")
    for step in sorted(large["steps"]):
        a, b = base["steps"].get(step, float("nan")), large["steps"][step]
        print(f"{'  step ' + step + ' (s)':28}{a:>12.1f}{b:>12.1f}{b / a:>8.1f}")
    ok = large["group"]["seconds"] <= 600 and large["group"]["rss_gib"] <= 8
    print(f"\ntarget (group <= 600 s, <= 8 GiB per process): {'met' if ok else 'NOT met'}")
    (folder / "bench_scale.json").write_text(json.dumps(results, indent=2))
    print(f"results: {folder / 'bench_scale.json'}")


if __name__ == "__main__":
    main()
