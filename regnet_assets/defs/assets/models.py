"""The ``models`` group: per-gene Cell2Net-style models trained in batched runs.

One run trains all of its genes together (``context.partition_keys``), on the device the
resource picks, and writes each gene's rows to its own partition of every table.
"""

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from regnet_assets.defs.assets.dataset import H5muRef
from regnet_assets.defs.metadata import column_schema, figure_metadata
from regnet_assets.defs.partitions import genes_partitions
from regnet_assets.defs.pools import GPU_POOL
from regnet_assets.defs.resources import StorageResource, TorchDeviceResource
from regnet_assets.science.common.correlation import spearman
from regnet_assets.science.common.figures import png_bytes
from regnet_assets.science.dataset.reading import read_multiome
from regnet_assets.science.models import quality as model_quality
from regnet_assets.science.models import trainer as training
from regnet_assets.science.reports import histories
from regnet_assets.storage.models import model_path

GROUP = "models"
GENES_PER_RUN = 64
TABLES = ("gene_models", "training_history", "predictions", "gene_correlation")
_DESCRIPTIONS = {
    "gene_models": "One row per gene: trained or skipped (why), sizes, best epoch, losses, device, seconds.",
    "training_history": "Per gene and epoch: losses, valid/train Spearman and learning rate.",
    "predictions": "Per gene and metacell: split, observed count and predicted count (best epoch's weights).",
    "gene_correlation": "Per gene: train/valid Spearman and Pearson, and the oracle ceiling on simulated data.",
}
_COLUMNS = {
    "gene_models": {
        "gene": "target gene",
        "status": "trained | skipped",
        "reason": "why a gene was skipped",
        "n_peaks": "linked peaks",
        "n_tfs": "candidate TFs",
        "n_params": "trainable parameters",
        "best_epoch": "epoch (1-based) with the best valid Spearman, whose weights are kept",
        "epochs_run": "epochs trained",
        "train_loss": "Poisson NLL over train metacells at the best epoch",
        "valid_loss": "Poisson NLL over valid metacells at the best epoch",
        "device": "torch device",
        "seconds": "wall-clock training time of the gene's chunk, shared among its genes",
    },
    "training_history": {
        "gene": "target gene",
        "epoch": "epoch (1-based)",
        "train_loss": "Poisson NLL, train metacells (eval mode)",
        "valid_loss": "Poisson NLL, valid metacells",
        "valid_spearman": "Spearman of observed vs predicted, valid",
        "train_spearman": "the same on train metacells",
        "lr": "learning rate in that epoch",
        "train_batch_loss": "mean minibatch loss during the epoch (train mode)",
    },
    "predictions": {
        "gene": "target gene",
        "metacell": "metacell",
        "split": "train or valid",
        "observed": "observed count",
        "predicted": "predicted count (exp of the log-rate)",
    },
    "gene_correlation": {
        "gene": "target gene",
        "status": "trained | skipped",
        "train_spearman": "scipy Spearman, train",
        "train_pearson": "Pearson, train",
        "n_train": "train metacells",
        "valid_spearman": "scipy Spearman, valid",
        "valid_pearson": "Pearson, valid",
        "n_valid": "valid metacells",
        "oracle_spearman": "Spearman of observed valid counts with the simulator's true rates (NaN on real data)",
    },
}


class TrainingConfig(dg.Config):
    """Per-gene model hyper-parameters; defaults follow the Cell2Net tutorial."""

    epochs: int = 40
    lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 32
    dropout: float = 0.25
    scheduler_patience: int = 5
    use_sequence: bool = True
    seed: int = 0
    # Genes stacked per forward pass. On CPU the work is compute-bound, so chunks of ~8 beat
    # one huge batch (bench/README.md); on a GPU raise it to the whole run.
    genes_per_batch: int = 8

    def to_science(self) -> training.TrainConfig:
        return training.TrainConfig(
            epochs=self.epochs,
            lr=self.lr,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            dropout=self.dropout,
            scheduler_patience=self.scheduler_patience,
            use_sequence=self.use_sequence,
            seed=self.seed,
            genes_per_batch=self.genes_per_batch,
        )


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})


