"""Clustering scores of a representation against cell labels, and their summary over folds.

Two conventions are reported side by side, under distinct names, because they disagree:

- scMEDAL: raw sklearn silhouette (ASW, euclidean, in [-1, 1]), Davies-Bouldin, Calinski-Harabasz,
  computed on one subsample per representation, for *every* label (batch ideally low, bio high).
- scIB: ``asw_label_scib = (ASW + 1) / 2`` for biological labels and ``asw_batch_scib`` =
  mean over cell types of the mean per-cell ``1 - |s|``, where ``s`` is the silhouette with respect
  to batch computed *within* that cell type (1 = batches perfectly mixed).

The raw batch silhouette is global and signed; the scIB batch ASW is local and unsigned, so the
two are not interchangeable and must not share a column name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import (
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_samples,
    silhouette_score,
)

__all__ = [
    "SCORE_COLUMNS",
    "clustering_scores",
    "scib_batch_asw",
    "summarise_scores",
    "plot_scores",
]

#: Metric columns produced by :func:`clustering_scores` (all "higher is better" except davies_bouldin).
SCORE_COLUMNS = [
    "silhouette",
    "davies_bouldin",
    "inv_davies_bouldin",
    "calinski_harabasz",
    "asw_label_scib",
    "asw_batch_scib",
]


def _missing(values: np.ndarray) -> np.ndarray:
    """Mask of missing labels (None/NaN), whatever the dtype."""
    return pd.isna(pd.Series(values, copy=False)).to_numpy()


def scib_batch_asw(embedding: np.ndarray, batch: np.ndarray, cell_type: np.ndarray) -> tuple[float, str]:
    """scIB batch ASW: per cell type, per-cell ``1 - |silhouette w.r.t. batch|``, mean per cell type, then mean.

    Cell types with one batch, or with as many batches as cells, are skipped (silhouette undefined),
    as in scIB / scib-metrics. Returns ``(value, note)``; value is NaN with a reason if no cell type is left.
    Cell types are weighted equally (not by size) on purpose: that is the scIB definition.
    """
    embedding = np.asarray(embedding, dtype=float)
    batch = np.asarray(batch)
    cell_type = np.asarray(cell_type)
    per_type: list[float] = []
    for ct in pd.unique(cell_type):
        mask = cell_type == ct
        b = batch[mask]
        n_batches = len(pd.unique(b))
        if n_batches == 1 or n_batches == mask.sum():
            continue
        s = silhouette_samples(embedding[mask], b, metric="euclidean")
        per_type.append(float(np.mean(1.0 - np.abs(s))))
    if not per_type:
        return float("nan"), "no cell type has >=2 batches and fewer batches than cells"
    return float(np.mean(per_type)), ""


def _nan_row(label: str, n_cells: int, n_classes: int, note: str) -> dict:
    row = {"label": label, "n_cells": n_cells, "n_classes": n_classes}
    row.update({c: np.nan for c in SCORE_COLUMNS})
    row["note"] = note
    return row


def clustering_scores(
    embedding: np.ndarray,
    labels: Mapping[str, Sequence],
    sample_size: int | None = 10_000,
    seed: int = 0,
    *,
    batch_key: str = "batch",
    cell_type_key: str = "cell_type",
) -> pd.DataFrame:
    """Silhouette, Davies-Bouldin and Calinski-Harabasz of ``embedding`` against each label.

    One seeded subsample (``sample_size`` cells, without replacement) is drawn once and used for every
    label and every metric, so the metrics are comparable; scMEDAL did the same but unseeded.
    Rows with a non-finite embedding are dropped first; cells with a missing label are dropped for
    that label only. A label with fewer than 2 classes (or one class per cell) gives NaN scores and a
    ``note``, not an error, because a fold may legitimately contain a single batch.

    Columns: ``label, n_cells, n_classes`` then :data:`SCORE_COLUMNS` then ``note``.
    ``asw_label_scib`` is filled for labels other than ``batch_key``; ``asw_batch_scib`` only on the
    ``batch_key`` row and only if ``cell_type_key`` is also among the labels.
    """
    emb = np.asarray(embedding, dtype=float)
    if emb.ndim != 2:
        raise ValueError(f"embedding must be 2-D (cells x dims), got shape {emb.shape}")
    n = emb.shape[0]
    lab = {k: np.asarray(v) for k, v in labels.items()}
    for k, v in lab.items():
        if v.shape != (n,):
            raise ValueError(f"label {k!r} has shape {v.shape}, expected ({n},)")

    finite = np.flatnonzero(np.isfinite(emb).all(axis=1))
    rng = np.random.default_rng(seed)
    if sample_size and sample_size < finite.size:
        idx = np.sort(rng.choice(finite, size=int(sample_size), replace=False))
    else:
        idx = finite
    x = emb[idx]
    sub = {k: v[idx] for k, v in lab.items()}

    rows = []
    for name, values in sub.items():
        keep = ~_missing(values)
        xv, yv = x[keep], values[keep]
        n_cells = int(keep.sum())
        n_classes = int(len(pd.unique(yv)))
        if n_classes < 2:
            rows.append(_nan_row(name, n_cells, n_classes, f"{n_classes} class(es): scores need >=2"))
            continue
        if n_classes >= n_cells:
            rows.append(_nan_row(name, n_cells, n_classes, "one class per cell: silhouette undefined"))
            continue
        sil = float(silhouette_score(xv, yv, metric="euclidean"))
        db = float(davies_bouldin_score(xv, yv))
        row = {
            "label": name,
            "n_cells": n_cells,
            "n_classes": n_classes,
            "silhouette": sil,
            "davies_bouldin": db,
            "inv_davies_bouldin": 1.0 / db if db > 0 else np.inf,
            "calinski_harabasz": float(calinski_harabasz_score(xv, yv)),
            "asw_label_scib": np.nan,
            "asw_batch_scib": np.nan,
            "note": "",
        }
        if name != batch_key:
            row["asw_label_scib"] = (sil + 1.0) / 2.0
        elif cell_type_key in sub:
            both = keep & ~_missing(sub[cell_type_key])
            row["asw_batch_scib"], row["note"] = scib_batch_asw(
                x[both], values[both], sub[cell_type_key][both]
            )
        else:
            row["note"] = f"asw_batch_scib needs a {cell_type_key!r} label"
        rows.append(row)
    return pd.DataFrame(rows, columns=["label", "n_cells", "n_classes", *SCORE_COLUMNS, "note"])


def summarise_scores(
    scores: pd.DataFrame,
    *,
    fold_col: str = "fold",
    representation_col: str = "representation",
    label_col: str = "label",
    batch_label: str = "batch",
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean, SD (ddof=1), SEM and t-based CI over folds, per representation / label / metric.

    The CI uses df = n_folds - 1 for each group (scMEDAL fixed df = 4 whatever the number of folds,
    which is wrong for anything but 5 folds). n_folds counts the folds with a finite value; with one
    fold SD, SEM and CI are NaN. ``fold_min_batch_silhouette`` / ``fold_max_batch_silhouette`` name the
    folds with the lowest / highest *raw* batch silhouette of that representation (scMEDAL's intent).
    If there is no representation column, all rows are treated as one representation.
    """
    df = scores.copy()
    if representation_col not in df:
        df[representation_col] = "representation"
    if metrics is None:
        metrics = [c for c in SCORE_COLUMNS if c in df]
    long = df.melt(
        id_vars=[representation_col, label_col, fold_col],
        value_vars=list(metrics),
        var_name="metric",
        value_name="value",
    )
    long = long[np.isfinite(long["value"].astype(float))]
    g = long.groupby([representation_col, label_col, "metric"], sort=False)["value"]
    out = g.agg(mean="mean", std=lambda v: v.std(ddof=1), n_folds="count").reset_index()
    out["sem"] = out["std"] / np.sqrt(out["n_folds"])
    dof = out["n_folds"] - 1
    tcrit = np.where(dof >= 1, stats.t.ppf(0.5 + confidence / 2.0, np.maximum(dof, 1)), np.nan)
    out["ci_lower"] = out["mean"] - tcrit * out["sem"]
    out["ci_upper"] = out["mean"] + tcrit * out["sem"]
    out["ci_df"] = dof.where(dof >= 1)

    batch = df[(df[label_col] == batch_label) & np.isfinite(df["silhouette"].astype(float))]
    lo = batch.loc[batch.groupby(representation_col)["silhouette"].idxmin(), [representation_col, fold_col]]
    hi = batch.loc[batch.groupby(representation_col)["silhouette"].idxmax(), [representation_col, fold_col]]
    out = out.merge(
        lo.rename(columns={fold_col: "fold_min_batch_silhouette"}), on=representation_col, how="left"
    )
    out = out.merge(
        hi.rename(columns={fold_col: "fold_max_batch_silhouette"}), on=representation_col, how="left"
    )
    cols = [
        representation_col,
        label_col,
        "metric",
        "mean",
        "std",
        "sem",
        "ci_lower",
        "ci_upper",
        "ci_df",
        "n_folds",
        "fold_min_batch_silhouette",
        "fold_max_batch_silhouette",
    ]
    return out[cols]


