"""The TF ablation: each gene's model without its TF branch, and which genes need TFs to be
predicted (their rank with TFs against their rank without)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from regnet_assets.science.reports import programs

__all__ = ["without_tf_branch", "tf_dependence", "plot_gene_ranks"]


def without_tf_branch(inputs):
    """The same :class:`training.GeneInputs` with every TF expression set to 0 (chromatin only).

    Equivalent to a model without the TF branch: TF expression enters the model only as inputs of
    the head's first Linear layer (before its ReLU). With zero inputs those columns contribute
    nothing to the output and receive an exactly zero loss gradient, so every other parameter sees
    the gradients of a chromatin-only model; Adam is element-wise (no gradient clipping), so the
    weight-decay updates of the dead TF columns never touch another parameter. The only trace of
    the TF columns is the head's initialisation scale, whose fan-in still counts them. Keeping the
    shapes lets the ablated genes train in the same batched computation and with the same
    per-gene seeds as the full models.
    """
    return [replace(x, tf_exp=np.zeros_like(x.tf_exp)) for x in inputs]


def tf_dependence(full: pd.DataFrame, ablated: pd.DataFrame, metric: str = "test_spearman") -> pd.DataFrame:
    """Per gene: ``metric`` of the full and the ablated model, their ranks, rank difference and
    score delta (:func:`programs.gene_ranks`); the last row per gene counts."""

    def scores(frame):
        frame = frame.drop_duplicates("gene", keep="last").set_index("gene")
        return frame[metric].astype(float) if metric in frame else pd.Series(dtype=float)

    ranks = programs.gene_ranks(scores(full), scores(ablated))
    ranks.insert(1, "metric", metric)
    ranks["score_delta"] = ranks["score_full"] - ranks["score_ablated"]
    return ranks


def plot_gene_ranks(ranks: pd.DataFrame, top_n: int = 5):
    """Rank with TFs (x) against rank without (y), the y = x line, and the genes that gain most
    from the TFs labelled (InterScale's ``pl.gene_ranks``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.8, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    r = ranks.dropna(subset=["rank_full", "rank_ablated"])
    ax.scatter(r["rank_full"], r["rank_ablated"], s=14, color="tab:blue", alpha=0.8)
    hi = float(max(r["rank_full"].max(), r["rank_ablated"].max())) if len(r) else 1.0
    ax.plot([0, hi + 1], [0, hi + 1], color="grey", linestyle="--", linewidth=1)
    for _, row in r.nlargest(top_n, "rank_diff").iterrows():
        ax.annotate(
            str(row["gene"]),
            (row["rank_full"], row["rank_ablated"]),
            fontsize=7,
            xytext=(3, -8),
            textcoords="offset points",
            color="tab:red",
        )
    ax.set_xlabel("rank, full model (higher = better)")
    ax.set_ylabel("rank, chromatin only (no TF branch)")
    ax.set_title("Gene ranks by valid Spearman (red: most TF-dependent)", fontsize=9)
    fig.tight_layout()
    return fig
