"""The one expression normalisation: log1p of counts per 10,000 of the row's total.

scanpy's ``normalize_total(target_sum=1e4)`` followed by ``log1p``; every stage (model inputs,
correlation baselines, embeddings, KPNN inputs) uses this function so their scales agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

CP10K = 1e4


def row_totals(x) -> np.ndarray:
    """Row sums of a dense or sparse matrix as float64 (never densifies ``x``)."""
    return np.asarray(x.sum(axis=1)).ravel().astype(np.float64)


def log_cp10k(counts, totals=None, dtype=np.float64) -> np.ndarray:
    """Dense ``log1p(counts / total * 1e4)``; ``totals`` default to the row sums of ``counts``.

    Rows with a zero total stay 0. ``counts`` may be sparse: only this (already column-subset)
    block is densified.
    """
    x = counts.toarray() if sparse.issparse(counts) else np.asarray(counts)
    x = x.astype(np.float64, copy=False)
    tot = x.sum(axis=1) if totals is None else np.asarray(totals, dtype=np.float64)
    scale = np.divide(CP10K, tot, out=np.zeros_like(tot), where=tot > 0)
    return np.log1p(x * scale[:, None]).astype(dtype, copy=False)


def expression_frame(adata, genes: Sequence[str] | None = None) -> pd.DataFrame:
    """An AnnData's log1p CP10k expression as obs x genes (totals over *all* its genes)."""
    x = adata.X
    totals = row_totals(x)
    names = pd.Index(adata.var_names.astype(str))
    if genes is not None:
        idx = names.get_indexer(list(genes))
        if (idx < 0).any():
            raise ValueError(f"genes not measured: {[g for g, i in zip(genes, idx) if i < 0][:5]}")
        x, names = x[:, idx], names[idx]
    return pd.DataFrame(log_cp10k(x, totals), index=pd.Index(adata.obs_names.astype(str)), columns=names)
