"""KPNN node importance: the control-input correction and |mean gradient| ranking, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from regnet_assets.science.network.importance import (
    corrected_importance,
    importance_table,
    pathway_vs_decoy_auc,
)
from regnet_assets.science.network.kpnn_training import control_inputs


def test_corrected_importance_by_hand():
    # |real| = .2 .4 .1 → scaled 1/3, 1, 0; |control| = .1 .1 .3 → scaled 0, 0, 1
    got = corrected_importance([0.2, -0.4, 0.1], [0.1, -0.1, 0.3])
    np.testing.assert_allclose(got, [1 / 3, 1.0, -1.0])
    np.testing.assert_allclose(corrected_importance([0.5, 0.5], [0.2, 0.2]), [0.0, 0.0])  # no spread
    with pytest.raises(ValueError, match="control_weight"):
        corrected_importance([1.0, 2.0], [1.0])


def fold_rows(fold, weights, abs_weights, control):
    nodes = ["K1", "K2", "D1", "root"]
    return pd.DataFrame(
        {
            "fold": fold,
            "node": nodes,
            "bias": 0.0,
            "node_weight": [*weights, np.nan],
            "node_weight_abs": [*abs_weights, np.nan],
            "control_weight": [*control, np.nan],
            "is_output": [False, False, False, True],
        }
    )


def test_importance_table_ranks_by_corrected_mean_gradient():
    # D1 has the largest mean |gradient| (its gradient flips sign between cells) and the largest
    # control weight (it collects many genes): ranked by the correction it comes last.
    nw = pd.concat(
        [
            fold_rows(0, [0.4, 0.2, 0.0], [0.4, 0.2, 0.9], [0.1, 0.1, 0.5]),
            fold_rows(1, [0.3, 0.3, 0.1], [0.3, 0.3, 0.8], [0.2, 0.0, 0.4]),
        ]
    )
    roles = {"K1": "pathway_kinase", "K2": "pathway_kinase", "D1": "decoy_kinase"}
    table = importance_table(nw, "full", roles)
    mean = table[table["scope"] == "mean"].set_index("node")
    # fold 0: real .4 .2 0 → 1, .5, 0; control .1 .1 .5 → 0, 0, 1: 1, .5, −1
    # fold 1: real .3 .3 .1 → 1, 1, 0; control .2 0 .4 → .5, 0, 1: .5, 1, −1
    assert mean.loc["K1", "importance"] == pytest.approx(0.75)
    assert mean.loc["K2", "importance"] == pytest.approx(0.75)
    assert mean.loc["D1", "importance"] == pytest.approx(-1.0)
    assert mean.loc["K1", "importance_sd"] == pytest.approx(0.25)
    assert mean.loc["D1", "rank"] == 3 and mean.loc["K1", "rank"] == 1 and np.isnan(mean.loc["root", "rank"])
    assert mean.loc["root", "role"] == "root"
    assert pathway_vs_decoy_auc(table) == 1.0
    # ranked by mean |gradient| instead, the decoy would have won: the AUROC would be 0
    assert roc_auc_score([1, 1, 0], mean.loc[["K1", "K2", "D1"], "node_weight_abs"]) == 0.0
    assert np.isnan(pathway_vs_decoy_auc(importance_table(nw, "full", {"K1": "pathway_kinase"})))


def test_control_inputs_keep_marginals_and_make_every_gene_equally_predictive():
    rng = np.random.default_rng(0)
    n = 2000
    y = (rng.random(n) < 0.5).astype(float)
    X = np.column_stack([rng.exponential(size=n), rng.poisson(3, n), np.full(n, 2.0)])
    X[:, 0] += 3 * y  # only gene 0 is predictive in the real data
    Xc = control_inputs(X, y, seed=4)
    np.testing.assert_array_equal(np.sort(Xc, axis=0), np.sort(X, axis=0))  # marginals kept
    np.testing.assert_array_equal(Xc, control_inputs(X, y, seed=4))
    for j in (0, 1):  # each gene alike: Φ(1/√2) ≈ 0.76 (ties of the Poisson gene pull it a little)
        assert 0.68 < roc_auc_score(y, Xc[:, j]) < 0.82
    assert (Xc[:, 2] == 2.0).all()
