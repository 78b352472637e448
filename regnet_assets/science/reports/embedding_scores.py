"""Clustering scores of every (representation, fold, split) of the long embeddings table, and
their across-fold summary per split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from regnet_assets.science.reports import clustering

__all__ = ["score_embeddings", "summarise_by_split"]


def score_embeddings(
    embeddings: pd.DataFrame,
    *,
    splits: Sequence[str] = ("test",),
    sample_size: int | None = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`clustering.clustering_scores` of every (representation, fold, split) of the long
    ``embeddings`` table against ``cell_type`` (bio) and ``batch`` (technical), where present.

    Columns: representation, level, fold, split, label, label_role, then clustering's columns.
    The same seeded subsample serves every label of one embedding (clustering's rule).
    """
    rows = []
    sel = embeddings[embeddings["split"].isin(list(splits))]
    for (rep, level, fold, split), part in sel.groupby(
        ["representation", "level", "fold", "split"], sort=True
    ):
        wide = part.pivot_table(index="obs_name", columns="dim_index", values="value", aggfunc="first")
        meta = part.drop_duplicates("obs_name").set_index("obs_name").reindex(wide.index)
        labels = {
            col: meta[col].to_numpy(dtype=object) for col in ("cell_type", "batch") if meta[col].notna().any()
        }
        if not labels:
            continue
        s = clustering.clustering_scores(
            wide.to_numpy(float),
            labels,
            sample_size=sample_size or None,
            seed=seed,
            batch_key="batch",
            cell_type_key="cell_type",
        )
        s.insert(0, "split", split)
        s.insert(0, "fold", int(fold))
        s.insert(0, "level", level)
        s.insert(0, "representation", rep)
        s.insert(
            s.columns.get_loc("label") + 1, "label_role", np.where(s["label"] == "batch", "batch", "bio")
        )
        rows.append(s)
    if not rows:
        return pd.DataFrame(
            columns=[
                "representation",
                "level",
                "fold",
                "split",
                "label",
                "label_role",
                "n_cells",
                "n_classes",
                *clustering.SCORE_COLUMNS,
                "note",
            ]
        )
    return pd.concat(rows, ignore_index=True)


def summarise_by_split(scores: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """:func:`clustering.summarise_scores` per split (t CI with n_folds - 1 df), with a split column."""
    parts = []
    for split, sub in scores.groupby("split", sort=True):
        out = clustering.summarise_scores(sub, batch_label="batch", confidence=confidence)
        out.insert(1, "split", split)
        parts.append(out)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
