"""The dataset at a glance, as a single-cell analyst checks it before modelling anything.

One figure of five panels: RNA and ATAC counts per cell and counts per peak (histograms on a
log axis, zeros counted in the title), cells per cell type × batch (stacked bars) and the
metacells' sizes split train / valid / test. Counts are summed with ``.sum(axis=...)``, which
keeps a sparse cells × peaks matrix sparse (it is never densified).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from regnet_assets.science.common.figures import figure
from regnet_assets.science.common.obs import obs_column

SPLIT_COLOURS = {"train": "tab:blue", "valid": "tab:orange", "test": "tab:green"}


def axis_sums(X, axis: int) -> np.ndarray:
    """Row (``axis=1``) or column (``axis=0``) sums of a dense or scipy sparse matrix, as floats."""
    return np.asarray(X.sum(axis=axis), dtype=np.float64).ravel()


def plot_dataset_qc(mdata, metacells, groupby: str = "cell_type"):
    """Five QC panels of the cell-level ``mdata`` (modalities ``rna`` and ``atac``, raw counts in
    ``X``) and of ``metacells`` (a MuData/AnnData or its obs frame, with ``n_cells`` and, when
    present, ``split``). ``groupby``: the cell-type column (global or ``rna`` obs); ``batch`` is
    optional."""
    fig, axes = figure(nrows=2, ncols=3, figsize=(10.0, 6.0))
    rna, atac = mdata["rna"], mdata["atac"]
    _log_histogram(axes[0, 0], axis_sums(rna.X, 1), "RNA counts per cell", "cells")
    _log_histogram(axes[0, 1], axis_sums(atac.X, 1), "ATAC counts per cell", "cells")
    _log_histogram(axes[0, 2], axis_sums(atac.X, 0), "ATAC counts per peak", "peaks")
    _cells_per_group(axes[1, 0], mdata, groupby)
    _metacell_sizes(axes[1, 1], metacells.obs if hasattr(metacells, "obs") else metacells)
    axes[1, 2].remove()
    fig.suptitle(f"{mdata.n_obs:,} cells, {rna.n_vars:,} genes, {atac.n_vars:,} peaks", fontsize=10)
    fig.tight_layout()
    return fig


def _log_histogram(ax, values: np.ndarray, title: str, unit: str) -> None:
    """Histogram of the positive ``values`` on log-spaced bins; the median and zeros in the title."""
    positive = values[values > 0]
    zeros = int(values.size - positive.size)
    if positive.size:
        lo, hi = float(positive.min()), float(positive.max())
        bins = np.geomspace(lo, hi * 1.001 if hi > lo else lo * 2, 40)
        ax.hist(positive, bins=bins, color="tab:blue", alpha=0.8)
        ax.set_xscale("log")
    median = float(np.median(values)) if values.size else float("nan")
    label = f"median {median:,.0f}" if np.isfinite(median) else "no data"
    ax.set(title=f"{title}\n{label}" + (f", {zeros:,} {unit} with 0" if zeros else ""), ylabel=unit)
    ax.set_xlabel("counts (log scale)")
    ax.title.set_fontsize(9)


def _cells_per_group(ax, mdata, groupby: str) -> None:
    """Stacked bars: cells per ``groupby`` label, one colour per batch (one bar if no batch)."""
    labels = obs_column(mdata, groupby) if groupby else None
    if labels is None:
        _note(ax, f"no obs['{groupby}'] column", "cells per cell type")
        return
    batch = obs_column(mdata, "batch")
    labels = labels.astype(str).rename("cell_type")
    if batch is None:
        table = labels.value_counts().sort_index().to_frame("cells")
    else:
        table = pd.crosstab(labels, batch.astype(str).rename("batch"))
    bottom = np.zeros(len(table))
    x = np.arange(len(table))
    for column in table.columns:
        ax.bar(x, table[column].to_numpy(), bottom=bottom, label=str(column))
        bottom += table[column].to_numpy()
    ax.set_xticks(x, [str(i) for i in table.index], rotation=45 if len(table) > 4 else 0, ha="right")
    ax.tick_params(axis="x", labelsize=7)
    if batch is not None:
        ax.legend(title="batch", fontsize=7, title_fontsize=7)
    ax.set(ylabel="cells", title=f"cells per {groupby}" + (" × batch" if batch is not None else ""))
    ax.title.set_fontsize(9)


def _metacell_sizes(ax, obs: pd.DataFrame) -> None:
    """Histogram of cells per metacell, stacked by split when ``obs`` has one."""
    if "n_cells" not in obs.columns or not len(obs):
        _note(ax, "no metacells with n_cells", "metacell sizes")
        return
    sizes = obs["n_cells"].to_numpy(np.float64)
    bins = np.arange(np.floor(sizes.min()), np.ceil(sizes.max()) + 2) - 0.5
    if len(bins) > 41:
        bins = np.linspace(sizes.min(), sizes.max() + 1, 41)
    if "split" in obs.columns:
        split = obs["split"].astype(str)
        names = [s for s in SPLIT_COLOURS if (split == s).any()]
        names += sorted(set(split) - set(names))
        ax.hist(
            [sizes[(split == s).to_numpy()] for s in names],
            bins=bins,
            stacked=True,
            label=[f"{s} ({int((split == s).sum())})" for s in names],
            color=[SPLIT_COLOURS.get(s, "grey") for s in names],
        )
        ax.legend(title="split", fontsize=7, title_fontsize=7)
    else:
        ax.hist(sizes, bins=bins, color="tab:blue")
    ax.set(
        xlabel="cells per metacell",
        ylabel="metacells",
        title=f"{len(sizes):,} metacells, median {np.median(sizes):.0f} cells",
    )
    ax.title.set_fontsize(9)


def _note(ax, text: str, title: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set(title=title, xticks=[], yticks=[])
    ax.title.set_fontsize(9)
