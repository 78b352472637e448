"""The ``attribution`` group: which TFs each gene's model relies on, and the network they form.

One batched run per range of genes loads the checkpoints ``gene_models`` saved, runs
Integrated Gradients of every gene's predicted log-rate with respect to its TFs' expression
over all metacells (the reference's ``cn.ip.tf_attr``), and summarises the attributions per
cell type (``cn.ip.tf_to_gene``, ranked by |mean| so repressors count). Two fan-in assets then
build the TF → gene network and, on data with a known truth, score it against correlation and
random rankings.
"""

import time
from typing import Literal

import dagster as dg
import pandas as pd

from regnet_assets.defs.assets.dataset import H5muRef
from regnet_assets.defs.assets.models import GENES_PER_RUN
from regnet_assets.defs.config import science_field, to_science
from regnet_assets.defs.gene_progress import attribution_progress
from regnet_assets.defs.metadata import column_schema, figure_metadata, gene_metadata
from regnet_assets.defs.partitions import genes_partitions
from regnet_assets.defs.pools import GPU_POOL
from regnet_assets.defs.resources import DatasetResource, StorageResource, TorchDeviceResource
from regnet_assets.science.attribution import gene_tables, network_figures, recovery
from regnet_assets.science.attribution import grn as grn
from regnet_assets.science.attribution.gene_tables import TABLES, AttributionSettings
from regnet_assets.science.attribution.ig import integrated_gradients
from regnet_assets.science.attribution.recovery import RecoverySettings
from regnet_assets.science.common.figures import png_bytes
from regnet_assets.science.dataset.reading import read_multiome
from regnet_assets.science.models.inputs import build_gene_inputs
from regnet_assets.storage.models import model_path, read_checkpoint
from regnet_assets.storage.parquet import ParquetFiles
from regnet_assets.storage.tables import table_description

GROUP = "attribution"
METHOD_NAME = "regnet"


class AttributionConfig(dg.Config):
    """Integrated Gradients and the per-cell-type summary; names and defaults are
    :class:`AttributionSettings`' (the Cell2Net tutorial's)."""

    n_steps: int = science_field(AttributionSettings, "n_steps", "Gauss-Legendre points on the path.", ge=1)
    method: Literal["gausslegendre", "exact"] = science_field(
        AttributionSettings, "method", "gausslegendre (captum's default) or exact (closed-form, delta 0)."
    )
    n_tfs: int = science_field(
        AttributionSettings, "n_tfs", "TFs kept per gene and cell type in tf_to_gene.", ge=1
    )
    signed: bool = science_field(
        AttributionSettings,
        "signed",
        "Rank by the signed mean as the reference does (repressors drop out) instead of by |mean|.",
    )
    max_relative_delta: float = science_field(
        AttributionSettings,
        "max_relative_delta",
        "Completeness check: fail when a gene's max |delta| / output range exceeds this.",
        gt=0,
    )


@dg.multi_asset(
    outs={
        name: dg.AssetOut(
            group_name=GROUP,
            kinds={"pytorch", "parquet"} if name == "tf_attribution" else {"parquet"},
            metadata=column_schema(name),
            description=table_description(name),
        )
        for name in TABLES
    },
    ins={
        "gene_models": dg.AssetIn(),
        "metacell_multiome": dg.AssetIn(),
        "peak_gene_links": dg.AssetIn(),
        "gene_tf_candidates": dg.AssetIn(),
    },
    partitions_def=genes_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(GENES_PER_RUN),
    pool=GPU_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            "attribution_complete",
            asset="tf_attribution",
            description="Each gene's convergence delta is small relative to its output range.",
        ),
        dg.AssetCheckSpec(
            "attribution_finite", asset="tf_attribution", description="No attribution is NaN or infinite."
        ),
    ],
)
def tf_attribution(
    context: dg.AssetExecutionContext,
    config: AttributionConfig,
    gene_models: pd.DataFrame,
    metacell_multiome: H5muRef,
    peak_gene_links: pd.DataFrame,
    gene_tf_candidates: pd.DataFrame,
    storage: StorageResource,
    device: TorchDeviceResource,
    dataset_config: DatasetResource,
):
    """TF attributions of the run's genes (batched Integrated Gradients), per cell type, and their deltas."""
    settings = to_science(config, AttributionSettings)
    genes = list(context.partition_keys)
    status = _model_status(gene_models, genes, storage)
    skipped = {gene: reason for gene, reason in status.items() if reason}
    for gene, reason in skipped.items():
        context.log.warning(f"no attribution for gene {gene}: {reason}")
    todo = [g for g in genes if not status[g]]

    mc = read_multiome(metacell_multiome.path)
    labels = _labels(mc, dataset_config.groupby)
    inputs, unbuildable = (
        build_gene_inputs(mc, peak_gene_links, gene_tf_candidates, todo) if todo else ([], {})
    )
    if unbuildable:  # trained earlier, not buildable now: the dataset changed under the models
        raise dg.Failure(
            f"checkpoints exist for {sorted(unbuildable)} but their inputs cannot be rebuilt "
            f"({unbuildable}); re-materialize gene_models for these genes"
        )
    torch_device = device.resolve()
    started = time.perf_counter()
    try:
        results = (
            integrated_gradients(
                [read_checkpoint(storage.path, x.gene) for x in inputs],
                inputs,
                n_steps=settings.n_steps,
                device=torch_device,
                method=settings.method,
                progress=attribution_progress(context.log.info, len(inputs)),
            )
            if inputs
            else []
        )
    except ValueError as error:  # e.g. peaks/TFs of a checkpoint differ from today's dataset
        raise dg.Failure(
            f"attribution failed: {error}; re-materialize gene_models if the dataset "
            "changed since the models were trained"
        ) from error
    seconds = time.perf_counter() - started

    tables = gene_tables.run_tables(results, skipped, labels, settings, torch_device)
    gene_metadata(
        context,
        "tf_attribution",
        tables["attribution_delta"],
        ("status", "reason", "n_tfs", "relative_delta"),
    )
    context.log.info(
        f"tf_attribution: {len(results)} gene(s) attributed, {len(skipped)} skipped, "
        f"{seconds:.1f} s of IG on {torch_device}"
    )
    yield from (dg.Output(tables[name], output_name=name) for name in TABLES)
    yield from _checks(tables, settings.max_relative_delta)


