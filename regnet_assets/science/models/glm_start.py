"""Start each gene's linear TF readout at a Poisson GLM fitted on the train split.

Why (issue #13): target-site openness follows TF activity, so the peaks carry a second copy of
the TF signal. Trained from a random start, the Cell2Net head learns that copy as fast as the
linear readout learns the TFs, and the TF credit ends up split between them (AUPRC 0.43 against
the truth where a GLM on the same inputs reaches 0.72). Started at the GLM, the readout already
explains what the TFs explain, and the head (its last layer started at zero) learns what is
left: peak context and covariates.

The default GLM is a Poisson **lasso** (``l1_ratio=1``, glum), its penalty chosen by 5-fold
cross-validation on the train metacells, covariates unpenalised. Why: a gene's candidate TFs
include co-expressed paralogs and decoys that share the regulator's signal; an L2 penalty
spreads the coefficient over them, an L1 penalty keeps the one that explains the gene. And the
valid split (30 metacells on the default) is too small to choose a penalty: chosen on it, the
same lasso ranks edges at AUPRC 0.73 on the default preset, chosen by CV on train at 0.81
(bench/README.md, "Sparse GLM start"). ``l1_ratio=0`` is the ridge start used before: a small
grid of scikit-learn penalties, the one of lowest valid deviance, fitted by Newton-Cholesky
(``bench/bench_glm_start.py``).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import PoissonRegressor

ALPHAS = (1e-3, 1e-2, 1e-1, 1.0)  # the ridge start's grid of sklearn L2 strengths
SOLVER = "newton-cholesky"  # exact Newton steps: fast where features are few
# the sparse start's penalties, from "every TF zero" down by MIN_ALPHA_RATIO: 20 down to 1e-2
# rank as well as 30 down to 1e-3 at 1.7x less time (bench/README.md, "Sparse GLM start")
N_PATH = 20
MIN_ALPHA_RATIO = 1e-2
FOLDS = 5


def poisson_glm_start(
    tf_std: np.ndarray,
    cov_std: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    valid: np.ndarray,
    l1_ratio: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """(TF coefficients, intercept) of the Poisson GLM of ``y`` on standardised TF expression and
    covariates (M × T, M × C; covariates deconfound depth but their coefficients are dropped: the
    head models them). ``l1_ratio > 0``: glum's elastic-net path (that share of L1), the penalty
    of best 5-fold CV deviance on ``train`` (folds shuffled by ``seed``); ``0``: the ridge of
    :data:`ALPHAS` with the lowest mean deviance on ``valid``."""
    x = np.hstack([tf_std, cov_std]).astype(np.float64)
    y = np.asarray(y, np.float64)
    if l1_ratio > 0:
        return _sparse_glm(x, y, tf_std.shape[1], np.asarray(train, bool), l1_ratio, seed)
    best = None
    for alpha in ALPHAS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            glm = PoissonRegressor(alpha=alpha, solver=SOLVER, max_iter=300).fit(x[train], y[train])
        rate = glm.predict(x[valid])
        dev = np.mean(rate - y[valid] * np.log(np.maximum(rate, 1e-12)))
        if best is None or dev < best[0]:
            best = (dev, glm)
    glm = best[1]
    return glm.coef_[: tf_std.shape[1]].astype(np.float32), float(glm.intercept_)


def _sparse_glm(x, y, n_tfs, train, l1_ratio, seed) -> tuple[np.ndarray, float]:
    from glum import GeneralizedLinearRegressorCV
    from sklearn.model_selection import KFold

    penalised = np.r_[np.ones(n_tfs), np.zeros(x.shape[1] - n_tfs)]  # covariates unpenalised
    glm = GeneralizedLinearRegressorCV(
        family="poisson",
        l1_ratio=l1_ratio,
        n_alphas=N_PATH,
        min_alpha_ratio=MIN_ALPHA_RATIO,
        P1=penalised,
        P2=penalised,
        cv=KFold(FOLDS, shuffle=True, random_state=seed),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # line searches stalling at weak penalties
        glm.fit(x[train], y[train])
    return glm.coef_[:n_tfs].astype(np.float32), float(glm.intercept_)
