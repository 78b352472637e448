"""The ``models`` group: per-gene Cell2Net-style models trained in batched runs.

One run trains all of its genes together (``context.partition_keys``), on the device the
resource picks, and writes each gene's rows to its own partition of every table.
"""

from typing import Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from regnet_assets.defs.assets.dataset import H5muRef
from regnet_assets.defs.config import science_field
from regnet_assets.defs.gene_progress import TrainingProgress
from regnet_assets.defs.metadata import column_schema, figure_metadata, gene_metadata
from regnet_assets.defs.partitions import genes_partitions
from regnet_assets.defs.pools import GPU_POOL
from regnet_assets.defs.resources import StorageResource, TorchDeviceResource
from regnet_assets.science.common.figures import png_bytes
from regnet_assets.science.dataset.reading import read_multiome
from regnet_assets.science.models import quality as model_quality
from regnet_assets.science.models import tables as model_tables
from regnet_assets.science.models.config import TrainConfig
from regnet_assets.science.models.inputs import build_gene_inputs
from regnet_assets.science.models.tables import TABLES
from regnet_assets.science.models.trainer import train_genes
from regnet_assets.science.reports import histories
from regnet_assets.storage.models import model_path
from regnet_assets.storage.tables import table_description

GROUP = "models"
GENES_PER_RUN = 64


TRAINING_DAGSTER_ONLY = {"preset"}


class TrainingConfig(dg.Config):
    """Per-gene model hyper-parameters; names and defaults are :class:`TrainConfig`'s (the
    setting measured best in bench/README.md). ``preset: reference`` starts from Cell2Net
    v0.13's tutorial values instead (:meth:`TrainConfig.reference`); any field left at its
    default then takes the preset's value."""

    preset: Literal["default", "reference"] = Field(
        default="default",
        description="default (the measured best) or reference (Cell2Net 0.13's tutorial values).",
    )
    epochs: int = science_field(
        TrainConfig, "epochs", "Training epochs when steps is empty; the best valid epoch is kept."
    )
    steps: int | None = science_field(
        TrainConfig, "steps", "Optimiser-step budget (None: epochs); the best valid epoch is kept."
    )
    lr: float = science_field(TrainConfig, "lr", "Adam learning rate (peak of the cosine schedule).")
    schedule: Literal["cosine", "plateau"] = science_field(
        TrainConfig, "schedule", "cosine (warm-up + decay over the steps) or plateau (reduce on plateau)."
    )
    checkpoint_metric: Literal["valid_loss", "valid_spearman"] = science_field(
        TrainConfig,
        "checkpoint_metric",
        "The epoch kept: lowest valid Poisson loss or highest valid Spearman.",
    )
    patience: int | None = science_field(
        TrainConfig, "patience", "Stop after this many epochs without a better valid metric (None: never)."
    )
    standardize_inputs: bool = science_field(
        TrainConfig, "standardize_inputs", "Standardise TF expression and covariates with train statistics."
    )
    tf_linear: bool = science_field(
        TrainConfig, "tf_linear", "A linear readout on the TFs beside the Cell2Net head."
    )
    tf_in_head: bool = science_field(
        TrainConfig, "tf_in_head", "TF expression also enters the Cell2Net head (as in the reference)."
    )
    glm_start: bool = science_field(
        TrainConfig, "glm_start", "Start the linear TF readout at the train split's Poisson GLM."
    )
    weight_decay: float = science_field(TrainConfig, "weight_decay", "L2 weight decay (Adam).")
    batch_size: int = science_field(TrainConfig, "batch_size", "Metacells per minibatch.")
    dropout: float = science_field(TrainConfig, "dropout", "Head dropout.")
    scheduler_patience: int = science_field(
        TrainConfig, "scheduler_patience", "plateau: epochs without valid gain before the lr drops."
    )
    use_sequence: bool = science_field(
        TrainConfig, "use_sequence", "Feed peak sequences (when the dataset has them)."
    )
    seed: int = science_field(TrainConfig, "seed", "Seed of initialisation, dropout and minibatch order.")
    genes_per_batch: int | None = science_field(
        TrainConfig,
        "genes_per_batch",
        "Genes stacked per forward pass (None: the whole run). ~8 is fastest on CPU; on a GPU raise it.",
    )
    dtype: Literal["float32", "float64"] = science_field(
        TrainConfig, "dtype", "Training precision (float64: batched equals alone to ~1e-10)."
    )
    dropout_rng: Literal["auto", "generator", "hash"] = science_field(
        TrainConfig, "dropout_rng", "Per-gene dropout streams; auto = hash on CUDA, generator on CPU."
    )

    def to_science(self) -> TrainConfig:
        """The science settings of the preset, with every field that differs from its default
        (validated there: a bad value fails the run with its reason). Setting ``epochs`` alone
        budgets in epochs (``steps`` becomes None)."""
        default = TrainConfig()
        changed = {
            name: value
            for name, value in self.model_dump().items()
            if name not in TRAINING_DAGSTER_ONLY and value != getattr(default, name)
        }
        if "epochs" in changed and "steps" not in changed:  # an epoch budget asked for by name
            changed["steps"] = None
        return TrainConfig.preset(self.preset, **changed)


