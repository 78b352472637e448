"""Baseline TF → gene rankings that a regulatory model has to beat, on its own candidate edges.

Every baseline scores each (tf, gene) pair of ``candidates`` and returns ``tf, gene, score,
sign`` (higher score = more likely an edge; ``sign`` +1/−1, NaN where the method has none):

* :func:`random_scores`: one seeded uniform draw (the analytic expectation lives in
  :mod:`.recovery`);
* :func:`motif_scores`: how many of the gene's linked peaks carry the TF's motif — the prior the
  candidates are built from, with no expression at all;
* :func:`correlation_scores`: |Pearson| or |Spearman| of TF and gene expression;
* :func:`regression_scores`: |coefficient| of a per-gene ridge (``RidgeCV``) or elastic net
  (``ElasticNetCV``) on the gene's standardised candidate-TF expression, penalty chosen by CV;
* :func:`grnboost2_scores`: GRNBoost2 (arboreto, the SCENIC standard) feature importances,
  signed like SCENIC's modules by the TF–gene correlation.

``expression`` is metacells × genes (log1p CP10k, :func:`..common.normalise.expression_frame`)
of the metacells the models train on. Pairs whose TF or gene is not a column get NaN (ranked last
by :mod:`.recovery`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "SCORE_COLUMNS",
    "candidate_pairs",
    "correlation_scores",
    "grnboost2_available",
    "grnboost2_scores",
    "motif_scores",
    "random_scores",
    "regression_scores",
]

SCORE_COLUMNS = ("tf", "gene", "score", "sign")
RIDGE_ALPHAS = np.logspace(-3, 5, 17)  # RidgeCV's grid: wide enough that the LOO optimum is inside
ENET_L1_RATIO = 0.5  # elastic net halfway between ridge and lasso
ENET_FOLDS = 5
ENET_ALPHAS = 30  # penalties on the elastic net's path (sklearn's default 100 costs 3× the time)


def candidate_pairs(candidates: pd.DataFrame) -> pd.DataFrame:
    """The distinct ``tf, gene`` pairs of ``candidates`` as text, in first-seen order."""
    missing = [c for c in ("gene", "tf") if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates lacks columns {missing} (has {list(candidates.columns)})")
    return candidates[["tf", "gene"]].astype(str).drop_duplicates().reset_index(drop=True)


def random_scores(candidates: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One uniform random ranking with random signs (``numpy.random.default_rng(seed)``)."""
    pairs = candidate_pairs(candidates)
    rng = np.random.default_rng(seed)
    return pairs.assign(score=rng.random(len(pairs)), sign=rng.choice([-1.0, 1.0], len(pairs)))


def motif_scores(candidates: pd.DataFrame) -> pd.DataFrame:
    """``score`` = the candidate table's ``n_peaks_hit`` (linked peaks of the gene whose motif scan
    hits the TF), unsigned: a motif says nothing about activation vs repression."""
    if "n_peaks_hit" not in candidates.columns:
        raise ValueError(
            f"candidates lacks column 'n_peaks_hit' (gene_tf_candidates' motif count), has {list(candidates.columns)}"
        )
    s = candidates[["tf", "gene", "n_peaks_hit"]].astype({"tf": str, "gene": str})
    s = s.drop_duplicates(["tf", "gene"]).reset_index(drop=True)
    return pd.DataFrame(
        {"tf": s["tf"], "gene": s["gene"], "score": s["n_peaks_hit"].astype(np.float64), "sign": np.nan}
    )


