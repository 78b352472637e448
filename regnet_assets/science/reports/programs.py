"""Gene-level interpretation of a model: gene ranks, standardised loadings, dimension importance,
gene programs. Definitions follow InterScale's ``interscale.evaluation`` (see the reference note,
section B); every deviation is stated where it happens.

Conventions: loadings are a genes x dims DataFrame (index = gene, columns = dim ids), like
InterScale's ``.varm[..._std_gene_loadings]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import rankdata

__all__ = [
    "gene_ranks",
    "standardised_loadings",
    "latent_rank_report",
    "dim_uniqueness",
    "dim_importance",
    "expression_stats",
    "program_genes",
    "shared_unique_programs",
]

EPS = 1e-8


# --------------------------------------------------------------------------------------------
# Gene ranks
# --------------------------------------------------------------------------------------------
def gene_ranks(full_scores: pd.Series, ablated_scores: pd.Series) -> pd.DataFrame:
    """Rank genes by how well the full model and the TF-ablated model predict them.

    Ranks are ascending ``rankdata(method="average")`` (InterScale): rank n = best score.
    ``rank_diff = rank_full - rank_ablated``: **positive = relatively better predicted with TFs**,
    i.e. the gene "needs TFs". ``avg_rank = (rank_full + rank_ablated) / 2`` = overall predictability.

    NaN rule (deviation): InterScale ranks with nan_policy="propagate", so one NaN score (e.g. a gene
    with <=1 valid cell) turns *every* rank into NaN. Here only genes with a finite score in *both*
    models are ranked (1..n_valid in both columns, so rank_diff compares like with like); the other
    genes stay in the table with their scores and NaN ranks. Genes absent from either Series are
    dropped (inner join, as InterScale).
    """
    df = pd.concat(
        [full_scores.rename("score_full"), ablated_scores.rename("score_ablated")], axis=1, join="inner"
    )
    df.index.name = "gene"
    df = df.reset_index()
    valid = np.isfinite(df["score_full"].astype(float)) & np.isfinite(df["score_ablated"].astype(float))
    for col, rcol in (("score_full", "rank_full"), ("score_ablated", "rank_ablated")):
        df[rcol] = np.nan
        df.loc[valid, rcol] = rankdata(df.loc[valid, col].astype(float), method="average")
    df["rank_diff"] = df["rank_full"] - df["rank_ablated"]
    df["avg_rank"] = (df["rank_full"] + df["rank_ablated"]) / 2.0
    return df[["gene", "score_full", "score_ablated", "rank_full", "rank_ablated", "rank_diff", "avg_rank"]]


# --------------------------------------------------------------------------------------------
# Standardised loadings
# --------------------------------------------------------------------------------------------
def _design(covariates) -> np.ndarray:
    """Covariates -> numeric design matrix; a 1-D non-numeric array (e.g. batch) is one-hot encoded."""
    c = np.asarray(covariates)
    if c.ndim == 1:
        if np.issubdtype(c.dtype, np.number):
            return c.astype(float)[:, None]
        return pd.get_dummies(pd.Series(c), drop_first=True).to_numpy(float)
    return c.astype(float)


def _residualise(y: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Residuals of each column of y after least squares on [1, c]."""
    d = np.column_stack([np.ones(len(c)), c])
    coef, *_ = np.linalg.lstsq(d, y, rcond=None)
    return y - d @ coef


