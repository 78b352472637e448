"""Regulatory network: per-cell-type TF ranking, network table, recovery metrics, baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from regnet_assets.science.attribution.grn import (
    cell_type_edge_scores,
    correlation_scores,
    edge_scores,
    grn_recovery,
    plot_pr_curves,
    regulatory_network,
    tf_to_gene,
)


def long_table(values: dict[tuple[str, str], np.ndarray], metacells: list[str]) -> pd.DataFrame:
    """{(gene, tf): attribution per metacell} → long form."""
    rows = [(g, m, t, float(v)) for (g, t), arr in values.items() for m, v in zip(metacells, arr)]
    return pd.DataFrame(rows, columns=["gene", "metacell", "tf", "attribution"])


METACELLS = [f"m{i}" for i in range(6)]
LABELS = pd.Series(["B", "B", "B", "T", "T", "T"], index=METACELLS)


def test_tf_to_gene_statistics_and_all_group():
    vals = {
        ("G1", "A"): np.array([1.0, 2.0, 3.0, 0.0, 0.0, 1.0]),
        ("G1", "R"): np.array([-4.0, -4.0, -4.0, 0.0, 0.0, 0.0]),
    }
    out = tf_to_gene(long_table(vals, METACELLS), LABELS, n_tfs=None)
    assert list(out.columns) == ["gene", "cell_type", "tf", "mean_attr", "std_attr", "n_metacells", "rank"]
    b_a = out[(out.cell_type == "B") & (out.tf == "A")].iloc[0]
    assert b_a.mean_attr == pytest.approx(2.0)
    assert b_a.std_attr == pytest.approx(np.std([1.0, 2.0, 3.0]))  # ddof 0, as the reference
    assert b_a.n_metacells == 3
    all_a = out[(out.cell_type == "all") & (out.tf == "A")].iloc[0]
    assert all_a.mean_attr == pytest.approx(7 / 6) and all_a.n_metacells == 6
    assert all_a.std_attr == pytest.approx(np.std(vals[("G1", "A")]))
    # in T cells A (mean 1/3) outranks R (mean 0); in B, R (|−4|) outranks A (2)
    ranks = out.set_index(["cell_type", "tf"])["rank"]
    assert ranks[("B", "R")] == 1 and ranks[("B", "A")] == 2 and ranks[("T", "A")] == 1
    assert set(out.cell_type) == {"B", "T", "all"}


def test_tf_to_gene_keeps_a_strong_repressor_that_signed_ranking_drops():
    vals = {
        ("G1", "ACT1"): np.full(6, 0.5),
        ("G1", "ACT2"): np.full(6, 0.3),
        ("G1", "REP"): np.full(6, -2.0),
        ("G1", "WEAK"): np.full(6, 0.01),
    }
    table = long_table(vals, METACELLS)
    fixed = tf_to_gene(table, LABELS, n_tfs=2)
    signed = tf_to_gene(table, LABELS, n_tfs=2, rank_by="signed")
    for ct in ("B", "T", "all"):
        top = fixed[fixed.cell_type == ct].set_index("tf")
        assert list(top.index) == ["REP", "ACT1"]
        assert top.loc["REP", "mean_attr"] == pytest.approx(-2.0)  # sign kept
        assert top.loc["REP", "rank"] == 1
        assert list(signed[signed.cell_type == ct]["tf"]) == ["ACT1", "ACT2"]


def test_tf_to_gene_rejects_unlabelled_metacells():
    table = long_table({("G1", "A"): np.ones(6)}, METACELLS)
    with pytest.raises(ValueError, match="no cell-type label"):
        tf_to_gene(table, LABELS.iloc[:4])
    with pytest.raises(ValueError, match="rank_by"):
        tf_to_gene(table, LABELS, rank_by="max")


def test_regulatory_network_edges():
    vals = {
        ("G1", "A"): np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]),  # B-specific activator
        ("G1", "R"): np.array([0.0, 0.0, 0.0, -3.0, -3.0, -3.0]),  # T-specific repressor
        ("G1", "N"): np.array([0.01, -0.01, 0.0, 0.0, 0.0, 0.0]),  # noise
        ("G2", "A"): np.array([2.0, 2.0, 2.0, 2.0, 2.0, 2.0]),
        ("G2", "N"): np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.1]),
    }
    table = long_table(vals, METACELLS)
    top = tf_to_gene(table, LABELS, n_tfs=1)
    net = regulatory_network(top, table)
    assert set(zip(net.tf, net.gene)) == {("A", "G1"), ("R", "G1"), ("A", "G2")}
    e = net.set_index(["tf", "gene"])
    assert e.loc[("R", "G1"), "sign"] == -1 and e.loc[("R", "G1"), "score"] == pytest.approx(1.5)
    assert e.loc[("R", "G1"), "cell_types"] == "T" and bool(e.loc[("R", "G1"), "top_overall"])
    assert e.loc[("A", "G1"), "cell_types"] == "B" and not bool(e.loc[("A", "G1"), "top_overall"])
    assert e.loc[("A", "G2"), "cell_types"] == "B;T"
    assert e.loc[("A", "G1"), "n_targets_of_tf"] == 2 and e.loc[("R", "G1"), "n_targets_of_tf"] == 1
    everything = regulatory_network(top, table, only_network=False)
    assert len(everything) == 5 and (~everything.in_network).sum() == 2
    assert everything.set_index(["tf", "gene"]).loc[("N", "G2"), "n_targets_of_tf"] == 0


def recovery_case(n_genes=200, n_tfs=10, prevalence=0.1, seed=12345):  # not grn_recovery's seed
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


def test_grn_recovery_perfect_reversed_and_random():
    cand, truth, is_true, sign = recovery_case()
    base = cand[["tf", "gene"]]
    perfect = base.assign(score=is_true.astype(float) + 0.5, sign=np.where(is_true, sign, 1))
    # distinct scores, every true edge below every false one (ties would give AP = prevalence)
    reversed_ = base.assign(
        score=1.0 - is_true + 0.5 * np.random.default_rng(1).random(len(cand)), sign=-sign
    )
    res_p = grn_recovery(perfect, truth, cand)
    res_r = grn_recovery(reversed_, truth, cand)
    p = res_p.set_index("method").loc["attribution"]
    r = res_r.set_index("method").loc["attribution"]
    n, k = len(cand), int(is_true.sum())
    assert p.auroc == 1.0 and p.auprc == pytest.approx(1.0) and p.sign_accuracy == 1.0
    assert r.auroc == 0.0 and r.auprc == pytest.approx(min_average_precision(n, k)) and r.sign_accuracy == 0.0
    assert p.n_candidates == n and p.n_true == k and p.prevalence == pytest.approx(k / n)
    rnd = res_p.set_index("method")
    assert rnd.loc["random_expected", "auroc"] == 0.5
    assert rnd.loc["random_expected", "auprc"] == pytest.approx(k / n)
    assert rnd.loc["random_seeded", "auprc"] == pytest.approx(k / n, abs=0.03)
    assert rnd.loc["random_seeded", "auroc"] == pytest.approx(0.5, abs=0.05)
    again = grn_recovery(perfect, truth, cand).set_index("method")
    assert again.loc["random_seeded", "auprc"] == rnd.loc["random_seeded", "auprc"]  # seeded


def test_grn_recovery_missing_scores_rank_last_and_outside_truth_counted():
    cand, truth, is_true, sign = recovery_case(n_genes=50)
    scored = cand[["tf", "gene"]].assign(score=is_true.astype(float), sign=sign)
    # drop the scores of half the true edges: they must rank below every scored pair
    drop = np.flatnonzero(is_true)[::2]
    partial = scored.drop(index=drop)
    extra_truth = pd.concat([truth, pd.DataFrame({"gene": ["X"], "tf": ["Y"], "sign": [1]})])
    res = grn_recovery(partial, extra_truth, cand).set_index("method").loc["attribution"]
    y = is_true.astype(int)
    s = is_true.astype(float)
    s[drop] = -1.0
    from sklearn.metrics import average_precision_score, roc_auc_score

    assert res.auroc == pytest.approx(roc_auc_score(y, s))
    assert res.auprc == pytest.approx(average_precision_score(y, s))
    assert res.n_true_outside == 1


def test_grn_recovery_per_cell_type_and_correlation_baseline():
    rng = np.random.default_rng(3)
    m = 60
    labels = pd.Series(np.repeat(["B", "T"], m // 2), index=[f"m{i}" for i in range(m)])
    tf_expr = rng.normal(size=(m, 3))
    g1 = 2 * tf_expr[:, 0] + 0.1 * rng.normal(size=m)  # T0 activates G1 everywhere
    g2 = -tf_expr[:, 1] * (labels == "B").to_numpy() + 0.1 * rng.normal(size=m)  # T1 represses G2 in B
    expr = pd.DataFrame(
        np.column_stack([tf_expr, g1, g2]), index=labels.index, columns=["T0", "T1", "T2", "G1", "G2"]
    )
    cand = pd.DataFrame([(g, t) for g in ("G1", "G2") for t in ("T0", "T1", "T2")], columns=["gene", "tf"])
    truth = pd.DataFrame(
        {"tf": ["T0", "T1"], "gene": ["G1", "G2"], "sign": [1, -1], "cell_types": ["all", "B"]}
    )
    corr = correlation_scores(cand, expr).set_index(["tf", "gene"])
    assert corr.loc[("T0", "G1"), "r"] == pytest.approx(np.corrcoef(expr["T0"], expr["G1"])[0, 1])
    assert corr.loc[("T1", "G2"), "sign"] == -1
    ct_scores = pd.DataFrame(
        {
            "tf": ["T0", "T1", "T2"] * 4,
            "gene": (["G1"] * 3 + ["G2"] * 3) * 2,
            "cell_type": ["B"] * 6 + ["T"] * 6,
            "score": [3, 0.1, 0.2, 0.1, 2, 0.3] + [3, 0.1, 0.2, 0.1, 0.05, 0.3],
            "sign": [1, 1, 1, 1, -1, 1] + [1, 1, 1, 1, 1, 1],
        }
    )
    overall = ct_scores[ct_scores.cell_type == "B"].drop(columns="cell_type")
    res = grn_recovery(
        overall, truth, cand, cell_type_scores=ct_scores, expression=expr, metacell_labels=labels
    )
    r = res.set_index(["method", "cell_type"])
    assert r.loc[("attribution", "B"), "n_true"] == 2 and r.loc[("attribution", "T"), "n_true"] == 1
    assert r.loc[("attribution", "B"), "auroc"] == 1.0 and r.loc[("attribution", "B"), "sign_accuracy"] == 1.0
    assert r.loc[("attribution", "T"), "auroc"] == 1.0
    assert (
        r.loc[("correlation", "all"), "auroc"] == 1.0
        and r.loc[("correlation", "all"), "sign_accuracy"] == 1.0
    )
    assert ("correlation", "T") in r.index and ("random_expected", "B") in r.index
    assert r.loc[("random_expected", "T"), "auprc"] == pytest.approx(1 / 6)


def test_correlation_scores_missing_and_constant():
    expr = pd.DataFrame({"A": [1.0, 2.0, 3.0], "B": [1.0, 1.0, 1.0], "C": [3.0, 2.0, 1.0]})
    cand = pd.DataFrame({"gene": ["C", "C", "C"], "tf": ["A", "B", "Z"]})
    out = correlation_scores(cand, expr).set_index("tf")
    assert out.loc["A", "r"] == pytest.approx(-1.0) and out.loc["A", "sign"] == -1
    assert np.isnan(out.loc["B", "score"]) and np.isnan(out.loc["Z", "score"])


def test_edge_scores_and_cell_type_scores():
    vals = {("G1", "A"): np.array([1.0, -1.0, 1.0, -1.0, 1.0, 1.0])}
    table = long_table(vals, METACELLS)
    e = edge_scores(table).iloc[0]
    assert e.score == pytest.approx(1.0) and e.sign == 1 and e.mean_attr == pytest.approx(1 / 3)
    cts = cell_type_edge_scores(tf_to_gene(table, LABELS, n_tfs=None)).set_index("cell_type")
    assert cts.loc["B", "score"] == pytest.approx(1 / 3) and cts.loc["T", "score"] == pytest.approx(1 / 3)


def test_plot_pr_curves_returns_figure():
    cand, truth, is_true, sign = recovery_case(n_genes=20)
    scores = cand[["tf", "gene"]].assign(score=is_true + np.random.default_rng(0).random(len(cand)), sign=1)
    other = {"other": scores.assign(score=-scores.score)}
    fig = plot_pr_curves(scores, truth, cand, baselines=other)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3  # two methods + random line
    assert "attribution" in ax.get_legend().get_texts()[0].get_text()


def test_attribution_to_network_end_to_end():
    """A model whose output depends on one TF only yields a network with that TF alone on top."""
    import torch

    from regnet_assets.science.attribution.ig import attribution_table, integrated_gradients
    from regnet_assets_tests.science.test_attribution import single_tf_model
    from regnet_assets_tests.synthetic import checkpoint_of

    model, x, _, _ = single_tf_model(tf_index=1, linear=False)
    with torch.no_grad():
        out = integrated_gradients(checkpoint_of(model, [x]), [x], n_steps=30)
    table = attribution_table(out)
    labels = pd.Series(np.where(np.arange(len(x.metacells)) % 2, "B", "T"), index=x.metacells)
    net = regulatory_network(tf_to_gene(table, labels, n_tfs=1), table)
    assert list(net.tf) == ["TF1"] and net.iloc[0].cell_types == "B;T"