@dg.multi_asset(
    outs={
        name: dg.AssetOut(
            group_name=GROUP,
            kinds={"pytorch", "parquet"} if name == "gene_models" else {"parquet"},
            description=_DESCRIPTIONS[name],
            metadata=column_schema(_COLUMNS[name]),
        )
        for name in TABLES
    },
    ins={
        "metacell_multiome": dg.AssetIn(),
        "peak_gene_links": dg.AssetIn(),
        "gene_tf_candidates": dg.AssetIn(),
    },
    partitions_def=genes_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(GENES_PER_RUN),
    pool=GPU_POOL,
    check_specs=[
        dg.AssetCheckSpec("predictions_are_finite", asset="predictions"),
        dg.AssetCheckSpec("valid_spearman_present", asset="gene_correlation"),
    ],
)
def gene_models(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    metacell_multiome: H5muRef,
    peak_gene_links: pd.DataFrame,
    gene_tf_candidates: pd.DataFrame,
    storage: StorageResource,
    device: TorchDeviceResource,
):
    """Train the run's genes together; one row per gene and its history, predictions, correlation."""
    genes = list(context.partition_keys)
    mc = read_multiome(metacell_multiome.path)
    known = set(peak_gene_links["gene"])
    unknown = [g for g in genes if g not in known]
    if len(unknown) == len(genes):
        raise dg.Failure(
            description=f"unknown gene partition(s) {unknown}: not linked to any peak "
            "in the dataset's peak_gene_links; nothing was trained"
        )
    inputs, skipped = training.build_gene_inputs(
        mc, peak_gene_links, gene_tf_candidates, [g for g in genes if g in known]
    )
    for gene, reason in skipped.items():
        context.log.warning(f"skipping gene {gene}: {reason}")
    torch_device = device.resolve()
    results = training.train_genes(inputs, config.to_science(), device=torch_device) if inputs else []
    for result in results:
        path = model_path(storage.path, result.gene)
        training.save_gene_model(path, result)

    tables = _tables(results, skipped, mc)
    yield from (dg.Output(tables[name], output_name=name) for name in TABLES)
    yield from _checks(tables)
    if unknown:
        raise dg.Failure(
            description=f"unknown gene partition(s) {unknown}: not linked to any peak in the "
            "dataset's peak_gene_links; the other genes of this run were written",
        )


def _tables(results, skipped: dict[str, str], mc) -> dict[str, dict[str, pd.DataFrame]]:
    """Per table, ``{gene: rows}`` for every trained and every skipped gene."""
    true_rate = mc["rna"].layers["true_rate"] if "true_rate" in mc["rna"].layers else None
    out: dict[str, dict[str, pd.DataFrame]] = {name: {} for name in TABLES}
    for r in results:
        out["gene_models"][r.gene] = pd.DataFrame(
            [
                {
                    "gene": r.gene,
                    "status": "trained",
                    "reason": "",
                    "n_peaks": r.n_peaks,
                    "n_tfs": r.n_tfs,
                    "n_params": r.n_params,
                    "best_epoch": r.best_epoch,
                    "epochs_run": r.epochs_run,
                    "train_loss": r.train_loss,
                    "valid_loss": r.valid_loss,
                    "device": r.device,
                    "seconds": r.seconds,
                }
            ]
        )
        out["training_history"][r.gene] = r.history.assign(gene=r.gene)
        out["predictions"][r.gene] = r.predictions.assign(gene=r.gene)
        row = training.correlation_row(r.predictions)
        row["oracle_spearman"] = _oracle(r.predictions, mc, true_rate, r.gene)
        out["gene_correlation"][r.gene] = pd.DataFrame([{"gene": r.gene, "status": "trained", **row}])
    for gene, reason in skipped.items():
        out["gene_models"][gene] = pd.DataFrame([{"gene": gene, "status": "skipped", "reason": reason}])
        out["training_history"][gene] = _empty(["epoch", "train_loss", "valid_loss", "valid_spearman"])
        out["predictions"][gene] = _empty(["metacell", "split", "observed", "predicted"])
        out["gene_correlation"][gene] = pd.DataFrame([{"gene": gene, "status": "skipped"}])
    return out


