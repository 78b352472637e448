"""Small synthetic per-gene inputs and checkpoints for tests and benchmarks (not a biological
simulator; the dataset simulator lives in ``science.dataset``)."""

from __future__ import annotations

import numpy as np

from regnet_assets.science.models.checkpoint import GeneCheckpoint
from regnet_assets.science.models.inputs import GeneInputs
from regnet_assets.science.models.module import BatchedGeneModel


def synthetic_gene_inputs(
    n_genes: int,
    n_metacells: int = 400,
    peaks: tuple[int, int] = (20, 40),
    tfs: tuple[int, int] = (5, 15),
    seq_len: int | None = 256,
    valid_fraction: float = 0.2,
    signal: float = 1.0,
    seed: int = 0,
) -> list[GeneInputs]:
    """Small synthetic genes sharing one set of metacells and one split.

    Each gene's log-rate is ``log(20) + signal·(0.8·z(TF 0) + 0.5·z(acc peak 0) − 0.5·z(acc
    peak 1))``; with ``signal=0`` the target is pure noise. Metacells and the split are shared.
    """
    rng = np.random.default_rng(seed)
    m = n_metacells
    train = np.zeros(m, bool)
    train[rng.permutation(m)[: m - max(2, int(round(valid_fraction * m)))]] = True
    depth = rng.normal(4.0, 0.2, size=(m, 2)).astype(np.float32)
    names = [f"mc{i}" for i in range(m)]
    out = []
    for g in range(n_genes):
        p = int(rng.integers(peaks[0], peaks[1] + 1))
        t = int(rng.integers(tfs[0], tfs[1] + 1))
        acc = np.log1p(rng.gamma(1.5, 2.0, size=(m, p))).astype(np.float32)
        tf = np.log1p(rng.gamma(2.0, 3.0, size=(m, t))).astype(np.float32)

        def z(v):
            return (v - v.mean()) / (v.std() + 1e-8)

        eta = np.log(20.0) + signal * (0.8 * z(tf[:, 0]) + 0.5 * z(acc[:, 0]) - 0.5 * z(acc[:, 1]))
        y = rng.poisson(np.exp(eta)).astype(np.float32)
        out.append(
            GeneInputs(
                gene=f"G{g:05d}",
                peak_names=[f"chr1:{g * 10_000 + 300 * j}-{g * 10_000 + 300 * j + 256}" for j in range(p)],
                peak_seq=None if seq_len is None else rng.integers(0, 4, size=(p, seq_len), dtype=np.uint8),
                peak_acc=acc,
                peak_dist=np.sort(rng.integers(0, 500_000, size=p)).astype(np.float32),
                tf_names=[f"TF{j}" for j in range(t)],
                tf_exp=tf,
                covariates=depth,
                target=y,
                train=train.copy(),
                metacells=names,
                covariate_names=["total_counts_rna_log", "total_counts_atac_log"],
            )
        )
    return out


def checkpoint_of(model: BatchedGeneModel, inputs: list[GeneInputs]) -> list[GeneCheckpoint]:
    """One checkpoint per gene of a hand-built ``model``, named after the genes' ``inputs``."""
    return [
        GeneCheckpoint(
            gene=x.gene,
            spec=model.spec,
            peak_names=list(x.peak_names),
            tf_names=list(x.tf_names),
            covariate_names=x.covariate_names,
            state_dict=model.gene_state_dict(g),
        )
        for g, x in enumerate(inputs)
    ]
