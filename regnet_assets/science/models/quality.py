"""How good the per-gene models are: summaries a Cell2Net user reads, and the oracle ceiling.

The seed tutorial interprets results by counts (valid Spearman > 0.7 learned, < 0.3 not
captured, train ≫ valid overfit) and by the train-vs-valid scatter with its diagonal; both
are produced here, on the **test** split (cells held out before the metacells were built).
On simulated data the *oracle ceiling* — Spearman between the observed test counts and the
simulator's true rates — says how much of the remaining error is sampling noise no model could
remove; the *cell-type × depth null* says how much needs no regulation at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import PoissonRegressor

from regnet_assets.science.common.correlation import pearson, spearman
from regnet_assets.science.common.figures import figure
from regnet_assets.science.models.glm_start import SOLVER

SPLITS = ("train", "valid", "test")

OVERFIT_GAP = 0.2  # "train ≫ valid": train Spearman above valid by more than this


def performance_summary(correlation: pd.DataFrame) -> pd.DataFrame:
    """One row over all trained genes: quantiles of the **test** Spearman (the held-out cells'
    metacells, never used for training or model selection), the seed's counts on it, the valid
    median beside it, and on simulated data the oracle ceiling and the cell-type × depth null."""
    test = correlation["test_spearman"].dropna()
    train = correlation.loc[test.index, "train_spearman"]
    row = {
        "n_genes": int(len(test)),
        "test_spearman_median": test.median(),
        "test_spearman_q25": test.quantile(0.25),
        "test_spearman_q75": test.quantile(0.75),
        "test_spearman_mean": test.mean(),
        "valid_spearman_median": correlation.loc[test.index, "valid_spearman"].median(),
        "n_test_above_0_7": int((test > 0.7).sum()),
        "n_test_below_0_3": int((test < 0.3).sum()),
        "n_train_much_above_test": int((train - test > OVERFIT_GAP).sum()),
        "null_spearman_median": correlation.loc[test.index, "null_spearman"].median(),
    }
    if "oracle_spearman" in correlation and correlation["oracle_spearman"].notna().any():
        oracle = correlation.loc[test.index, "oracle_spearman"]
        row["oracle_spearman_median"] = oracle.median()
        row["fraction_of_oracle_median"] = (test / oracle).median()
    return pd.DataFrame([row])


def plot_train_vs_valid(correlation: pd.DataFrame):
    """Train vs test Spearman per gene with the y = x diagonal (below it: overfitting)."""
    fig, ax = figure(figsize=(4.5, 4.5))
    ax.scatter(correlation["train_spearman"], correlation["test_spearman"], s=12, alpha=0.7)
    lo = float(np.nanmin([correlation["train_spearman"].min(), correlation["test_spearman"].min(), 0]))
    ax.plot([lo, 1], [lo, 1], color="grey", linestyle="--", linewidth=1)
    ax.set(
        xlabel="train Spearman",
        ylabel="test Spearman",
        title=f"{correlation['test_spearman'].notna().sum()} genes",
    )
    fig.tight_layout()
    return fig


def correlation_row(predictions: pd.DataFrame) -> dict:
    """Train/valid/test Spearman and Pearson between observed and predicted counts (scipy)."""
    out = {}
    for split in SPLITS:
        sel = predictions[predictions["split"] == split]
        obs, pred = sel["observed"].to_numpy(), sel["predicted"].to_numpy()
        out[f"{split}_spearman"] = spearman(obs, pred)
        out[f"{split}_pearson"] = pearson(obs, pred)
        out[f"n_{split}"] = int(len(sel))
    return out


def oracle_spearman(predictions: pd.DataFrame, rna, gene: str) -> float:
    """Spearman of the observed test counts with the simulator's true rates, the ceiling any
    model can reach (NaN when ``rna`` has no ``true_rate`` layer, i.e. on real data)."""
    if "true_rate" not in rna.layers:
        return float("nan")
    true_rate = rna.layers["true_rate"]
    test = predictions[predictions["split"] == "test"]
    rows = rna.obs_names.get_indexer(test["metacell"])
    column = rna.var_names.get_loc(gene)
    rate = np.asarray(
        true_rate[rows, column].todense() if hasattr(true_rate, "todense") else true_rate[rows, column]
    ).ravel()
    return spearman(test["observed"], rate)


def null_spearman(predictions: pd.DataFrame, design: pd.DataFrame) -> float:
    """Test Spearman of a predictor that knows only each metacell's cell type and depth.

    A Poisson GLM (scikit-learn, a tiny ridge for separable types) on one-hot cell type and the
    log RNA depth, fitted on the train metacells: what a model reaches without learning any
    regulation, the floor the gene's model must clear. ``design``: indexed by metacell, columns
    ``cell_type`` (any label) and ``depth_log``.
    """
    pred = predictions.set_index(predictions["metacell"].astype(str))
    x = design.reindex(pred.index)
    features = pd.get_dummies(x["cell_type"].astype(str), dtype=float)
    features["depth_log"] = x["depth_log"].to_numpy(float)
    train, test = (pred["split"] == "train").to_numpy(), (pred["split"] == "test").to_numpy()
    if test.sum() < 2 or train.sum() < 2:
        return float("nan")
    glm = PoissonRegressor(alpha=1e-4, solver=SOLVER, max_iter=1000).fit(
        features[train], pred["observed"][train]
    )
    return spearman(pred["observed"][test], glm.predict(features[test]))


def pick_genes_across_range(correlation: pd.DataFrame, n: int = 9) -> pd.DataFrame:
    """Up to ``n`` trained genes spread evenly over the test-Spearman ranking, best first
    (with ``n = 9``: best, the octiles, so both quartiles and the median, and worst); rows
    ``gene, test_spearman``."""
    trained = correlation
    if "status" in correlation.columns:
        trained = correlation[correlation["status"] == "trained"]
    scored = (
        trained.dropna(subset=["test_spearman"])
        .drop_duplicates("gene")
        .sort_values(["test_spearman", "gene"], ascending=[False, True], kind="stable")
        .reset_index(drop=True)
    )
    if scored.empty or n < 1:
        return scored[["gene", "test_spearman"]].iloc[:0]
    rows = np.unique(np.round(np.linspace(0, len(scored) - 1, min(n, len(scored)))).astype(int))
    return scored.loc[rows, ["gene", "test_spearman"]].reset_index(drop=True)


def plot_test_predictions(predictions: pd.DataFrame, correlation: pd.DataFrame, n: int = 9):
    """Observed vs predicted counts of the test metacells (``split == "test"``) for ``n`` genes
    picked across the test-Spearman range (:func:`pick_genes_across_range`), each with the
    y = x diagonal and titled with the gene and its test Spearman (2 decimals)."""
    test = predictions[predictions["split"].astype(str) == "test"]
    picked = pick_genes_across_range(correlation[correlation["gene"].isin(set(test["gene"]))], n)
    if picked.empty:
        fig, ax = figure(figsize=(5.0, 3.0))
        ax.text(0.5, 0.5, "no trained gene with test predictions", ha="center", va="center")
        ax.set(xticks=[], yticks=[], title="observed vs predicted (test)")
        return fig
    ncols = int(np.ceil(np.sqrt(max(n, 1))))
    nrows = int(np.ceil(max(n, 1) / ncols))
    fig, axes = figure(nrows=nrows, ncols=ncols, figsize=(9.0, 2.6 * nrows + 0.4), squeeze=False)
    flat = axes.ravel()
    for ax, (gene, rho) in zip(flat, picked.itertuples(index=False)):
        sel = test[test["gene"] == gene]
        obs, pred = sel["observed"].to_numpy(float), sel["predicted"].to_numpy(float)
        ax.scatter(obs, pred, s=10, alpha=0.7)
        finite = np.concatenate([obs, pred])
        finite = finite[np.isfinite(finite)]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1)
        ax.set_title(f"{gene}  ρ = {rho:.2f}", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in flat[len(picked) :]:
        ax.remove()
    fig.supxlabel("observed count (test metacells)", fontsize=9)
    fig.supylabel("predicted count", fontsize=9)
    fig.suptitle(f"Test split: {len(picked)} genes from best to worst test Spearman", fontsize=10)
    fig.tight_layout()
    return fig
