"""Benchmark: the fan-ins over every gene's attributions, streamed vs loaded.

``regulatory_network``, ``grn_recovery``, ``embeddings`` and ``gene_programs`` reduce the whole
``tf_attribution`` table (gene × metacell × candidate TF). The baseline is how they did it
before: load every partition into one DataFrame (``read_table``) and reduce it with a pandas
groupby. Ours reduces the Parquet files in DuckDB without loading them (``science/tables.py``).
Both compute the edge scores and the TF activity matrix; each runs in its own process so that
its peak memory (max RSS) is its own. The ratio is baseline / ours, for time and for memory.

    python bench/bench_fanin.py --genes 1000 --metacells 400 --tfs 20
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from regnet_assets.storage import read_table, write_table  # noqa: E402
from regnet_assets.storage.parquet import table_files  # noqa: E402


def write_attributions(root: Path, genes: int, metacells: int, tfs: int, seed: int = 0) -> int:
    """One partition per gene, as the attribution step writes them; returns the rows."""
    rng = np.random.default_rng(seed)
    names = np.array([f"mc{m}" for m in range(metacells)])
    for g in range(genes):
        own = rng.choice(tfs * 3, size=tfs, replace=False)  # each gene has its own candidate TFs
        frame = pd.DataFrame(
            {
                "gene": f"G{g}",
                "metacell": np.repeat(names, tfs),
                "tf": np.tile([f"TF{t}" for t in own], metacells),
                "attribution": rng.normal(size=metacells * tfs),
            }
        )
        write_table(root, "tf_attribution", frame, key=f"G{g}")
    return genes * metacells * tfs


def loaded(root: Path) -> tuple:
    """The baseline: the whole table as a DataFrame, then pandas."""
    a = read_table(root, "tf_attribution")
    g = a.assign(abs_attr=a["attribution"].abs()).groupby(["tf", "gene"])
    scores = pd.DataFrame({"score": g["abs_attr"].mean(), "mean_attr": g["attribution"].mean()}).reset_index()
    a["aligned"] = np.sign(a.groupby(["gene", "tf"])["attribution"].transform("mean")) * a["attribution"]
    activity = a.pivot_table(index="metacell", columns="tf", values="aligned", aggfunc="mean")
    return scores, activity


def streamed(root: Path) -> tuple:
    from regnet_assets.science.attribution.grn import edge_scores
    from regnet_assets.science.reports.matrices import tf_activity

    files = table_files(root, "tf_attribution")
    return edge_scores(files), tf_activity(files)


def _child(way: str, root: str) -> None:
    t0 = time.perf_counter()
    scores, activity = {"loaded": loaded, "streamed": streamed}[way](Path(root))
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    print(
        json.dumps(
            {
                "seconds": seconds,
                "max_rss_mib": rss,
                "edges": len(scores),
                "score_sum": float(scores["score"].sum()),
                "activity_shape": list(activity.shape),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--metacells", type=int, default=400)
    parser.add_argument("--tfs", type=int, default=20, help="candidate TFs per gene")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(*args.child)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rows = write_attributions(Path(tmp), args.genes, args.metacells, args.tfs)
        print(
            f"tf_attribution: {args.genes:,} genes × {args.metacells:,} metacells × {args.tfs} TFs = "
            f"{rows:,} rows in {args.genes:,} files (written in {time.perf_counter() - t0:.1f} s)"
        )
        out = {}
        for way in ("loaded", "streamed"):
            done = subprocess.run(
                [sys.executable, __file__, "--child", way, tmp], capture_output=True, text=True, check=True
            )
            out[way] = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"  {way:9s} {out[way]['seconds']:7.2f} s  {out[way]['max_rss_mib']:8.0f} MiB peak  "
                f"{out[way]['edges']:,} edges, activity {out[way]['activity_shape']}"
            )
    base, ours = out["loaded"], out["streamed"]
    same = base["edges"] == ours["edges"] and np.isclose(base["score_sum"], ours["score_sum"], rtol=1e-9)
    print(
        f"ratio loaded/streamed: time {base['seconds'] / ours['seconds']:.1f}×, "
        f"peak memory {base['max_rss_mib'] / ours['max_rss_mib']:.1f}× (same edge scores: {same})"
    )


if __name__ == "__main__":
    main()
