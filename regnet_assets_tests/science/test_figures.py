"""The UI's plots (#16): the tables they draw are the right rows, and each figure has the panels
and titles it promises, also on empty input."""

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from regnet_assets.science.attribution import network_figures
from regnet_assets.science.dataset import qc_figures
from regnet_assets.science.models import quality


def _network() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tf": ["A", "A", "B", "C", "D"],
            "gene": ["g1", "g2", "g1", "g3", "g4"],
            "score": [0.9, 0.2, 0.5, 0.5, 0.99],
            "sign": [1.0, -1.0, -1.0, 1.0, 1.0],
            "in_network": [True, True, True, True, False],
        }
    )


def test_top_edges_keeps_the_network_proper_ranked_by_score_with_signed_scores():
    edges = network_figures.top_edges(_network(), top=3)
    # D → g4 has the highest score but is only a scored candidate; B and C tie at 0.5 (by tf).
    assert list(zip(edges["tf"], edges["gene"])) == [("A", "g1"), ("B", "g1"), ("C", "g3")]
    assert edges["signed_score"].tolist() == [0.9, -0.5, 0.5]


def test_network_heatmap_puts_each_signed_score_in_its_tf_gene_cell():
    fig = network_figures.plot_network_heatmap(_network())
    ax = fig.axes[0]
    grid = ax.images[0].get_array()
    tfs = [t.get_text() for t in ax.get_yticklabels()]
    genes = [t.get_text() for t in ax.get_xticklabels()]
    assert tfs == ["A", "B", "C"] and genes == ["g1", "g3", "g2"]
    assert grid[tfs.index("B"), genes.index("g1")] == -0.5
    assert grid[tfs.index("A"), genes.index("g2")] == -0.2
    assert np.ma.is_masked(grid[tfs.index("B"), genes.index("g2")])  # no such edge: blank
    # the colour scale is symmetric, so red and blue mean the same strength
    assert ax.images[0].get_clim() == (-0.9, 0.9)


def test_top_tfs_per_cell_type_sums_absolute_attribution_over_genes_and_skips_all():
    rows = pd.DataFrame(
        {
            "cell_type": ["T", "T", "T", "B", "B", "all"],
            "tf": ["X", "X", "Y", "X", "Y", "Z"],
            "gene": ["g1", "g2", "g1", "g1", "g1", "g1"],
            "mean_attr": [0.3, -0.4, 0.5, 0.1, -0.2, 9.0],
        }
    )
    ranked = network_figures.top_tfs_per_cell_type(rows, top=1)
    assert ranked[["cell_type", "tf"]].values.tolist() == [["B", "Y"], ["T", "X"]]
    assert np.isclose(ranked["importance"].iloc[1], 0.7) and ranked["n_genes"].iloc[1] == 2
    fig = network_figures.plot_top_tfs_per_cell_type(rows, top=2)
    assert [ax.get_title() for ax in fig.axes] == ["B", "T"]


def test_empty_network_and_attributions_draw_a_figure_that_says_so():
    empty = _network().iloc[:0]
    texts = [t.get_text() for t in network_figures.plot_network_heatmap(empty).axes[0].texts]
    assert texts == ["no edges in the regulatory network"]
    frame = pd.DataFrame(columns=["cell_type", "tf", "gene", "mean_attr"])
    texts = [t.get_text() for t in network_figures.plot_top_tfs_per_cell_type(frame).axes[0].texts]
    assert texts == ["no TF attributions per cell type"]


def _correlation(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "gene": [f"g{i}" for i in range(n)],
            "status": ["trained"] * (n - 1) + ["skipped"],
            "test_spearman": np.linspace(0.1, 0.9, n),
        }
    )


def test_genes_are_picked_from_best_to_worst_among_trained_genes_only():
    picked = quality.pick_genes_across_range(_correlation(21), n=3)
    # g20 is the best score but was skipped; of g19..g0 (ranks 0..19): ranks 0, 10 and 19
    assert picked["gene"].tolist() == ["g19", "g9", "g0"]
    assert quality.pick_genes_across_range(_correlation(3), n=9)["gene"].tolist() == ["g1", "g0"]


def test_test_predictions_plot_draws_only_test_metacells_of_each_picked_gene():
    corr = _correlation(5)
    pred = pd.DataFrame(
        {
            "gene": np.repeat(corr["gene"], 4).to_numpy(),
            "metacell": np.tile(np.arange(4), 5),
            "split": np.tile(["train", "test", "test", "valid"], 5),
            "observed": np.arange(20, dtype=float),
            "predicted": np.arange(20, dtype=float) + 1,
        }
    )
    fig = quality.plot_test_predictions(pred, corr, n=4)
    drawn = [ax for ax in fig.axes if ax.collections]
    assert [ax.get_title() for ax in drawn] == [
        "g3  ρ = 0.70",
        "g2  ρ = 0.50",
        "g1  ρ = 0.30",
        "g0  ρ = 0.10",
    ]
    g3 = drawn[0].collections[0].get_offsets()
    assert g3.tolist() == [[13.0, 14.0], [14.0, 15.0]]  # g3's two test metacells only


def _cells(sparse: bool) -> md.MuData:
    rng = np.random.default_rng(0)
    rna = rng.poisson(2.0, (30, 5)).astype(np.float32)
    atac = rng.poisson(1.0, (30, 8)).astype(np.float32)
    atac[:, 0] = 0  # one peak never open
    obs = pd.DataFrame(
        {"cell_type": np.repeat(["a", "b", "c"], 10), "batch": np.tile(["s1", "s2"], 15)},
        index=[f"c{i}" for i in range(30)],
    )
    mats = (sp.csr_matrix(rna), sp.csr_matrix(atac)) if sparse else (rna, atac)
    rna_ad = ad.AnnData(mats[0], obs=obs, var=pd.DataFrame(index=[f"gene{i}" for i in range(5)]))
    atac_ad = ad.AnnData(mats[1], obs=obs, var=pd.DataFrame(index=[f"peak{i}" for i in range(8)]))
    mdata = md.MuData({"rna": rna_ad, "atac": atac_ad})
    mdata.obs["cell_type"] = obs["cell_type"]
    mdata.obs["batch"] = obs["batch"]
    return mdata


def test_dataset_qc_counts_the_same_on_sparse_and_dense_data():
    dense, sparse = _cells(False), _cells(True)
    for axis in (0, 1):
        assert np.array_equal(
            qc_figures.axis_sums(dense["atac"].X, axis), qc_figures.axis_sums(sparse["atac"].X, axis)
        )
    metacells = pd.DataFrame({"n_cells": [5, 6, 6, 7], "split": ["train", "train", "valid", "test"]})
    fig = qc_figures.plot_dataset_qc(sparse, metacells)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 5
    assert titles[2].endswith("1 peaks with 0")  # the never-open peak is counted, not hidden
    assert titles[3] == "cells per cell_type × batch"
    assert titles[4] == "4 metacells, median 6 cells"
    bars = fig.axes[3].patches
    assert sum(b.get_height() for b in bars) == 30  # every cell in one stacked bar
    assert fig._suptitle.get_text() == "30 cells, 5 genes, 8 peaks"
