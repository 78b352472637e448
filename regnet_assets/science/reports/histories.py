"""Training histories as scMEDAL users read them: every fold's curve, their mean, and plots.

``history_allfolds`` stacks the per-epoch history of every fold-wise training (one ``model``
column, e.g. ``kpnn_full``); ``mean_history_allfolds`` averages it over folds per epoch. With
early stopping, folds stop at different epochs: the mean at an epoch is over the folds that
reached it, and ``n_folds`` says how many did (scMEDAL trains every fold for the same epochs,
so its mean never faces this).

For the per-gene models there are no folds; the plots show one gene's curves and where every
gene's best epoch fell: many genes peaking at the last epoch means training stopped too soon.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from regnet_assets.science.common.figures import figure

KEYS = ("model", "fold", "epoch")


def history_allfolds(histories: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One frame of ``model, fold, epoch, <metrics>`` from ``{model: history with fold, epoch}``."""
    parts = []
    for model, history in histories.items():
        missing = {"fold", "epoch"} - set(history.columns)
        if missing:
            raise ValueError(f"history of {model!r} lacks column(s) {sorted(missing)}")
        parts.append(history.assign(model=model))
    if not parts:
        raise ValueError("no fold-wise training history to stack")
    out = pd.concat(parts, ignore_index=True)
    metrics = [c for c in out.columns if c not in KEYS]
    return out[[*KEYS, *metrics]].sort_values(list(KEYS), ignore_index=True)


def metric_columns(history: pd.DataFrame) -> list[str]:
    """The numeric columns of a history that are metrics (not keys)."""
    return [c for c in history.columns if c not in KEYS and pd.api.types.is_numeric_dtype(history[c])]


def mean_history(history: pd.DataFrame) -> pd.DataFrame:
    """Per model and epoch: each metric's mean over folds (same name), ``_min``, ``_max``, ``_std``."""
    metrics = metric_columns(history)
    grouped = history.groupby(["model", "epoch"], sort=True)
    out = grouped[metrics].mean()
    for stat in ("min", "max", "std"):
        out = out.join(grouped[metrics].agg(stat).add_suffix(f"_{stat}"))
    out.insert(0, "n_folds", grouped["fold"].nunique())
    return out.reset_index()


def plot_mean_history(mean: pd.DataFrame, metrics: tuple[str, ...] = ("train_loss", "valid_loss")):
    """One panel per model: mean loss over folds per epoch with the min–max range shaded."""
    models = list(dict.fromkeys(mean["model"]))
    fig, axes = figure(ncols=len(models), figsize=(4.2 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        sub = mean[mean["model"] == model]
        for metric in metrics:
            if metric not in sub:
                continue
            (line,) = ax.plot(sub["epoch"], sub[metric], label=f"{metric} (mean)")
            ax.fill_between(
                sub["epoch"],
                sub[f"{metric}_min"],
                sub[f"{metric}_max"],
                alpha=0.2,
                color=line.get_color(),
                linewidth=0,
            )
        ax.set(title=f"{model} ({int(sub['n_folds'].max())} folds)", xlabel="epoch", ylabel="loss")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.suptitle("Loss across folds: mean, shaded min–max", fontsize=9)
    fig.tight_layout()
    return fig


def plot_gene_history(history: pd.DataFrame, gene: str, best_epoch: int | None = None):
    """One gene's train/valid loss per epoch, its valid Spearman on a second axis, the best epoch."""
    fig, ax = figure(figsize=(5.2, 3.4))
    ax.plot(history["epoch"], history["train_loss"], label="train loss")
    ax.plot(history["epoch"], history["valid_loss"], label="valid loss")
    ax.set(xlabel="epoch", ylabel="Poisson NLL (up to a constant)", title=f"{gene}: training curve")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    twin = ax.twinx()
    twin.plot(
        history["epoch"], history["valid_spearman"], color="tab:green", linestyle=":", label="valid Spearman"
    )
    twin.set_ylabel("valid Spearman")
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best_epoch}")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def best_epoch_summary(models: pd.DataFrame) -> dict:
    """Median best epoch and how many genes peaked at their last epoch (still improving)."""
    trained = models.dropna(subset=["best_epoch", "epochs_run"])
    at_last = trained["best_epoch"] >= trained["epochs_run"]
    return {
        "best_epoch_median": float(trained["best_epoch"].median()) if len(trained) else float("nan"),
        "n_best_at_last_epoch": int(at_last.sum()),
    }


def plot_best_epochs(models: pd.DataFrame):
    """Histogram of the best epoch over genes; the last epoch marked (peaks there = under-trained)."""
    trained = models.dropna(subset=["best_epoch", "epochs_run"])
    last = int(trained["epochs_run"].max()) if len(trained) else 1
    fig, ax = figure(figsize=(5.2, 3.4))
    ax.hist(trained["best_epoch"], bins=np.arange(0.5, last + 1.5, max(1, last // 40)), color="tab:blue")
    ax.axvline(last, color="grey", linestyle="--", linewidth=1)
    n_last = best_epoch_summary(trained)["n_best_at_last_epoch"]
    ax.set(
        xlabel="best epoch (highest valid Spearman)",
        ylabel="genes",
        title=f"{len(trained)} genes; {n_last} peaked at the last epoch ({last})",
    )
    fig.tight_layout()
    return fig
