"""Benchmark: per-gene model quality against the oracle ceiling on a simulated dataset.

Runs the dataset and ``models`` groups through the platform (``run_graph``, what ``regnet run``
does) for each learning rate asked for, on the same simulated dataset, and prints per run the
median valid Spearman, the median oracle ceiling (observed valid counts vs the simulator's true
rates: the best any model can do), the median per-gene fraction of it (the baseline measured in
the same run), and where the best epochs fell.

    python bench/bench_quality.py                                  # make run's default dataset
    python bench/bench_quality.py --cells 6000 --genes 48 --metacells 400 --lr 1e-4 1e-3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import dagster as dg  # noqa: E402

from regnet_assets.defs.resources import DatasetResource  # noqa: E402
from regnet_assets.operations.runner import run_graph  # noqa: E402
from regnet_assets.storage import read_table  # noqa: E402


def measure(dataset: DatasetResource, metacells: int, lr: float, epochs: int) -> dict:
    config = {
        "ops": {
            "metacell_multiome": {"config": {"n_metacells": metacells}},
            "gene_models": {"config": {"lr": lr, "epochs": epochs}},
        }
    }
    with tempfile.TemporaryDirectory() as folder, dg.instance_for_test() as instance:
        started = time.perf_counter()
        summary = run_graph(
            instance,
            Path(folder),
            dataset,
            device="cpu",
            echo=lambda _: None,
            select="group:dataset, group:models",
            run_config=config,
            progress=lambda _: None,
        )
        if summary.failures:
            raise SystemExit(f"run failed: {summary.failures}")
        perf = read_table(Path(folder), "model_performance").iloc[0]
        return {
            "lr": lr,
            "genes": int(perf["n_genes"]),
            "valid": perf["valid_spearman_median"],
            "oracle": perf["oracle_spearman_median"],
            "fraction": perf["fraction_of_oracle_median"],
            "best_epoch": perf["best_epoch_median"],
            "at_last": int(perf["n_best_at_last_epoch"]),
            "seconds": time.perf_counter() - started,
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=0, help="simulated cells (0 = the default's)")
    parser.add_argument("--genes", type=int, default=0, help="simulated target genes (0 = the default's)")
    parser.add_argument("--metacells", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-4])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    dataset = DatasetResource(n_cells=args.cells, n_target_genes=args.genes, seed=args.seed)
    sim = dataset.simulation_config()
    print(
        f"simulated: {sim.n_cells} cells, {sim.n_target_genes} target genes; {args.metacells} metacells, "
        f"{args.epochs} epochs"
    )
    print(
        f"{'lr':>8} {'genes':>5} {'valid':>7} {'oracle':>7} {'valid/oracle':>12} {'best epoch':>10} "
        f"{'at last':>7} {'seconds':>7}"
    )
    for lr in args.lr:
        r = measure(dataset, args.metacells, lr, args.epochs)
        print(
            f"{r['lr']:>8g} {r['genes']:>5} {r['valid']:>7.3f} {r['oracle']:>7.3f} {r['fraction']:>11.3f}x "
            f"{r['best_epoch']:>10.1f} {r['at_last']:>7} {r['seconds']:>7.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