def _model_status(gene_models: pd.DataFrame, genes: list[str], storage: StorageResource) -> dict[str, str]:
    """Per gene, '' when a trained checkpoint exists, else why there is none."""
    rows = gene_models.drop_duplicates("gene", keep="last").set_index("gene") if len(gene_models) else None
    out = {}
    for gene in genes:
        if rows is None or gene not in rows.index:
            out[gene] = "no gene_models row (gene_models not materialized for this gene)"
        elif rows.at[gene, "status"] != "trained":
            out[gene] = f"skipped by gene_models: {rows.at[gene, 'reason']}"
        elif not model_path(storage.path, gene).exists():
            out[gene] = f"no checkpoint at {model_path(storage.path, gene)}"
        else:
            out[gene] = ""
    return out


def _labels(mc, groupby: str) -> pd.Series:
    """Metacell → cell type, from the metacell obs ``groupby`` column."""
    for frame in (mc.obs, mc["rna"].obs):
        if groupby in frame.columns:
            return frame[groupby].astype(str).set_axis(frame.index.astype(str))
    raise dg.Failure(f"the metacells have no obs['{groupby}'] column (dataset_config.groupby)")


def _checks(tables, threshold: float):
    complete = gene_tables.completeness(tables, threshold)
    yield dg.AssetCheckResult(
        check_name="attribution_complete",
        asset_key="tf_attribution",
        passed=complete["passed"],
        severity=dg.AssetCheckSeverity.WARN,  # the tables are usable; their sums are not exact
        description=None
        if complete["passed"]
        else f"{complete['n_over']} gene(s) miss completeness (max relative delta "
        f"{complete['max_relative_delta']:.3g} > {complete['threshold']:g}): attribute with method 'exact'",
        metadata={
            "threshold": complete["threshold"],
            "max_relative_delta": complete["max_relative_delta"],
            "genes_over": dg.MetadataValue.json(complete["genes_over"]),
            "genes_checked": complete["genes_checked"],
        },
    )
    n_bad, bad_genes = gene_tables.non_finite(tables)
    yield dg.AssetCheckResult(
        check_name="attribution_finite",
        asset_key="tf_attribution",
        passed=not bad_genes,
        metadata={"non_finite": n_bad, "genes": dg.MetadataValue.json(bad_genes)},
    )


# ====================================================================== fan-in over all genes
@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("regulatory_network"))
def regulatory_network(
    context: dg.AssetExecutionContext,
    tf_to_gene: pd.DataFrame,
    tf_attribution: ParquetFiles,
    storage: StorageResource,
) -> pd.DataFrame:
    """TF → gene edges of all genes: score, sign, cell types where the TF is in the top n, targets
    per TF; plots: heatmap of the top edges, top TFs per cell type."""
    net = grn.regulatory_network(tf_to_gene, tf_attribution, only_network=False)
    core = net[net["in_network"]]
    top = (
        core.drop_duplicates("tf")
        .sort_values(["n_targets_of_tf", "tf"], ascending=[False, True])
        .head(10)[["tf", "n_targets_of_tf"]]
    )
    context.add_output_metadata(
        {
            "edges_in_network": len(core),
            "candidate_edges": len(net),
            "genes": int(net["gene"].nunique()),
            "tfs_in_network": int(core["tf"].nunique()),
            "top_regulators": dg.MetadataValue.md(top.to_markdown(index=False) if len(top) else "(none)"),
            **figure_metadata(
                storage, "network_heatmap", png_bytes(network_figures.plot_network_heatmap(net))
            ),
            **figure_metadata(
                storage,
                "top_tfs_per_cell_type",
                png_bytes(network_figures.plot_top_tfs_per_cell_type(tf_to_gene)),
            ),
        }
    )
    return net


