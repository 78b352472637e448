"""Regulatory network: per-cell-type TF ranking and the network table (recovery: test_recovery)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regnet_assets.science.attribution.grn import (
    cell_type_edge_scores,
    edge_scores,
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


def test_edge_scores_and_cell_type_scores():
    vals = {("G1", "A"): np.array([1.0, -1.0, 1.0, -1.0, 1.0, 1.0])}
    table = long_table(vals, METACELLS)
    e = edge_scores(table).iloc[0]
    assert e.score == pytest.approx(1.0) and e.sign == 1 and e.mean_attr == pytest.approx(1 / 3)
    cts = cell_type_edge_scores(tf_to_gene(table, LABELS, n_tfs=None)).set_index("cell_type")
    assert cts.loc["B", "score"] == pytest.approx(1 / 3) and cts.loc["T", "score"] == pytest.approx(1 / 3)


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