@dg.multi_asset(
    outs={
        name: dg.AssetOut(
            group_name=GROUP,
            kinds={"pytorch", "parquet"} if name == "gene_models" else {"parquet"},
            description=table_description(name),
            metadata=column_schema(name),
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
        dg.AssetCheckSpec(
            "predictions_are_finite",
            asset="predictions",
            description="Every predicted count of the run's genes is finite.",
        ),
        dg.AssetCheckSpec(
            "valid_spearman_present",
            asset="gene_correlation",
            description="Every trained gene has a valid Spearman (NaN: constant predictions or counts).",
        ),
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
    inputs, skipped = build_gene_inputs(
        mc, peak_gene_links, gene_tf_candidates, [g for g in genes if g in known]
    )
    for gene, reason in skipped.items():
        context.log.warning(f"skipping gene {gene}: {reason}")
    torch_device = device.resolve()
    progress = TrainingProgress(context.log.info, len(inputs))
    results = (
        train_genes(inputs, config.to_science(), device=torch_device, progress=progress) if inputs else []
    )
    progress.finish()
    for result in results:
        result.checkpoint.save(model_path(storage.path, result.gene))

    tables = model_tables.run_tables(results, skipped, mc)
    scores = {
        g: tables["gene_models"][g].merge(tables["gene_correlation"][g], on=["gene", "status"])
        for g in tables["gene_models"]
    }
    gene_metadata(context, "gene_models", scores, GENE_PAGE)
    context.log.info(
        f"gene_models: {len(results)} trained, {len(skipped)} skipped, on {torch_device}; "
        f"median test Spearman {model_tables.median_test_spearman(tables):.3f}"
    )
    yield from (dg.Output(tables[name], output_name=name) for name in TABLES)
    yield from _checks(tables)
    if unknown:
        raise dg.Failure(
            description=f"unknown gene partition(s) {unknown}: not linked to any peak in the "
            "dataset's peak_gene_links; the other genes of this run were written",
        )


# what a gene's partition page of gene_models shows (beside its rows and file)
GENE_PAGE = (
    "status",
    "reason",
    "n_peaks",
    "n_tfs",
    "best_epoch",
    "epochs_run",
    "valid_spearman",
    "test_spearman",
    "oracle_spearman",
    "null_spearman",
)


def _checks(tables):
    bad = model_tables.non_finite_predictions(tables)
    yield dg.AssetCheckResult(
        check_name="predictions_are_finite",
        asset_key="predictions",
        passed=bad == 0,
        metadata={"non_finite": bad},
    )
    missing = model_tables.genes_without_valid_spearman(tables)
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
        "trained gene with the median test Spearman (a typical one).",
    )


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("model_performance"))
def model_performance(
    context: dg.AssetExecutionContext,
    config: PerformanceConfig,
    gene_correlation: pd.DataFrame,
    gene_models: pd.DataFrame,
    training_history: pd.DataFrame,
    predictions: pd.DataFrame,
    storage: StorageResource,
) -> pd.DataFrame:
    """Summary over all genes on the test split: Spearman quantiles beside the oracle ceiling and
    the cell-type × depth null, the seed's counts and where the best epochs fell; plots: train vs
    test, best epochs across genes, one gene's training curve, observed vs predicted test counts
    of nine genes from the best to the worst."""
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
            **figure_metadata(
                storage,
                "test_predictions",
                png_bytes(model_quality.plot_test_predictions(predictions, trained)),
            ),
            "history_gene": gene,
            "summary": dg.MetadataValue.md(summary.T.to_markdown(headers=["", "value"])),
        }
    )
    return summary


def _median_gene(trained: pd.DataFrame) -> str:
    scored = trained.dropna(subset=["test_spearman"]).sort_values(["test_spearman", "gene"])
    if scored.empty:
        raise dg.Failure("model_performance: no gene has a test Spearman (nothing trained?)")
    return str(scored["gene"].iloc[(len(scored) - 1) // 2])


MODEL_ASSETS = [gene_models, model_performance]
