"""The KPNN's data: binary condition labels per cell, a stratified subsample, and the
log-normalised expression of the network's input genes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from regnet_assets.science.common.normalise import log_cp10k, row_totals
from regnet_assets.science.common.obs import obs_column
from regnet_assets.science.network.build import network_inputs, network_root
from regnet_assets.science.network.pkn import GENE_SUFFIX

__all__ = ["condition_labels", "subsample_cells", "kpnn_expression", "kpnn_data"]


def condition_labels(obs_values: pd.Series | None, column: str, positive: str = "") -> tuple[pd.Series, dict]:
    """Binary 0/1 labels from an obs column; cells without a label are dropped and counted.

    ``positive`` names the class coded 1; empty = the last category of a categorical column
    (the simulator's ``stimulated``), else the last in sorted order.
    """
    if obs_values is None:
        raise ValueError(
            f"labels: obs has no column {column!r}; the KPNN needs a binary class label per cell"
        )
    values = obs_values.dropna()
    if isinstance(values.dtype, pd.CategoricalDtype):
        classes = [c for c in values.cat.categories if (values == c).any()]
    else:
        classes = sorted(values.astype(str).unique())
        values = values.astype(str)
    classes = [str(c) for c in classes]
    if len(classes) != 2:
        raise ValueError(
            f"labels: obs[{column!r}] must have exactly 2 classes, found {len(classes)}: {classes[:10]}"
        )
    positive = positive or classes[-1]
    if positive not in classes:
        raise ValueError(
            f"labels: positive class {positive!r} is not one of obs[{column!r}]'s classes {classes}"
        )
    negative = next(c for c in classes if c != positive)
    y = (values.astype(str) == positive).astype(np.int64)
    return y, {
        "positive": positive,
        "negative": negative,
        "unlabelled_cells": int(len(obs_values) - len(values)),
        "n_positive": int(y.sum()),
        "n_negative": int((1 - y).sum()),
    }


def subsample_cells(y: pd.Series, max_cells: int, seed: int) -> pd.Series:
    """A stratified, seeded subsample of at most ``max_cells`` cells (all cells when 0 or more)."""
    if not max_cells or max_cells >= len(y):
        return y
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(
        np.arange(len(y)), train_size=int(max_cells), stratify=y.to_numpy(), random_state=seed
    )
    return y.iloc[np.sort(keep)]


def kpnn_expression(rna, inputs: Sequence[str], cells: Sequence[str] | None = None) -> pd.DataFrame:
    """Cells × inputs of log1p(counts / total counts × 1e4) (scanpy normalize_total + log1p).

    Totals are over every measured gene; ``inputs`` are ``<SYMBOL>_gene`` names (the columns).
    """
    X = rna.X
    rows = slice(None) if cells is None else rna.obs_names.get_indexer(list(cells))
    symbols = [i[: -len(GENE_SUFFIX)] if i.endswith(GENE_SUFFIX) else i for i in inputs]
    cols = rna.var_names.get_indexer(symbols)
    if (cols < 0).any():
        missing = [s for s, c in zip(symbols, cols) if c < 0]
        raise ValueError(f"inputs: {len(missing)} input gene(s) are not measured, e.g. {missing[:10]}")
    X = X[rows]
    values = log_cp10k(X[:, cols], row_totals(X), np.float32)
    index = rna.obs_names if cells is None else pd.Index(list(cells))
    return pd.DataFrame(values, index=index, columns=list(inputs))


def kpnn_data(
    mdata,
    networks: Mapping[str, pd.DataFrame],
    label: str,
    positive: str = "",
    max_cells: int = 0,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.Series, dict]:
    """(cells × the union of every network's inputs, labels, label report) for the KPNN.

    Labels come from ``obs[label]`` (:func:`condition_labels`), then a stratified seeded subsample
    of at most ``max_cells`` cells (0 = all); ValueError names what is wrong.
    """
    if max_cells < 0:
        raise ValueError(f"KPNNTrainingConfig.max_cells must be >= 0 (0 = all cells), got {max_cells}")
    y, info = condition_labels(obs_column(mdata, label), label, positive)
    y = subsample_cells(y, max_cells, seed)
    for edges in networks.values():
        network_root(edges)  # one output node each, or a PKNError before any expression is read
    inputs = list(dict.fromkeys(i for edges in networks.values() for i in network_inputs(edges)))
    return kpnn_expression(mdata["rna"], inputs, cells=y.index), y, info