def standardised_loadings(
    latent: np.ndarray,
    expression,
    gene_names: Sequence[str],
    residualise: np.ndarray | None = None,
    *,
    weights: np.ndarray | None = None,
    eps: float = EPS,
) -> pd.DataFrame:
    """Standardised loading ``S_gk = W_gk * sd(z_k) / sd(x_g)``: change in gene g, in SD units of g,
    per +1 SD of latent dim k. Returns genes x dims.

    ``W`` (genes x dims): InterScale reads it from a trained *linear* decoder. Our models' decoders are
    not all linear, so by default W is fitted here: least squares of expression on the latent with an
    intercept (a linear surrogate decoder). Pass ``weights`` to use a real linear decoder's weights
    instead, which reproduces InterScale exactly. With fitted W,
    ``sum_jk S_gj S_gk Corr(z)_jk`` equals the R^2 of gene g, which is what :func:`dim_importance` splits.

    ``residualise``: optional covariates (n x c, or a 1-D label such as batch, one-hot encoded) regressed
    out of latent and expression first (not in InterScale). By Frisch-Waugh-Lovell, W is then the
    covariate-adjusted effect, and both SDs are within-covariate SDs, so S is the change in a gene's
    residual SD per residual SD of the dim. Why: a dim that only tracks batch should not get loadings.

    Rows with a non-finite latent or expression value are dropped. SDs use ddof=1 and are floored at
    ``eps`` (InterScale). ``expression`` may be scipy.sparse (densified only when residualising).
    """
    z = np.asarray(latent, dtype=float)
    if z.ndim != 2:
        raise ValueError(f"latent must be 2-D (cells x dims), got shape {z.shape}")
    x = expression
    if sparse.issparse(x):
        x = x.tocsr()
        ok = np.isfinite(z).all(axis=1) & np.isfinite(np.asarray(x.sum(axis=1)).ravel())
        x = x[ok]
    else:
        x = np.asarray(x, dtype=float)
        ok = np.isfinite(z).all(axis=1) & np.isfinite(x).all(axis=1)
        x = x[ok]
    z = z[ok]
    if x.shape[1] != len(gene_names):
        raise ValueError(f"expression has {x.shape[1]} genes but {len(gene_names)} gene names")
    if z.shape[0] < 3:
        raise ValueError("need at least 3 cells with finite latent and expression")

    if residualise is not None:
        c = _design(residualise)[ok]
        x = _residualise(x.toarray() if sparse.issparse(x) else x, c)
        z = _residualise(z, c)

    n = z.shape[0]
    sd_z = z.std(axis=0, ddof=1)
    sd_z = np.where(np.isfinite(sd_z) & (sd_z >= eps), sd_z, eps)
    if sparse.issparse(x):
        mean_x = np.asarray(x.mean(axis=0)).ravel()
        var_x = (np.asarray(x.multiply(x).sum(axis=0)).ravel() - n * mean_x**2) / (n - 1)
        sd_x = np.sqrt(np.clip(var_x, 0, None))
    else:
        sd_x = x.std(axis=0, ddof=1)
    sd_x = np.maximum(sd_x, eps)

    if weights is None:
        zs = (z - z.mean(axis=0)) / sd_z  # standardised latent: coefficients are W * sd(z) directly
        cross = np.asarray(x.T @ zs).T if sparse.issparse(x) else zs.T @ x  # dims x genes; zs centred
        gamma, *_ = np.linalg.lstsq(zs.T @ zs, cross, rcond=None)
        s = gamma.T / sd_x[:, None]
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != (len(gene_names), z.shape[1]):
            raise ValueError(f"weights must be genes x dims {(len(gene_names), z.shape[1])}, got {w.shape}")
        s = w * sd_z[None, :] / sd_x[:, None]
    return pd.DataFrame(s, index=pd.Index(list(gene_names), name="gene"), columns=range(z.shape[1]))


def latent_rank_report(latent: np.ndarray, *, center: bool = True, scale: bool = False) -> dict:
    """Numerical rank of the latent (finite rows only), to check that dims are linearly independent
    before reading per-dim loadings: with a rank-deficient latent the fitted loadings are not unique.
    ``np.linalg.matrix_rank`` default tolerance, as InterScale."""
    z = np.asarray(latent, dtype=float)
    z = z[np.isfinite(z).all(axis=1)]
    if center:
        z = z - z.mean(axis=0)
    if scale:
        sd = z.std(axis=0, ddof=1)
        z = z / np.where(sd == 0, 1.0, sd)
    rank = int(np.linalg.matrix_rank(z)) if z.size else 0
    return {
        "n_obs": int(z.shape[0]),
        "n_dims": int(z.shape[1]),
        "rank": rank,
        "linearly_independent": rank == z.shape[1],
    }


def dim_uniqueness(latent: np.ndarray) -> pd.Series:
    """``sqrt(1 - R^2_k)`` of each dim regressed on all other dims (InterScale ``residualize``):
    the share of a dim's SD not explained by the others; 0 where undefined."""
    z = np.asarray(latent, dtype=float)
    z = z[np.isfinite(z).all(axis=1)]
    z = z - z.mean(axis=0)
    k = z.shape[1]
    out = np.zeros(k)
    for j in range(k):
        others = np.delete(z, j, axis=1)
        if others.shape[1]:
            coef, *_ = np.linalg.lstsq(others, z[:, j], rcond=None)
            resid = z[:, j] - others @ coef
        else:
            resid = z[:, j]
        sd = z[:, j].std(ddof=1)
        out[j] = resid.std(ddof=1) / sd if np.isfinite(sd) and sd > 0 else 0.0
    return pd.Series(out, index=range(k), name="uniqueness")