def _oracle(predictions: pd.DataFrame, mc, true_rate, gene: str) -> float:
    """Spearman of the observed valid counts with the simulator's true rates (NaN if unknown)."""
    if true_rate is None:
        return float("nan")
    valid = predictions[predictions["split"] == "valid"]
    rows = mc["rna"].obs_names.get_indexer(valid["metacell"])
    column = mc["rna"].var_names.get_loc(gene)
    rate = np.asarray(
        true_rate[rows, column].todense() if hasattr(true_rate, "todense") else true_rate[rows, column]
    ).ravel()
    return spearman(valid["observed"], rate)


def _checks(tables):
    preds = [f for f in tables["predictions"].values() if len(f)]
    values = pd.concat(preds)["predicted"].to_numpy(float) if preds else np.array([])
    bad = int((~np.isfinite(values)).sum())
    yield dg.AssetCheckResult(
        check_name="predictions_are_finite",
        asset_key="predictions",
        passed=bad == 0,
        metadata={"non_finite": bad},
    )
    rows = pd.concat(tables["gene_correlation"].values())
    trained = rows[rows["status"] == "trained"]
    missing = trained.loc[trained["valid_spearman"].isna(), "gene"].tolist()
    yield dg.AssetCheckResult(
        check_name="valid_spearman_present",
        asset_key="gene_correlation",
        passed=not missing,
        metadata={"missing": dg.MetadataValue.json(missing)},
    )


class PerformanceConfig(dg.Config):
    """Which gene the model_performance figures follow."""

    history_gene: str = Field(
        default="",
        description="Gene whose training curve is plotted; empty = the "
        "trained gene with the median valid Spearman (a typical one).",
    )


@dg.asset(group_name=GROUP, kinds={"parquet"})
def model_performance(
    context: dg.AssetExecutionContext,
    config: PerformanceConfig,
    gene_correlation: pd.DataFrame,
    gene_models: pd.DataFrame,
    training_history: pd.DataFrame,
    storage: StorageResource,
) -> pd.DataFrame:
    """Summary over all genes: valid-Spearman quantiles, the seed's counts and where the best epochs
    fell; plots: train vs valid, best epochs across genes, one gene's training curve."""
    trained = gene_correlation[gene_correlation["status"] == "trained"]
    models = gene_models[gene_models["status"] == "trained"]
    summary = model_quality.performance_summary(trained).assign(**histories.best_epoch_summary(models))
    gene = config.history_gene or _median_gene(trained)
    curve = training_history[training_history["gene"] == gene].sort_values("epoch")
    if curve.empty:
        raise dg.Failure(
            f"PerformanceConfig.history_gene: no training history for gene {gene!r}; "
            f"trained genes include {sorted(models['gene'])[:10]}"
        )
    best = models.loc[models["gene"] == gene, "best_epoch"]
    context.add_output_metadata(
        {
            **figure_metadata(
                storage, "model_performance", png_bytes(model_quality.plot_train_vs_valid(trained))
            ),
            **figure_metadata(storage, "best_epochs", png_bytes(histories.plot_best_epochs(models))),
            **figure_metadata(
                storage,
                "gene_training_curve",
                png_bytes(histories.plot_gene_history(curve, gene, int(best.iloc[0]) if len(best) else None)),
            ),
            "history_gene": gene,
            "summary": dg.MetadataValue.md(summary.T.to_markdown(headers=["", "value"])),
        }
    )
    return summary


def _median_gene(trained: pd.DataFrame) -> str:
    scored = trained.dropna(subset=["valid_spearman"]).sort_values(["valid_spearman", "gene"])
    if scored.empty:
        raise dg.Failure("model_performance: no gene has a valid Spearman (nothing trained?)")
    return str(scored["gene"].iloc[(len(scored) - 1) // 2])


MODEL_ASSETS = [gene_models, model_performance]
