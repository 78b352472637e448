"""Recovery of a known truth: metrics vs scikit-learn, BEELINE's EPR by hand, the table, the figure,
and the run over a network whose baselines fit on train metacells only."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, roc_auc_score

from regnet_assets.science.attribution.recovery import (
    RECOVERY_COLUMNS,
    RecoverySettings,
    early_precision_ratio,
    empty_recovery,
    grn_recovery,
    network_recovery,
    plot_pr_curves,
    recovery_metrics,
)


def test_epr_hand_computed_with_ties_zeros_and_nan():
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0], bool)  # k = 3 of 8: random precision 3/8
    score = np.array([0.9, 0.5, 0.5, 0.0, -0.5, 0.2, np.nan, 0.1])
    # |score| sorted: 0.9, 0.5, 0.5, 0.5, ...: the 3rd is 0.5, and every 0.5 ties in, so the top
    # set is {0, 1, 2, 4}, 2 of them true: precision 1/2, EPR (1/2) / (3/8) = 4/3
    assert early_precision_ratio(y, score) == pytest.approx(4 / 3)
    # k = 2 but one non-zero edge: zero weights never enter the top set (BEELINE's nonZeroMin)
    assert early_precision_ratio(np.array([0, 1, 1, 0], bool), np.array([0.3, 0, 0, 0])) == 0.0
    assert early_precision_ratio(np.array([1, 1, 0, 0], bool), np.array([0.3, 0, 0, 0])) == 2.0
    assert early_precision_ratio(np.array([1, 0], bool), np.array([0.0, np.nan])) == 0.0
    assert np.isnan(early_precision_ratio(np.zeros(3, bool), np.ones(3)))


def test_metrics_equal_sklearn_with_unscored_pairs_last():
    rng = np.random.default_rng(4)
    y = rng.random(300) < 0.2
    score = y + rng.normal(size=300)
    score[::7] = np.nan
    sign_true = rng.choice([-1.0, 1.0], 300)
    sign_pred = np.where(rng.random(300) < 0.8, sign_true, -sign_true)
    sign_pred[::5] = 0
    m = recovery_metrics(y, score, sign_pred, sign_true)
    ranked = np.where(np.isnan(score), np.nanmin(score) - 1, score)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, ranked))
    assert m["auprc"] == pytest.approx(average_precision_score(y, ranked))
    signed = y & (sign_pred != 0)
    assert m["n_signed"] == signed.sum()
    assert m["sign_accuracy"] == pytest.approx(np.mean(sign_pred[signed] == sign_true[signed]))
    assert m["prevalence"] == pytest.approx(y.mean()) and m["n_true"] == y.sum()


def recovery_case(n_genes=200, n_tfs=10, prevalence=0.1, seed=12345):
    rng = np.random.default_rng(seed)
    cand = pd.DataFrame(
        [(f"G{g}", f"T{t}") for g in range(n_genes) for t in range(n_tfs)], columns=["gene", "tf"]
    )
    is_true = rng.random(len(cand)) < prevalence
    sign = rng.choice([-1, 1], len(cand))
    truth = cand[is_true].assign(sign=sign[is_true])
    return cand, truth, is_true, sign


def min_average_precision(n, k):
    """AP when all k positives are ranked last among n."""
    return float(np.mean([i / (n - k + i) for i in range(1, k + 1)]))


def test_grn_recovery_perfect_reversed_random_and_notes():
    cand, truth, is_true, sign = recovery_case()
    base = cand[["tf", "gene"]]
    perfect = base.assign(score=is_true.astype(float) + 0.5, sign=np.where(is_true, sign, 1))
    reversed_ = base.assign(
        score=1.0 - is_true + 0.5 * np.random.default_rng(1).random(len(cand)), sign=-sign
    )
    extra = pd.concat([truth, pd.DataFrame({"gene": ["X"], "tf": ["Y"], "sign": [1]})])
    res = grn_recovery({"perfect": perfect, "reversed": reversed_, "off": "not run"}, extra, cand)
    assert list(res.columns) == list(RECOVERY_COLUMNS)
    r = res.set_index("method")
    n, k = len(cand), int(is_true.sum())
    p, q = r.loc["perfect"], r.loc["reversed"]
    assert p.auroc == 1.0 and p.auprc == pytest.approx(1.0) and p.sign_accuracy == 1.0
    assert p.epr == pytest.approx(n / k)  # top k all true: precision 1 over the prevalence
    assert q.auroc == 0.0 and q.auprc == pytest.approx(min_average_precision(n, k)) and q.epr == 0.0
    assert p.n_candidates == n and p.n_true == k and p.n_true_outside == 1
    e = r.loc["random_expected"]
    assert (e.auroc, e.epr, e.sign_accuracy) == (0.5, 1.0, 0.5) and e.auprc == pytest.approx(k / n)
    off = r.loc["off"]
    assert off.note == "not run" and np.isnan(off.auroc) and np.isnan(off.epr) and off.n_true == k


def test_grn_recovery_per_cell_type_truth():
    cand = pd.DataFrame([(g, t) for g in ("G1", "G2") for t in ("T0", "T1", "T2")], columns=["gene", "tf"])
    truth = pd.DataFrame(
        {"tf": ["T0", "T1"], "gene": ["G1", "G2"], "sign": [1, -1], "cell_types": ["all", "B"]}
    )
    s = cand[["tf", "gene"]].assign(score=[3, 0.1, 0.2, 0.1, 2, 0.3], sign=[1, 1, 1, 1, -1, 1])
    res = grn_recovery({"m": s}, truth, cand, cell_type_scores={"B": {"m": s}, "T": {"m": s}})
    r = res.set_index(["method", "cell_type"])
    assert r.loc[("m", "B"), "n_true"] == 2 and r.loc[("m", "T"), "n_true"] == 1
    assert r.loc[("m", "B"), "auroc"] == 1.0 and r.loc[("m", "B"), "sign_accuracy"] == 1.0
    assert r.loc[("random_expected", "T"), "auprc"] == pytest.approx(1 / 6)
    assert np.isnan(r.loc[("m", "T"), "n_true_outside"]) and r.loc[("m", "all"), "n_true_outside"] == 0
    with pytest.raises(ValueError, match="reserved"):
        grn_recovery({"random_expected": s}, truth, cand)
    assert list(empty_recovery().columns) == list(RECOVERY_COLUMNS) and empty_recovery().empty


def test_plot_pr_curves_has_every_scored_method():
    cand, truth, is_true, _ = recovery_case(n_genes=20)
    scores = cand[["tf", "gene"]].assign(score=is_true + np.random.default_rng(0).random(len(cand)), sign=1)
    fig = plot_pr_curves({"a": scores, "b": scores.assign(score=-scores.score), "c": "missing"}, truth, cand)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3  # two methods with scores + the random line
    assert "EPR" in ax.get_legend().get_texts()[0].get_text()


def test_network_recovery_fits_baselines_on_train_metacells_only():
    """Train metacells: G1 follows T0; the valid ones are noise that would break the correlation."""
    rng = np.random.default_rng(2)
    n_train, n_valid = 40, 40
    t0 = rng.poisson(20, n_train + n_valid).astype(float)
    g1 = np.r_[3 * t0[:n_train], rng.poisson(60, n_valid)]
    counts = np.column_stack([t0, rng.poisson(20, n_train + n_valid), g1, np.full(n_train + n_valid, 500)])
    names = [f"m{i}" for i in range(n_train + n_valid)]
    rna = ad.AnnData(
        counts, obs=pd.DataFrame(index=names), var=pd.DataFrame(index=["T0", "T1", "G1", "FILL"])
    )
    cand = pd.DataFrame({"gene": ["G1", "G1"], "tf": ["T0", "T1"], "n_peaks_hit": [1, 2]})
    network = pd.DataFrame({"tf": ["T0", "T1"], "gene": ["G1", "G1"], "score": [1.0, 0.5], "sign": [1, 1]})
    truth = pd.DataFrame({"tf": ["T0"], "gene": ["G1"], "sign": [1]})
    attr = pd.DataFrame(
        [("G1", m, t, v) for m in names for t, v in (("T0", 1.0), ("T1", 0.1))],
        columns=["gene", "metacell", "tf", "attribution"],
    )
    labels = pd.Series(np.tile(["A", "B"], len(names) // 2), index=names)
    settings = RecoverySettings(seed=0, per_cell_type=True, grnboost2=False)
    table, fig = network_recovery(
        network, truth, attr, cand, rna, labels, pd.Index(names[:n_train]), settings, "regnet"
    )
    r = table.set_index(["method", "cell_type"])
    assert r.loc[("correlation", "all"), "auroc"] == 1.0  # train-only fit: T0 ranks first
    assert r.loc[("motif_count", "all"), "auroc"] == 0.0  # T1 has more motif hits
    assert r.loc[("grnboost2", "all"), "note"].startswith("not run")
    assert {"A", "B", "all"} == set(table["cell_type"])
    assert {"regnet", "random_expected", "random_seeded", "spearman", "ridge", "elastic_net"} <= set(
        table["method"]
    )
    assert isinstance(fig, Figure)
    with pytest.raises(ValueError, match="train_metacells"):
        network_recovery(network, truth, attr, cand, rna, labels, pd.Index(names[:2]), settings, "regnet")
