"""Recovery baselines: each equals its library (scipy, scikit-learn, arboreto) on the same vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import ElasticNetCV, RidgeCV
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from regnet_assets.science.attribution import baselines


def case(m=40, seed=7):
    """Two genes: G1 = 2·T0 − T1 + noise, G2 = noise; T2 with ties (for Spearman)."""
    rng = np.random.default_rng(seed)
    tf = rng.normal(size=(m, 3))
    tf[:, 2] = np.round(tf[:, 2])  # heavy ties
    g1 = 2 * tf[:, 0] - tf[:, 1] + 0.3 * rng.normal(size=m)
    expr = pd.DataFrame(np.column_stack([tf, g1, rng.normal(size=m)]), columns=["T0", "T1", "T2", "G1", "G2"])
    cand = pd.DataFrame(
        [(g, t, n) for g in ("G1", "G2") for t, n in (("T0", 2), ("T1", 1), ("T2", 3))],
        columns=["gene", "tf", "n_peaks_hit"],
    )
    return expr, cand


@pytest.mark.parametrize("method,ref", [("pearson", stats.pearsonr), ("spearman", stats.spearmanr)])
def test_correlation_equals_scipy(method, ref):
    expr, cand = case()
    out = baselines.correlation_scores(cand, expr, method)
    for row in out.itertuples():
        r = ref(expr[row.tf], expr[row.gene]).statistic
        assert row.r == pytest.approx(r, abs=1e-12)
        assert row.score == pytest.approx(abs(r), abs=1e-12) and row.sign == np.sign(r)


def test_correlation_missing_and_constant_are_nan():
    expr = pd.DataFrame({"A": [1.0, 2.0, 3.0], "B": [1.0, 1.0, 1.0], "C": [3.0, 2.0, 1.0]})
    cand = pd.DataFrame({"gene": ["C", "C", "C"], "tf": ["A", "B", "Z"]})
    out = baselines.correlation_scores(cand, expr).set_index("tf")
    assert out.loc["A", "r"] == pytest.approx(-1.0) and out.loc["A", "sign"] == -1
    assert np.isnan(out.loc["B", "score"]) and np.isnan(out.loc["Z", "score"])
    with pytest.raises(ValueError, match="method must be"):
        baselines.correlation_scores(cand, expr, "kendall")


def test_ridge_and_elastic_net_equal_sklearn():
    expr, cand = case()
    x = StandardScaler().fit_transform(expr[["T0", "T1", "T2"]].to_numpy())
    y = expr["G1"].to_numpy()
    ridge = RidgeCV(alphas=baselines.RIDGE_ALPHAS).fit(x, y)
    enet = ElasticNetCV(
        l1_ratio=0.5, alphas=30, cv=KFold(5, shuffle=True, random_state=3), max_iter=5000
    ).fit(x, y)
    for model, ref in (("ridge", ridge), ("elastic_net", enet)):
        out = baselines.regression_scores(cand, expr, model, seed=3).set_index(["gene", "tf"])
        coef = out.loc["G1"].loc[["T0", "T1", "T2"], "coef"].to_numpy()
        np.testing.assert_allclose(coef, ref.coef_, rtol=1e-10, atol=1e-12)
        assert out.loc[("G1", "T0"), "sign"] == 1 and out.loc[("G1", "T1"), "sign"] == -1
        assert out.loc[("G1", "T0"), "score"] > out.loc[("G2", "T0"), "score"]
    with pytest.raises(ValueError, match="model must be"):
        baselines.regression_scores(cand, expr, "lasso")


def test_grnboost2_equals_arboreto_per_target():
    from arboreto.core import SGBM_KWARGS, infer_partial_network

    expr, cand = case(m=60)
    out = baselines.grnboost2_scores(cand, expr, seed=11).set_index(["gene", "tf"])
    tfs = ["T0", "T1", "T2"]
    links = infer_partial_network(
        "GBM", SGBM_KWARGS, expr[tfs].to_numpy(), tfs, "G1", expr["G1"].to_numpy(), seed=11
    ).set_index("TF")["importance"]
    got = out.loc["G1", "score"]
    for tf in tfs:  # arboreto's links keep only importance > 0
        assert got[tf] == pytest.approx(links.get(tf, 0.0), rel=1e-12)
    sign = baselines.correlation_scores(cand, expr).set_index(["gene", "tf"])["sign"]
    assert (out["sign"] == sign.loc[out.index]).all()  # SCENIC's sign: the TF–gene correlation


def test_motif_and_random_scores():
    expr, cand = case()
    motif = baselines.motif_scores(cand)
    assert motif["score"].tolist() == cand["n_peaks_hit"].astype(float).tolist()
    assert motif["sign"].isna().all()
    with pytest.raises(ValueError, match="n_peaks_hit"):
        baselines.motif_scores(cand.drop(columns="n_peaks_hit"))
    a, b = baselines.random_scores(cand, 5), baselines.random_scores(cand, 5)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(baselines.random_scores(cand, 6))
    with pytest.raises(ValueError, match="candidates lacks columns"):
        baselines.random_scores(cand.drop(columns="tf"), 0)
