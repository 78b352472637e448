"""The regulatory network as a biologist first looks at it: who regulates whom, and which TFs
drive each cell type.

:func:`plot_network_heatmap` draws the strongest edges of the ``regulatory_network`` table
as a TF × gene heatmap of the signed score (red activates, blue represses);
:func:`plot_top_tfs_per_cell_type` ranks, per cell type, the TFs by |mean attribution| summed
over their target genes (the ``tf_to_gene`` table, as in the Cell2Net tutorial's view).
Both return a figure that says so when there is nothing to draw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from regnet_assets.science.attribution.grn import ALL
from regnet_assets.science.common.figures import figure


def top_edges(network: pd.DataFrame, top: int = 40) -> pd.DataFrame:
    """The ``top`` edges by ``score`` (ties by tf, gene), from the network proper when the table
    has an ``in_network`` column (its other rows are scored candidates); with
    ``signed_score = sign · score``."""
    net = network
    if "in_network" in net.columns:
        net = net[net["in_network"].astype(bool)]
    net = net.dropna(subset=["score"])
    edges = net.sort_values(["score", "tf", "gene"], ascending=[False, True, True], kind="stable").head(top)
    sign = edges["sign"] if "sign" in edges.columns else np.sign(edges["mean_attr"])
    return edges.assign(signed_score=edges["score"] * sign.astype(float)).reset_index(drop=True)


def plot_network_heatmap(network: pd.DataFrame, top: int = 40):
    """TF (rows) × gene (columns) heatmap of the :func:`top_edges`' signed scores; pairs outside
    them are blank. Rows and columns are ordered by their strongest edge."""
    edges = top_edges(network, top) if len(network) else network
    if not len(edges):
        return _empty("no edges in the regulatory network", "regulatory network")

    def by_strongest(column: str) -> list:
        best = edges.groupby(column, sort=False)["score"].max()
        return list(best.sort_values(ascending=False, kind="stable").index)

    tfs, genes = by_strongest("tf"), by_strongest("gene")
    grid = edges.pivot_table(index="tf", columns="gene", values="signed_score", aggfunc="first")
    grid = grid.reindex(index=tfs, columns=genes)
    width = min(10.0, 2.5 + 0.22 * len(genes))
    height = min(6.0, 1.5 + 0.2 * len(tfs))
    fig, ax = figure(figsize=(width, height))
    limit = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
    image = ax.imshow(
        np.ma.masked_invalid(grid.to_numpy(float)), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto"
    )
    ax.set_xticks(np.arange(len(genes)), genes, rotation=90, fontsize=7)
    ax.set_yticks(np.arange(len(tfs)), tfs, fontsize=7)
    ax.set_facecolor("#f2f2f2")
    ax.set(xlabel="target gene", ylabel="TF")
    ax.set_title(f"Top {len(edges)} edges by score (red activates, blue represses)", fontsize=9)
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label("sign × mean |attribution|", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def top_tfs_per_cell_type(tf_to_gene: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """Per cell type (``"all"`` left out) the ``top`` TFs by Σ over genes of |mean_attr|:
    ``cell_type, tf, importance, n_genes``, best first (ties by TF name)."""
    rows = tf_to_gene[tf_to_gene["cell_type"].astype(str) != ALL]
    rows = rows.assign(abs_attr=rows["mean_attr"].abs(), cell_type=rows["cell_type"].astype(str))
    totals = (
        rows.groupby(["cell_type", "tf"])
        .agg(importance=("abs_attr", "sum"), n_genes=("gene", "nunique"))
        .reset_index()
        .sort_values(["cell_type", "importance", "tf"], ascending=[True, False, True], kind="stable")
    )
    return totals.groupby("cell_type", sort=True).head(top).reset_index(drop=True)


def plot_top_tfs_per_cell_type(tf_to_gene: pd.DataFrame, top: int = 5):
    """One horizontal bar panel per cell type: its :func:`top_tfs_per_cell_type`, strongest on top."""
    ranked = top_tfs_per_cell_type(tf_to_gene, top) if len(tf_to_gene) else pd.DataFrame()
    if ranked.empty:
        return _empty("no TF attributions per cell type", "top TFs per cell type")
    types = list(dict.fromkeys(ranked["cell_type"]))
    ncols = min(4, len(types))
    nrows = int(np.ceil(len(types) / ncols))
    fig, axes = figure(
        nrows=nrows,
        ncols=ncols,
        figsize=(min(10.0, 2.5 * ncols), min(6.0, 0.6 + (0.35 * top + 0.8) * nrows)),
        squeeze=False,
    )
    flat = axes.ravel()
    for ax, cell_type in zip(flat, types):
        sub = ranked[ranked["cell_type"] == cell_type]
        ax.barh(np.arange(len(sub)), sub["importance"].to_numpy(), color="tab:purple")
        ax.set_yticks(np.arange(len(sub)), list(sub["tf"]), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(cell_type, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    for ax in flat[len(types) :]:
        ax.remove()
    fig.supxlabel("Σ over genes of |mean attribution|", fontsize=8)
    fig.suptitle(f"Top {top} TFs per cell type", fontsize=10)
    fig.tight_layout()
    return fig


def _empty(text: str, title: str):
    fig, ax = figure(figsize=(5.0, 3.0))
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set(xticks=[], yticks=[])
    ax.set_title(title, fontsize=9)
    return fig