def plot_scores(
    summary: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    representation_col: str = "representation",
    label_col: str = "label",
):
    """Bar chart of the mean with its CI, one panel per metric, bars grouped by representation, hue = label.

    Uses ``matplotlib.figure.Figure`` directly (no pyplot) so nothing leaks into global figure state
    when called from a long-running orchestrator process.
    """
    import matplotlib
    from matplotlib.figure import Figure

    if metrics is None:
        metrics = [m for m in SCORE_COLUMNS if m in set(summary["metric"])]
    reps = list(pd.unique(summary[representation_col]))
    labels = list(pd.unique(summary[label_col]))
    n_panels = max(len(metrics), 1)
    fig = Figure(figsize=(max(3.0, 1.2 * len(reps) + 1.5) * min(n_panels, 3), 3.2 * ((n_panels + 2) // 3)))
    width = 0.8 / max(len(labels), 1)
    cmap = matplotlib.colormaps["tab10"]
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot((n_panels + 2) // 3, min(n_panels, 3), i + 1)
        sub = summary[summary["metric"] == metric]
        for j, lab in enumerate(labels):
            s = sub[sub[label_col] == lab].set_index(representation_col).reindex(reps)
            if s["mean"].isna().all():
                continue
            x = np.arange(len(reps)) + (j - (len(labels) - 1) / 2) * width
            err = np.vstack([s["mean"] - s["ci_lower"], s["ci_upper"] - s["mean"]])
            ax.bar(
                x,
                s["mean"],
                width=width,
                color=cmap(j % 10),
                label=str(lab),
                yerr=np.nan_to_num(err),
                capsize=3,
                error_kw={"linewidth": 0.8},
            )
        ax.set_xticks(np.arange(len(reps)))
        ax.set_xticklabels([str(r) for r in reps], rotation=30, ha="right", fontsize=8)
        ax.set_title(metric, fontsize=9)
        ax.axhline(0, color="black", linewidth=0.5)
        if i == 0:
            ax.legend(fontsize=7, frameon=False)
    fig.suptitle("Clustering scores (mean ± t-CI over folds)", fontsize=10)
    fig.tight_layout()
    return fig
