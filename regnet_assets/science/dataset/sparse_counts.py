"""Sparse negative-binomial counts drawn by inverse CDF, so only the non-zeros cost work.

Why: a 10x-sized simulation has ~5e9 cell x peak entries, > 90 % of them zero. Gamma-Poisson
draws two variates for every entry; here each entry costs one uniform ``u`` and a comparison
with P(X = 0), and only the entries with ``u > P(0)`` are walked up the CDF. Each count is
``F^-1(u)`` of its own uniform, so the counts do not depend on how cells are blocked.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy import stats

__all__ = ["nb_zero_probability", "sparse_nb_counts"]

_MAX_WALK = 32  # CDF steps walked in numpy; the few larger counts go to scipy's quantile


def nb_zero_probability(mean: np.ndarray, dispersion: float) -> np.ndarray:
    """P(X = 0) of NB(mean, dispersion), var = mean + dispersion * mean**2 (Poisson at 0)."""
    if dispersion <= 0:
        return np.exp(-mean)
    return np.exp(-np.log1p(dispersion * mean) / dispersion)


def _quantile(u: np.ndarray, mean: np.ndarray, dispersion: float) -> np.ndarray:
    """Smallest k >= 1 with CDF(k) >= u, for entries already known to have u > P(0)."""
    poisson = dispersion <= 0
    r = np.inf if poisson else 1.0 / dispersion
    q = None if poisson else dispersion * mean / (1.0 + dispersion * mean)
    pmf = nb_zero_probability(mean, dispersion)
    cdf = pmf.copy()
    out = np.zeros(u.size, dtype=np.int64)
    idx = np.arange(u.size)
    for k in range(1, _MAX_WALK + 1):
        pmf = pmf * (mean[idx] / k if poisson else (k - 1 + r) / k * q[idx])
        cdf = cdf + pmf
        done = u[idx] <= cdf
        out[idx[done]] = k
        idx, pmf, cdf = idx[~done], pmf[~done], cdf[~done]
        if not idx.size:
            return out
    if poisson:
        out[idx] = stats.poisson.ppf(u[idx], mean[idx])
    else:
        out[idx] = stats.nbinom.ppf(u[idx], r, 1.0 - q[idx])
    return out


def sparse_nb_counts(u: np.ndarray, mean: np.ndarray, dispersion: float) -> sp.csr_matrix:
    """NB(``mean``, ``dispersion``) counts ``F^-1(u)`` as a float32 CSR matrix with no stored zeros.

    ``u`` are uniforms in [0, 1) of the same shape as ``mean`` (rows x columns).
    """
    if u.shape != mean.shape:
        raise ValueError(f"u has shape {u.shape}, expected the shape of mean {mean.shape}")
    rows, cols = np.nonzero(u > nb_zero_probability(mean, dispersion))
    values = _quantile(u[rows, cols].astype(np.float64), mean[rows, cols].astype(np.float64), dispersion)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=mean.shape[0]))])
    return sp.csr_matrix(
        (values.astype(np.float32), cols.astype(np.int32), indptr.astype(np.int32)), shape=mean.shape
    )