# --------------------------------------------------------------------------------------------
# Dimension importance
# --------------------------------------------------------------------------------------------
def dim_importance(
    loadings: pd.DataFrame, cutoff: float | None = 0.6, *, latent: np.ndarray | None = None
) -> pd.DataFrame:
    """Each dim's share of the standardised explained expression variance; dims sorted by importance.

    With ``latent`` (InterScale mode="full"): ``A = (S^T S) * Corr(z)`` symmetrised, score_k = column sum
    of A, so covariance between correlated dims is shared out (a single score may be negative). Without
    it (mode="diag"): ``score_k = sum_g S_gk^2``, exact when dims are uncorrelated.
    ``importance = score / sum(score)`` (zeros if the total is not > 0), so it sums to 1.
    ``selected``: the first dims whose cumulative importance reaches ``cutoff`` (first i with
    cum_i >= cutoff; InterScale's searchsorted assumes cum is monotone, which full mode need not be).
    ``cutoff=None`` selects every dim. Genes with a non-finite loading are ignored. Ties keep dim order
    (stable sort; InterScale's reversed argsort puts the higher dim id first).
    """
    s = loadings.to_numpy(dtype=float)
    s = s[np.isfinite(s).all(axis=1)]
    dims = list(loadings.columns)
    if latent is not None:
        z = np.asarray(latent, dtype=float)
        z = z[np.isfinite(z).all(axis=1)]
        if z.shape[1] != len(dims):
            raise ValueError(f"latent has {z.shape[1]} dims, loadings {len(dims)}")
        if z.shape[0] < 3:
            raise ValueError("need at least 3 finite latent rows for Corr(z)")
        corr = np.atleast_2d(np.corrcoef(z, rowvar=False))
        corr = np.nan_to_num(corr)  # a constant dim has no correlation with anything
        a = (s.T @ s) * corr
        a = (a + a.T) / 2.0
        score = a.sum(axis=0)
        mode = "full"
    else:
        score = (s**2).sum(axis=0)
        mode = "diag"
    total = score.sum()
    imp = score / total if total > 0 else np.zeros_like(score)
    order = np.argsort(-imp, kind="stable")
    imp_sorted = imp[order]
    cum = np.cumsum(imp_sorted)
    if cutoff is None:
        n_sel = len(dims)
    else:
        hit = np.flatnonzero(cum >= cutoff - 1e-12)
        n_sel = int(hit[0]) + 1 if hit.size else len(dims)
    return pd.DataFrame(
        {
            "dim": [dims[i] for i in order],
            "score": score[order],
            "importance": imp_sorted,
            "cumulative": cum,
            "selected": np.arange(len(dims)) < n_sel,
            "mode": mode,
        }
    )


# --------------------------------------------------------------------------------------------
# Gene programs
# --------------------------------------------------------------------------------------------
def expression_stats(expression, gene_names: Sequence[str]) -> pd.DataFrame:
    """Per gene: ``sd`` (ddof=1) and ``frac`` (fraction of cells with expression > 0), the inputs of
    :func:`program_genes`' expression filters. Sparse-aware; NaNs ignored."""
    if sparse.issparse(expression):
        x = expression.tocsc()
        n = x.shape[0]
        mean = np.asarray(x.mean(axis=0)).ravel()
        var = (np.asarray(x.multiply(x).sum(axis=0)).ravel() - n * mean**2) / (n - 1)
        sd = np.sqrt(np.clip(var, 0, None))
        frac = np.asarray((x > 0).sum(axis=0)).ravel() / n
    else:
        x = np.asarray(expression, dtype=float)
        sd = np.nanstd(x, axis=0, ddof=1)
        frac = np.nanmean(np.where(np.isnan(x), np.nan, x > 0), axis=0)
    return pd.DataFrame({"sd": sd, "frac": frac}, index=pd.Index(list(gene_names), name="gene"))