class RecoveryConfig(dg.Config):
    """Scoring the network against the simulator's truth; names and defaults are :class:`RecoverySettings`'."""

    seed: int = science_field(
        RecoverySettings, "seed", "Seed of random_seeded, the elastic net's CV folds and GRNBoost2."
    )
    per_cell_type: bool = science_field(
        RecoverySettings, "per_cell_type", "Also score each cell type separately."
    )
    grnboost2: bool = science_field(
        RecoverySettings, "grnboost2", "Run the GRNBoost2 baseline (arboreto), the slowest one."
    )


@dg.asset(
    group_name=GROUP,
    kinds={"parquet"},
    metadata=column_schema("grn_recovery"),
    check_specs=[
        dg.AssetCheckSpec(
            "beats_correlation",
            asset="grn_recovery",
            description="On simulated data, regnet's network recovers the true edges better than "
            "the TF-gene Pearson correlation (AUPRC, all cell types); WARN when it does not.",
        )
    ],
)
def grn_recovery(
    config: RecoveryConfig,
    regulatory_network: pd.DataFrame,
    tf_attribution: ParquetFiles,
    gene_tf_candidates: pd.DataFrame,
    truth_tf_gene: pd.DataFrame,
    metacell_multiome: H5muRef,
    dataset_config: DatasetResource,
    storage: StorageResource,
):
    """AUROC/AUPRC/EPR/sign accuracy of the network vs the true edges, beside every baseline."""
    if truth_tf_gene.empty:
        note = "no ground truth for this dataset (truth_tf_gene is empty): nothing to score"
        yield dg.Output(recovery.empty_recovery(), metadata={"note": note})
        yield dg.AssetCheckResult(check_name="beats_correlation", passed=True, description=note)
        return
    mc = read_multiome(metacell_multiome.path)
    table, fig = recovery.network_recovery(
        regulatory_network,
        truth_tf_gene,
        tf_attribution,
        gene_tf_candidates,
        mc["rna"],
        _labels(mc, dataset_config.groupby),
        _train_metacells(mc),
        to_science(config, RecoverySettings),
        METHOD_NAME,
    )
    overall = table[table["cell_type"] == grn.ALL].set_index("method")
    scored = overall[overall["note"].eq("") | overall.index.isin([recovery.RANDOM_EXPECTED])]
    check = _beats_correlation(overall)
    yield dg.Output(
        table,
        metadata={
            "verdict": check.description,
            **figure_metadata(storage, "grn_recovery", png_bytes(fig)),
            "overall": dg.MetadataValue.md(
                overall[
                    ["auroc", "auprc", "epr", "sign_accuracy", "n_true", "n_candidates", "note"]
                ].to_markdown(floatfmt=".3f")
            ),
            **{f"auprc_{m}": round(float(scored.at[m, "auprc"]), 3) for m in scored.index},
        },
    )
    yield check


def _beats_correlation(overall: pd.DataFrame) -> dg.AssetCheckResult:
    """WARN, with a one-line verdict, when the network does not beat the correlation baseline."""
    ours, theirs = (float(overall.at[m, "auprc"]) for m in (METHOD_NAME, "correlation"))
    passed = ours > theirs
    return dg.AssetCheckResult(
        check_name="beats_correlation",
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"auprc_regnet": round(ours, 3), "auprc_correlation": round(theirs, 3)},
        description=f"regnet AUPRC {ours:.3f} vs correlation {theirs:.3f} ({ours / max(theirs, 1e-12):.2f}x): "
        + ("beats the correlation baseline" if passed else "does NOT beat the correlation baseline"),
    )


def _train_metacells(mc) -> pd.Index:
    """The metacells the models train on (obs ``split == "train"``): the baselines fit on these."""
    for frame in (mc.obs, mc["rna"].obs):
        if "split" in frame.columns:
            return frame.index[frame["split"].astype(str) == "train"].astype(str)
    raise dg.Failure(
        "the metacells have no obs['split'] column (train/valid/test); re-materialize metacell_multiome"
    )


ATTRIBUTION_TABLES = [tf_attribution, regulatory_network, grn_recovery]
ATTRIBUTION_ASSETS = ATTRIBUTION_TABLES
