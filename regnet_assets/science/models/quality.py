"""How good the per-gene models are: summaries a Cell2Net user reads, and the oracle ceiling.

The seed tutorial interprets results by counts (valid Spearman > 0.7 learned, < 0.3 not
captured, train ≫ valid overfit) and by the train-vs-valid scatter with its diagonal; both
are produced here. On simulated data the *oracle ceiling* — Spearman between the observed
valid counts and the simulator's true rates — says how much of the remaining error is
sampling noise no model could remove.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from regnet_assets.science.common.correlation import pearson, spearman
from regnet_assets.science.common.figures import figure

OVERFIT_GAP = 0.2  # "train ≫ valid": train Spearman above valid by more than this


def performance_summary(correlation: pd.DataFrame) -> pd.DataFrame:
    """One row over all trained genes: quantiles of valid Spearman and the seed's counts."""
    valid = correlation["valid_spearman"].dropna()
    train = correlation.loc[valid.index, "train_spearman"]
    row = {
        "n_genes": int(len(valid)),
        "valid_spearman_median": valid.median(),
        "valid_spearman_q25": valid.quantile(0.25),
        "valid_spearman_q75": valid.quantile(0.75),
        "valid_spearman_mean": valid.mean(),
        "n_valid_above_0_7": int((valid > 0.7).sum()),
        "n_valid_below_0_3": int((valid < 0.3).sum()),
        "n_train_much_above_valid": int((train - valid > OVERFIT_GAP).sum()),
    }
    if "oracle_spearman" in correlation and correlation["oracle_spearman"].notna().any():
        oracle = correlation.loc[valid.index, "oracle_spearman"]
        row["oracle_spearman_median"] = oracle.median()
        row["fraction_of_oracle_median"] = (valid / oracle).median()
    return pd.DataFrame([row])


def plot_train_vs_valid(correlation: pd.DataFrame):
    """Train vs valid Spearman per gene with the y = x diagonal (below it: overfitting)."""
    fig, ax = figure(figsize=(4.5, 4.5))
    ax.scatter(correlation["train_spearman"], correlation["valid_spearman"], s=12, alpha=0.7)
    lo = float(np.nanmin([correlation["train_spearman"].min(), correlation["valid_spearman"].min(), 0]))
    ax.plot([lo, 1], [lo, 1], color="grey", linestyle="--", linewidth=1)
    ax.set(
        xlabel="train Spearman",
        ylabel="valid Spearman",
        title=f"{correlation['valid_spearman'].notna().sum()} genes",
    )
    fig.tight_layout()
    return fig


def correlation_row(predictions: pd.DataFrame) -> dict:
    """Train/valid Spearman and Pearson between observed and predicted counts (scipy)."""
    out = {}
    for split in ("train", "valid"):
        sel = predictions[predictions["split"] == split]
        obs, pred = sel["observed"].to_numpy(), sel["predicted"].to_numpy()
        out[f"{split}_spearman"] = spearman(obs, pred)
        out[f"{split}_pearson"] = pearson(obs, pred)
        out[f"n_{split}"] = int(len(sel))
    return out


def oracle_spearman(predictions: pd.DataFrame, rna, gene: str) -> float:
    """Spearman of the observed valid counts with the simulator's true rates, the ceiling any
    model can reach (NaN when ``rna`` has no ``true_rate`` layer, i.e. on real data)."""
    if "true_rate" not in rna.layers:
        return float("nan")
    true_rate = rna.layers["true_rate"]
    valid = predictions[predictions["split"] == "valid"]
    rows = rna.obs_names.get_indexer(valid["metacell"])
    column = rna.var_names.get_loc(gene)
    rate = np.asarray(
        true_rate[rows, column].todense() if hasattr(true_rate, "todense") else true_rate[rows, column]
    ).ravel()
    return spearman(valid["observed"], rate)