def program_genes(
    loadings: pd.DataFrame,
    gene_sd: pd.Series,
    selected_dims: Sequence,
    top_n: int = 20,
    min_frac: float = 0.05,
    min_sd: float | None = None,
    rank_by: str = "loading",
    specificity_ratio: float | None = 1.5,
    *,
    gene_frac: pd.Series | None = None,
    uniqueness: pd.Series | None = None,
) -> pd.DataFrame:
    """Top genes of each selected dim (InterScale ``get_genes_dim``), one row per (dim, gene).

    Steps, as InterScale: score = loading (times ``uniqueness`` per dim if given = its ``residualize``);
    keep genes with finite sd, ``frac >= min_frac``, ``sd >= min_sd`` (if set) and a finite score in
    every selected dim; ``rank_by="loading_x_sd"`` multiplies the score by the gene SD (favours variable
    genes, keeps the sign); with >=2 dims and ``specificity_ratio`` set, keep genes whose largest
    |score| over the selected dims is >= ratio x the second largest (ratio mode); then take the
    ``top_n`` genes by |score| per dim (stable sort).

    Deviations: long output (program, dim, gene, loading, score, sign, rank, winner_dim, sd, frac)
    instead of a wide genes x dims table, so a gene that is top in two dims appears in both programs
    and positive/negative poles can be split via ``sign``; ``min_frac`` needs ``gene_frac``
    (see :func:`expression_stats`) and raises if it is missing rather than silently skip the filter.
    """
    if rank_by not in ("loading", "loading_x_sd"):
        raise ValueError(f"rank_by must be 'loading' or 'loading_x_sd', got {rank_by!r}")
    dims = list(selected_dims)
    if len(set(dims)) != len(dims):
        raise ValueError(f"selected_dims must be unique, got {dims}")
    missing = [d for d in dims if d not in loadings.columns]
    if missing:
        raise ValueError(f"dims {missing} are not columns of loadings")
    if min_frac and gene_frac is None:
        raise ValueError("min_frac > 0 needs gene_frac (e.g. expression_stats(...)['frac'])")

    load = loadings[dims].astype(float)
    genes = load.index
    sd = gene_sd.reindex(genes).astype(float).to_numpy()
    score = load.to_numpy().copy()
    if uniqueness is not None:
        score = score * uniqueness.reindex(dims).fillna(0.0).to_numpy()[None, :]

    keep = np.isfinite(sd) & np.isfinite(score).all(axis=1)
    frac = (
        gene_frac.reindex(genes).astype(float).to_numpy()
        if gene_frac is not None
        else np.full(len(genes), np.nan)
    )
    if min_frac:
        keep &= np.nan_to_num(frac, nan=-np.inf) >= min_frac
    if min_sd is not None:
        keep &= np.nan_to_num(sd, nan=-np.inf) >= min_sd
    if rank_by == "loading_x_sd":
        score = score * sd[:, None]
    absval = np.abs(score)
    if len(dims) >= 2 and specificity_ratio:
        top2 = -np.sort(-np.nan_to_num(absval, nan=0.0), axis=1)[:, :2]
        keep &= top2[:, 0] / (top2[:, 1] + 1e-12) >= specificity_ratio
    winner = np.array(dims, dtype=object)[np.nan_to_num(absval, nan=-1.0).argmax(axis=1)] if dims else None

    rows = []
    kept = np.flatnonzero(keep)
    for j, d in enumerate(dims):
        order = kept[np.argsort(-absval[kept, j], kind="stable")][:top_n]
        for r, gi in enumerate(order, start=1):
            rows.append(
                {
                    "program": f"dim_{d}",
                    "dim": d,
                    "gene": genes[gi],
                    "loading": load.iat[gi, j],
                    "score": score[gi, j],
                    "sign": int(np.sign(score[gi, j])),
                    "rank": r,
                    "winner_dim": winner[gi],
                    "sd": sd[gi],
                    "frac": frac[gi],
                }
            )
    cols = ["program", "dim", "gene", "loading", "score", "sign", "rank", "winner_dim", "sd", "frac"]
    return pd.DataFrame(rows, columns=cols)


def shared_unique_programs(
    genes_a: Sequence[str], genes_b: Sequence[str], names: tuple[str, str] = ("a", "b")
) -> pd.DataFrame:
    """Split two gene collections (e.g. the union of program genes of the full and ablated model)
    into ``shared``, ``unique_<a>`` and ``unique_<b>`` programs, the groups InterScale enriches.
    Returns long (program, gene), ready for ``enrichment.enrich_programs``."""
    a, b = pd.Index(pd.unique(pd.Index(genes_a))), pd.Index(pd.unique(pd.Index(genes_b)))
    parts = {
        "shared": a.intersection(b, sort=False),
        f"unique_{names[0]}": a.difference(b, sort=False),
        f"unique_{names[1]}": b.difference(a, sort=False),
    }
    return pd.DataFrame([(p, g) for p, gs in parts.items() for g in gs], columns=["program", "gene"])
