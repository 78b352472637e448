"""Benchmark: the Poisson GLM that starts each gene's TF readout, Newton-Cholesky vs L-BFGS.

The GLM start (``regnet_assets.science.models.glm_start``) fits one scikit-learn
``PoissonRegressor`` per penalty in ``ALPHAS`` and gene. With the L-BFGS solver (scikit-learn's
default, what the product used before) it was half of a batched training run; the product now
uses ``newton-cholesky``. Both solve the same convex problem, so the bench prints the seconds
per gene of each, the ratio, and how far apart the coefficients they return are (a different penalty chosen shows there), on
the same synthetic genes (sized like the default dataset: 400 metacells, 5–60 TFs).

    python bench/bench_glm_start.py --genes 40 --tfs 5 60
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: regnet_assets_tests

from regnet_assets.science.models import glm_start  # noqa: E402
from regnet_assets_tests.synthetic import synthetic_gene_inputs  # noqa: E402


def _standardised(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    sd = x[train].std(0)
    return (x - x[train].mean(0)) / np.where(sd > 1e-8, sd, 1.0)


def _fit_all(genes, solver: str) -> tuple[float, list[tuple[np.ndarray, float]]]:
    glm_start.SOLVER = solver
    started, out = time.perf_counter(), []
    for g in genes:
        train, valid = np.asarray(g.train, bool), g.valid
        tf, cov = _standardised(g.tf_exp, train), _standardised(g.covariates, train)
        out.append(glm_start.poisson_glm_start(tf, cov, g.target, train, valid))
    return (time.perf_counter() - started) / len(genes), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genes", type=int, default=40)
    parser.add_argument("--tfs", type=int, nargs=2, default=(5, 60))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    genes = synthetic_gene_inputs(args.genes, tfs=tuple(args.tfs), seq_len=None, seed=args.seed)
    product = glm_start.SOLVER
    base_s, base = _fit_all(genes, "lbfgs")
    ours_s, ours = _fit_all(genes, product)
    glm_start.SOLVER = product
    rel = [np.abs(a - b).max() / max(np.abs(b).max(), 1e-9) for (a, _), (b, _) in zip(ours, base)]
    print(f"{args.genes} genes, {args.tfs[0]}-{args.tfs[1]} TFs, {len(glm_start.ALPHAS)} penalties each")
    print("| solver | s per gene | ratio |")
    print("|---|---|---|")
    print(f"| lbfgs (baseline) | {base_s:.4f} | 1.0 |")
    print(f"| {product} | {ours_s:.4f} | {base_s / ours_s:.1f}x faster |")
    print(f"max relative coefficient difference {max(rel):.1e} (median {np.median(rel):.1e})")


if __name__ == "__main__":
    main()