def _columns(pairs: pd.DataFrame, expression: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    cols = pd.Index(expression.columns.astype(str))
    return cols.get_indexer(pairs["tf"]), cols.get_indexer(pairs["gene"])


def correlation_scores(
    candidates: pd.DataFrame, expression: pd.DataFrame, method: str = "pearson"
) -> pd.DataFrame:
    """``score`` = |r|, ``sign`` = sign(r), ``r``: Pearson or Spearman (Pearson of average ranks,
    as :func:`scipy.stats.spearmanr`) of TF vs gene over the rows of ``expression``. A constant
    profile gives NaN."""
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    pairs = candidate_pairs(candidates)
    x = expression.to_numpy(np.float64)
    if method == "spearman":
        x = stats.rankdata(x, axis=0)
    xc = x - x.mean(0)
    norm = np.sqrt((xc * xc).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = xc / np.where(norm > 0, norm, np.nan)
    ti, gi = _columns(pairs, expression)
    r = np.full(len(pairs), np.nan)
    ok = (ti >= 0) & (gi >= 0)
    if ok.any():
        r[ok] = np.clip(np.einsum("mi,mi->i", z[:, ti[ok]], z[:, gi[ok]]), -1.0, 1.0)
    return pairs.assign(score=np.abs(r), sign=np.sign(r), r=r)


def _per_gene(pairs: pd.DataFrame, expression: pd.DataFrame):
    """(gene row positions, gene profile, TF names, TF matrix) for each gene with measured TFs."""
    ti, gi = _columns(pairs, expression)
    x = expression.to_numpy(np.float64)
    ok = pd.Series((ti >= 0) & (gi >= 0))
    for _, rows in pairs[ok.to_numpy()].groupby("gene", sort=False).groups.items():
        rows = np.asarray(rows)
        yield rows, x[:, gi[rows[0]]], pairs.loc[rows, "tf"].tolist(), x[:, ti[rows]]


def _standardise(m: np.ndarray) -> np.ndarray:
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(m)


def regression_scores(
    candidates: pd.DataFrame, expression: pd.DataFrame, model: str = "ridge", seed: int = 0
) -> pd.DataFrame:
    """``score`` = |coefficient|, ``sign`` = its sign, ``coef``: one regression per gene of its
    expression on its standardised candidate-TF expression (so coefficients compare across
    TFs). ``model="ridge"``: ``RidgeCV`` (efficient leave-one-out over :data:`RIDGE_ALPHAS`);
    ``"elastic_net"``: ``ElasticNetCV`` (l1_ratio 0.5, :data:`ENET_ALPHAS` penalties, 5 shuffled
    folds seeded by ``seed``).
    Genes with fewer rows than folds, or a constant profile, get NaN."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import ElasticNetCV, RidgeCV
    from sklearn.model_selection import KFold

    if model not in ("ridge", "elastic_net"):
        raise ValueError(f"model must be 'ridge' or 'elastic_net', got {model!r}")
    pairs = candidate_pairs(candidates)
    coef = np.full(len(pairs), np.nan)
    for rows, y, _, tfx in _per_gene(pairs, expression):
        if len(y) < ENET_FOLDS or np.ptp(y) == 0:
            continue
        xs = _standardise(tfx)
        if model == "ridge":
            fit = RidgeCV(alphas=RIDGE_ALPHAS).fit(xs, y)
        else:
            folds = KFold(ENET_FOLDS, shuffle=True, random_state=seed)
            with warnings.catch_warnings():  # a path point that stops short of tol changes nothing ranked
                warnings.simplefilter("ignore", ConvergenceWarning)
                fit = ElasticNetCV(l1_ratio=ENET_L1_RATIO, alphas=ENET_ALPHAS, cv=folds, max_iter=5000).fit(
                    xs, y
                )
        coef[rows] = fit.coef_
    return pairs.assign(score=np.abs(coef), sign=np.sign(coef), coef=coef)


def grnboost2_available() -> str:
    """'' when arboreto imports, else why not (the GRNBoost2 row says so instead of vanishing)."""
    try:
        import arboreto.core  # noqa: F401
    except ImportError as error:
        return f"arboreto is not installed ({error}); install the 'grnboost' extra: pip install '.[grnboost]'"
    return ""


def grnboost2_scores(candidates: pd.DataFrame, expression: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """GRNBoost2 per target gene: arboreto's stochastic gradient boosting (``SGBM_KWARGS``, its
    out-of-bag early stopping) on the gene's candidate TFs, ``score`` = feature importance.

    arboreto's own ``grnboost2`` builds a dask graph that fails on current dask ("Must supply at
    least one delayed object"), so this calls the per-target pieces its graph runs
    (``fit_model`` then ``to_feature_importances``, what ``infer_partial_network`` ties together,
    without its retry that turns an error into an empty result). ``sign`` is the sign of the
    TF–gene Pearson r, as SCENIC splits a module into activated and repressed targets.
    """
    reason = grnboost2_available()
    if reason:
        raise ImportError(reason)
    from arboreto.core import SGBM_KWARGS, fit_model, to_feature_importances

    pairs = candidate_pairs(candidates)
    importance = np.full(len(pairs), np.nan)
    for rows, y, _, tfx in _per_gene(pairs, expression):
        model = fit_model("GBM", SGBM_KWARGS, tfx, y, seed=seed)
        importance[rows] = to_feature_importances("GBM", SGBM_KWARGS, model)
    sign = correlation_scores(candidates, expression)["sign"].to_numpy()
    return pairs.assign(score=importance, sign=np.where(np.isfinite(importance), sign, np.nan))
