"""The rows the models stage writes per gene, trained or skipped, and the checks on them.

``run_tables`` gives, per table, ``{gene: rows}``, so that each gene's rows land in its own
partition; skipped genes get a status row and empty tables, so a rerun overwrites stale rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from regnet_assets.science.common.obs import obs_column
from regnet_assets.science.models.quality import correlation_row, null_spearman, oracle_spearman
from regnet_assets.science.models.trainer import GeneResult

TABLES = ("gene_models", "training_history", "predictions", "gene_correlation")
_SUMMARY = (
    "n_peaks",
    "n_tfs",
    "n_params",
    "best_epoch",
    "epochs_run",
    "train_loss",
    "valid_loss",
    "device",
    "seconds",
)


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})


def run_tables(
    results: list[GeneResult], skipped: dict[str, str], metacells
) -> dict[str, dict[str, pd.DataFrame]]:
    """Per table of :data:`TABLES`, ``{gene: rows}`` for every trained and every skipped gene.

    ``metacells``: the MuData the genes were trained on (its ``rna`` true rates, when simulated,
    give ``gene_correlation.oracle_spearman``).
    """
    rna = metacells["rna"]
    design = null_design(metacells)
    out: dict[str, dict[str, pd.DataFrame]] = {name: {} for name in TABLES}
    for r in results:
        row = {"gene": r.gene, "status": "trained", "reason": ""}
        out["gene_models"][r.gene] = pd.DataFrame([{**row, **{k: getattr(r, k) for k in _SUMMARY}}])
        out["training_history"][r.gene] = r.history.assign(gene=r.gene)
        out["predictions"][r.gene] = r.predictions.assign(gene=r.gene)
        correlation = correlation_row(r.predictions)
        correlation["oracle_spearman"] = oracle_spearman(r.predictions, rna, r.gene)
        correlation["null_spearman"] = null_spearman(r.predictions, design)
        out["gene_correlation"][r.gene] = pd.DataFrame([{"gene": r.gene, "status": "trained", **correlation}])
    for gene, reason in skipped.items():
        out["gene_models"][gene] = pd.DataFrame([{"gene": gene, "status": "skipped", "reason": reason}])
        out["training_history"][gene] = _empty(["epoch", "train_loss", "valid_loss", "valid_spearman"])
        out["predictions"][gene] = _empty(["metacell", "split", "observed", "predicted"])
        out["gene_correlation"][gene] = pd.DataFrame([{"gene": gene, "status": "skipped"}])
    return out


def null_design(metacells) -> pd.DataFrame:
    """Per metacell: its cell type (``uns['metacells']['groupby']``, one level if none) and log
    RNA depth, the inputs of :func:`~regnet_assets.science.models.quality.null_spearman`."""
    index = pd.Index(metacells["rna"].obs_names.astype(str))
    groupby = dict(metacells.uns.get("metacells", {})).get("groupby", "") or None
    labels = obs_column(metacells, groupby, index) if groupby else None
    depth = obs_column(metacells, "total_counts_rna_log", index)
    if depth is None:
        depth = pd.Series(
            np.log10(np.maximum(np.asarray(metacells["rna"].X.sum(axis=1)).ravel(), 1.0)), index
        )
    return pd.DataFrame(
        {
            "cell_type": labels.astype(str).to_numpy() if labels is not None else "all",
            "depth_log": pd.to_numeric(depth).to_numpy(float),
        },
        index=index,
    )


def non_finite_predictions(tables: dict[str, dict[str, pd.DataFrame]]) -> int:
    """How many predicted counts are NaN or infinite."""
    preds = [f for f in tables["predictions"].values() if len(f)]
    values = pd.concat(preds)["predicted"].to_numpy(float) if preds else np.array([])
    return int((~np.isfinite(values)).sum())


def median_test_spearman(tables: dict[str, dict[str, pd.DataFrame]]) -> float:
    """The run's median test Spearman over trained genes (NaN when none was trained)."""
    rows = pd.concat(tables["gene_correlation"].values()) if tables["gene_correlation"] else pd.DataFrame()
    return float(rows["test_spearman"].median()) if "test_spearman" in rows else float("nan")


def genes_without_valid_spearman(tables: dict[str, dict[str, pd.DataFrame]]) -> list[str]:
    """Trained genes whose valid Spearman is NaN (constant predictions or observations)."""
    rows = pd.concat(tables["gene_correlation"].values())
    trained = rows[rows["status"] == "trained"]
    return trained.loc[trained["valid_spearman"].isna(), "gene"].tolist()
