"""The ``reports`` group: clustering scores of every representation across folds (scMEDAL-style)
and gene programs of the latent spaces with offline GO enrichment (InterScale-style).

Each report uses the representations that exist: the per-gene models' predictions, the TF
attributions and the KPNN activations are read from storage when they have been materialized
(declared as ``deps`` for lineage), and a missing one is skipped and named in the metadata. Only
the dataset is required. ``ablated_gene_correlation`` trains each gene's model again without its
TF branch, so ``gene_ranks`` can say which genes need TFs to be predicted.
"""

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from regnet_assets.defs.assets.dataset import H5muRef
from regnet_assets.defs.assets.models import GENES_PER_RUN, TrainingConfig
from regnet_assets.defs.gene_progress import TrainingProgress
from regnet_assets.defs.instance import latest_runs
from regnet_assets.defs.metadata import column_schema, figure_metadata, gene_metadata, markdown
from regnet_assets.defs.partitions import genes_partitions
from regnet_assets.defs.pools import GPU_POOL
from regnet_assets.defs.resources import DatasetResource, StorageResource, TorchDeviceResource
from regnet_assets.science import models as training
from regnet_assets.science import reports as rep
from regnet_assets.science.common.figures import png_bytes
from regnet_assets.science.common.normalise import expression_frame
from regnet_assets.science.common.obs import obs_column
from regnet_assets.science.dataset.reading import read_multiome
from regnet_assets.science.reports import enrichment
from regnet_assets.storage import read_table
from regnet_assets.storage.parquet import table_files
from regnet_assets.storage.tables import column_names, table_description

GROUP = "reports"


def _optional(storage: StorageResource, table: str) -> pd.DataFrame | None:
    try:
        return read_table(storage.path, table)
    except FileNotFoundError:
        return None


def _tf_activity(storage: StorageResource) -> pd.DataFrame | None:
    """Metacells × TFs, reduced from the tf_attribution files without loading them (None if no rows)."""
    try:
        activity = rep.tf_activity(table_files(storage.path, "tf_attribution"))
    except FileNotFoundError:
        return None
    return activity if activity.size else None


# ====================================================================== TF-ablated models
class AblationConfig(dg.Config):
    """How the chromatin-only (TF-ablated) models are trained."""

    match_full_model: bool = Field(
        default=True,
        description=(
            "Train each gene with the training config of the run that produced its full model (read from "
            "that run), so the TF branch is the only difference; falls back to `training` when unknown."
        ),
    )
    training: TrainingConfig = Field(
        default_factory=TrainingConfig,
        description=("Used when match_full_model is false or the full model's run is not in this instance."),
    )


def _full_model_configs(instance: dg.DagsterInstance, genes: list[str]) -> dict[str, dict]:
    """Per gene, the ``gene_models`` op config of the run that last materialized it (if known)."""
    configs, runs = {}, {}
    for gene, run_id in latest_runs(instance, dg.AssetKey("gene_models"), genes).items():
        if run_id not in runs:
            run = instance.get_run_by_id(run_id)
            runs[run_id] = (
                None
                if run is None
                else (run.run_config or {}).get("ops", {}).get("gene_models", {}).get("config", {}) or {}
            )
        if runs[run_id] is not None:
            configs[gene] = runs[run_id]
    return configs


@dg.multi_asset(
    outs={
        "ablated_gene_correlation": dg.AssetOut(
            group_name=GROUP,
            kinds={"pytorch", "parquet"},
            metadata=column_schema("ablated_gene_correlation"),
            description=table_description("ablated_gene_correlation"),
        )
    },
    ins={
        "metacell_multiome": dg.AssetIn(),
        "peak_gene_links": dg.AssetIn(),
        "gene_tf_candidates": dg.AssetIn(),
    },
    deps=["gene_models"],
    partitions_def=genes_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(GENES_PER_RUN),
    pool=GPU_POOL,
)
def ablated_gene_models(
    context: dg.AssetExecutionContext,
    config: AblationConfig,
    metacell_multiome: H5muRef,
    peak_gene_links: pd.DataFrame,
    gene_tf_candidates: pd.DataFrame,
    device: TorchDeviceResource,
):
    """Each gene's model trained again with its TF expression zeroed (chromatin only): its scores."""
    genes = list(context.partition_keys)
    mc = read_multiome(metacell_multiome.path)
    known = set(peak_gene_links["gene"])
    inputs, skipped = training.build_gene_inputs(
        mc, peak_gene_links, gene_tf_candidates, [g for g in genes if g in known]
    )
    skipped.update({g: "not linked to any peak in peak_gene_links" for g in genes if g not in known})
    full = _full_model_configs(context.instance, [x.gene for x in inputs]) if config.match_full_model else {}
    unknown = [x.gene for x in inputs if x.gene not in full]
    if config.match_full_model and unknown:
        context.log.warning(
            f"{len(unknown)} gene(s) have no full-model run in this instance; trained with "
            f"this asset's training config: {unknown[:10]}"
        )
    groups: dict[str, tuple[TrainingConfig, str, list]] = {}
    for x in inputs:
        cfg, source = (
            (TrainingConfig(**full[x.gene]), "full_model_run")
            if x.gene in full
            else (config.training, "ablation_config")
        )
        key = cfg.model_dump_json()
        groups.setdefault(key, (cfg, source, []))[2].append(x)
    torch_device = device.resolve()
    out: dict[str, pd.DataFrame] = {}
    progress = TrainingProgress(context.log.info, len(inputs), stage="ablation")
    for cfg, source, chunk in groups.values():
        results = training.train_genes(
            rep.without_tf_branch(chunk), cfg.to_science(), device=torch_device, progress=progress
        )
        progress.end_call()
        for r, x in zip(results, chunk):
            out[r.gene] = pd.DataFrame(
                [
                    {
                        "gene": r.gene,
                        "status": "trained",
                        "reason": "",
                        "n_tfs_zeroed": len(x.tf_names),
                        **training.correlation_row(r.predictions),
                        "best_epoch": r.best_epoch,
                        "epochs_run": r.epochs_run,
                        "epochs": cfg.epochs,
                        "lr": cfg.lr,
                        "config_source": source,
                    }
                ]
            )
    progress.finish()
    for gene, reason in skipped.items():
        context.log.warning(f"no ablated model for gene {gene}: {reason}")
        out[gene] = pd.DataFrame(
            [
                {
                    "gene": gene,
                    "status": "skipped",
                    "reason": reason,
                    "n_tfs_zeroed": 0,
                    "valid_spearman": np.nan,
                    "test_spearman": np.nan,
                    "config_source": "",
                }
            ]
        )
    gene_metadata(
        context,
        "ablated_gene_correlation",
        out,
        ("status", "reason", "valid_spearman", "test_spearman", "config_source"),
    )
    matched = len(inputs) - len(unknown) if config.match_full_model else 0
    context.log.info(
        f"ablated_gene_correlation: {len(inputs)} trained ({matched} with their full model's "
        f"config), {len(skipped)} skipped, on {torch_device}"
    )
    return dg.Output(out, output_name="ablated_gene_correlation")


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("gene_ranks"))
def gene_ranks(
    context: dg.AssetExecutionContext,
    gene_correlation: pd.DataFrame,
    ablated_gene_correlation: pd.DataFrame,
    storage: StorageResource,
) -> pd.DataFrame:
    """Per gene: test Spearman with and without the TF branch, their ranks and rank difference."""
    ranks = rep.tf_dependence(gene_correlation, ablated_gene_correlation)
    ranked = ranks.dropna(subset=["rank_diff"])
    show = ["gene", "score_full", "score_ablated", "rank_diff"]
    context.add_output_metadata(
        {
            **figure_metadata(storage, "gene_ranks", png_bytes(rep.plot_gene_ranks(ranks))),
            "genes_ranked": len(ranked),
            "genes_unranked": len(ranks) - len(ranked),
            "tf_dependent": markdown(ranked.nlargest(5, "rank_diff")[show]),
            "tf_independent": markdown(ranked.nsmallest(5, "rank_diff")[show]),
            "best_predicted": markdown(
                ranked.nlargest(5, "avg_rank")[["gene", "score_full", "score_ablated", "avg_rank"]]
            ),
        }
    )
    return ranks.sort_values("gene", ignore_index=True)


# ====================================================================== embeddings and scores
class EmbeddingConfig(dg.Config):
    """Representations and their folds."""

    n_folds: int = Field(
        default=5,
        ge=2,
        description="Seeded K-fold over metacells (stratified by cell type "
        "when possible); the KPNN keeps its own folds.",
    )
    seed: int = Field(default=0, description="Seed of the metacell folds.")
    n_components: int = Field(default=10, ge=1, description="PCs of the expression representations.")
    observed_genes: str = Field(
        default="all",
        description="observed_pca on all measured genes, or only 'modelled' ones (those predicted_pca uses).",
    )
    kpnn_networks: list[str] = Field(default=["full", "pruned"], description="KPNN networks to embed.")


@dg.asset(
    group_name=GROUP,
    kinds={"parquet"},
    deps=["predictions", "tf_attribution", "kpnn_activations"],
    metadata=column_schema("embeddings"),
)
def embeddings(
    context: dg.AssetExecutionContext,
    config: EmbeddingConfig,
    metacells: pd.DataFrame,
    metacell_multiome: H5muRef,
    multiome: H5muRef,
    dataset_config: DatasetResource,
    storage: StorageResource,
) -> pd.DataFrame:
    """Per fold and split, the metacell/cell embedding of each representation that exists (long form)."""
    if config.observed_genes not in ("all", "modelled"):
        raise dg.Failure(f"observed_genes must be 'all' or 'modelled', got {config.observed_genes!r}")
    table = metacells.assign(metacell=metacells["metacell"].astype(str)).set_index("metacell")
    labels = rep.role_labels(table, dataset_config.groupby)
    strata = labels["cell_type"].to_numpy() if "cell_type" in labels else None
    folds = pd.Series(rep.fold_assignment(len(table), config.n_folds, config.seed, strata), index=table.index)
    mc = read_multiome(metacell_multiome.path)
    observed = expression_frame(mc["rna"])
    totals = pd.Series(np.asarray(mc["rna"].X.sum(axis=1)).ravel(), index=observed.index)
    parts, skipped = [], {}
    common = {"folds": folds, "labels": labels, "n_components": config.n_components}

    predictions = _optional(storage, "predictions")
    predicted = None
    if predictions is not None and len(predictions):
        predicted = rep.predicted_expression(predictions, totals)
    if predicted is None or predicted.shape[1] < 2:
        skipped["predicted_pca"] = "the predictions table is missing or has < 2 genes"
    if config.observed_genes == "modelled":
        if predicted is None:
            raise dg.Failure(
                "observed_genes='modelled' needs the predictions table (materialize gene_models)"
            )
        observed = observed[list(predicted.columns)]
    parts.append(rep.fold_embeddings(observed, representation="observed_pca", **common))
    if "predicted_pca" not in skipped:
        parts.append(rep.fold_embeddings(predicted, representation="predicted_pca", **common))

    activity = _tf_activity(storage)
    if activity is not None:
        parts.append(rep.fold_embeddings(activity, representation="tf_activity", method="identity", **common))
    else:
        skipped["tf_activity"] = "the tf_attribution table is missing or empty"

    activations = _optional(storage, "kpnn_activations")
    cell_labels = (
        rep.cell_labels(read_multiome(multiome.path, backed=True), dataset_config.groupby)
        if activations is not None
        else None
    )
    for network in config.kpnn_networks:
        name = f"kpnn_{network}"
        if activations is None or not (activations["network"] == network).any():
            skipped[name] = "the kpnn_activations table is missing or lacks this network"
            continue
        latent, kfolds = rep.kpnn_latent(activations, network)
        parts.append(
            rep.fold_embeddings(
                latent,
                kfolds,
                cell_labels,
                representation=name,
                level="cell",
                method="identity",
                include_train=False,
            )
        )
    out = pd.concat(parts, ignore_index=True)
    for name, reason in skipped.items():
        context.log.warning(f"representation {name} skipped: {reason}")
    counts = (
        out.groupby("representation", sort=False)
        .agg(folds=("fold", "nunique"), observations=("obs_name", "nunique"), dims=("dim", "nunique"))
        .reset_index()
    )
    context.add_output_metadata(
        {"representations": markdown(counts), "skipped": dg.MetadataValue.json(skipped)}
    )
    return out


class ClusteringConfig(dg.Config):
    """Clustering scores of each embedding."""

    sample_size: int = Field(default=10_000, ge=0, description="Seeded subsample per embedding (0 = all).")
    seed: int = Field(default=0, description="Seed of the subsample.")
    splits: list[str] = Field(
        default=["test"],
        description="Splits scored (train rows exist for the metacell representations only).",
    )


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("clustering_scores"))
def clustering_scores(config: ClusteringConfig, embeddings: pd.DataFrame) -> pd.DataFrame:
    """ASW, Davies-Bouldin, Calinski-Harabasz (and scIB ASWs) per representation, fold, split and label."""
    bad = set(config.splits) - {"train", "test"}
    if bad:
        raise dg.Failure(f"splits must be train and/or test, got {sorted(bad)}")
    return rep.score_embeddings(
        embeddings, splits=config.splits, sample_size=config.sample_size or None, seed=config.seed
    )


class SummaryConfig(dg.Config):
    """Confidence level of the across-fold summaries."""

    confidence: float = Field(default=0.95, gt=0, lt=1, description="Confidence level of the t interval.")


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("clustering_score_summary"))
def clustering_score_summary(
    context: dg.AssetExecutionContext,
    config: SummaryConfig,
    clustering_scores: pd.DataFrame,
    storage: StorageResource,
) -> pd.DataFrame:
    """Mean, SD, SEM and t CI (n_folds - 1 df) over folds; lowest/highest batch-ASW folds; bar plot."""
    summary = rep.summarise_by_split(clustering_scores, confidence=config.confidence)
    split = "test" if (summary["split"] == "test").any() else summary["split"].iloc[0]
    shown = summary[summary["split"] == split]
    fig = rep.plot_scores(shown)
    fig.suptitle(
        f"Clustering scores, {split} split (mean ± {config.confidence:.0%} t-CI over folds)", fontsize=10
    )
    sil = (
        shown[shown["metric"] == "silhouette"]
        .pivot_table(index="representation", columns="label", values="mean")
        .reset_index()
    )
    context.add_output_metadata(
        {
            **figure_metadata(storage, "clustering_scores", png_bytes(fig)),
            "mean_silhouette": markdown(sil),
        }
    )
    return summary


# ====================================================================== gene programs
class GeneProgramConfig(dg.Config):
    """Standardised loadings, dimension importance and program genes (InterScale's settings)."""

    cumulative_cutoff: float = Field(
        default=0.6, gt=0, le=1, description="Dims kept until their cumulative importance reaches this."
    )
    importance_mode: str = Field(default="full", description="full (uses Corr(z)) or diag.")
    top_n: int = Field(default=20, ge=1, description="Genes per selected dim.")
    min_frac: float = Field(
        default=0.05, ge=0, description="Minimum fraction of observations expressing a gene."
    )
    min_sd: float = Field(default=0.0, ge=0, description="Minimum expression SD (0 = no filter).")
    rank_by: str = Field(default="loading", description="loading or loading_x_sd.")
    residualize: bool = Field(
        default=False,
        description="Scale each dim's scores by its uniqueness sqrt(1 - R^2) on the other dims (InterScale).",
    )
    residualise_covariate: str = Field(
        default="",
        description="obs column (e.g. batch) regressed out of latent and expression before the loadings.",
    )
    specificity_ratio: float = Field(
        default=1.5, ge=0, description="Keep genes whose top |score| is >= this x the second (0 = off)."
    )
    kpnn_networks: list[str] = Field(default=["full", "pruned"], description="KPNN latents to analyse.")


PROGRAM_TABLES = ("gene_loadings", "latent_rank_report", "dim_importance", "gene_program_genes")


def _latents(storage: StorageResource, config: GeneProgramConfig, mc, mdata):
    """(name, latent, expression, covariate) for each latent space that exists; and what was skipped."""
    found, skipped = [], {}
    activity = _tf_activity(storage)
    if activity is not None:
        expr = expression_frame(mc["rna"])
        cov = _covariate(mc, config.residualise_covariate)
        found.append(("tf_activity", activity, expr, cov))
    else:
        skipped["tf_activity"] = "the tf_attribution table is missing or empty"
    activations = _optional(storage, "kpnn_activations")
    cell_expr = None
    for network in config.kpnn_networks:
        name = f"kpnn_{network}"
        if activations is None or not (activations["network"] == network).any():
            skipped[name] = "the kpnn_activations table is missing or lacks this network"
            continue
        if cell_expr is None:
            cell_expr = expression_frame(mdata["rna"])
        latent, _ = rep.kpnn_latent(activations, network)
        found.append((name, latent, cell_expr, _covariate(mdata, config.residualise_covariate)))
    return found, skipped


def _covariate(mdata, name: str) -> pd.Series | None:
    if not name:
        return None
    col = obs_column(mdata, name)
    if col is None:
        raise dg.Failure(f"residualise_covariate: obs column {name!r} not found")
    return pd.Series(col.astype(object).to_numpy(), index=pd.Index(mdata.obs_names.astype(str)))


@dg.multi_asset(
    outs={
        name: dg.AssetOut(
            group_name=GROUP,
            kinds={"parquet"},
            metadata=column_schema(name),
            description=table_description(name),
        )
        for name in PROGRAM_TABLES
    },
    ins={"metacell_multiome": dg.AssetIn(), "multiome": dg.AssetIn()},
    deps=["tf_attribution", "kpnn_activations"],
)
def gene_programs(
    context: dg.AssetExecutionContext,
    config: GeneProgramConfig,
    metacell_multiome: H5muRef,
    multiome: H5muRef,
    storage: StorageResource,
):
    """Per latent space (TF activity; KPNN hidden nodes): loadings, rank, dim importance, program genes."""
    if config.importance_mode not in ("full", "diag"):
        raise dg.Failure(f"importance_mode must be 'full' or 'diag', got {config.importance_mode!r}")
    if config.rank_by not in ("loading", "loading_x_sd"):
        raise dg.Failure(f"rank_by must be 'loading' or 'loading_x_sd', got {config.rank_by!r}")
    latents, skipped = _latents(
        storage, config, read_multiome(metacell_multiome.path), read_multiome(multiome.path)
    )
    for name, reason in skipped.items():
        context.log.warning(f"latent {name} skipped: {reason}")
    tables: dict[str, list] = {name: [] for name in PROGRAM_TABLES}
    for name, latent, expression, covariate in latents:
        result = rep.latent_programs(
            name,
            latent,
            expression,
            cutoff=config.cumulative_cutoff,
            mode=config.importance_mode,
            top_n=config.top_n,
            min_frac=config.min_frac,
            min_sd=config.min_sd or None,
            rank_by=config.rank_by,
            residualize=config.residualize,
            specificity_ratio=config.specificity_ratio or None,
            covariate=covariate,
        )
        for key in PROGRAM_TABLES:
            tables[key].append(result[key])
    frames = {
        k: pd.concat(v, ignore_index=True) if v else pd.DataFrame({c: [] for c in column_names(k)})
        for k, v in tables.items()
    }
    imp, rank = frames["dim_importance"], frames["latent_rank_report"]
    common = {
        "latents": dg.MetadataValue.json([n for n, *_ in latents]),
        "skipped": dg.MetadataValue.json(skipped),
    }
    extra = {
        "latent_rank_report": {"report": markdown(rank)},
        "dim_importance": {
            **(
                figure_metadata(storage, "dim_importance", png_bytes(rep.plot_dim_importance(imp)))
                if len(imp)
                else {}
            ),
            "selected_dims": dg.MetadataValue.json(
                {n: g.loc[g["selected"], "dim"].tolist() for n, g in imp.groupby("latent", sort=False)}
            ),
        },
        "gene_program_genes": {
            "programs": markdown(
                frames["gene_program_genes"]
                .groupby("program", sort=False)
                .size()
                .rename("genes")
                .reset_index()
            )
            if len(frames["gene_program_genes"])
            else "(none)"
        },
    }
    for name in PROGRAM_TABLES:
        yield dg.Output(frames[name], output_name=name, metadata={**common, **extra.get(name, {})})


class EnrichmentConfig(dg.Config):
    """Offline over-representation of the programs in the shipped GO Biological Process sets."""

    min_genes: int = Field(
        default=3, ge=1, description="Programs with fewer background genes are not tested."
    )
    compare: list[str] = Field(
        default=["tf_activity", "kpnn_full"],
        description=(
            "Two latents whose program genes are also split into shared / unique_<a> / unique_<b> "
            "(InterScale's comparison); the diverging plot shows unique_<a> vs unique_<b>."
        ),
    )
    plot_top_n: int = Field(default=6, ge=1, description="Terms per group in the plot.")
    plot_groups: int = Field(
        default=6,
        ge=1,
        description="Without the comparison: programs shown (those with the smallest adjusted p-values).",
    )
    min_symbol_coverage: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description=(
            "Skip enrichment (with a note per program) when fewer measured genes than this are GO symbols."
        ),
    )


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("gene_program_enrichment"))
def gene_program_enrichment(
    context: dg.AssetExecutionContext,
    config: EnrichmentConfig,
    gene_program_genes: pd.DataFrame,
    multiome: H5muRef,
    storage: StorageResource,
) -> pd.DataFrame:
    """gseapy `enrich` of every program against GO BP (shipped, offline); background = measured genes."""
    from regnet_assets.science.dataset.reference_data import go_bp_gene_sets

    if len(config.compare) not in (0, 2):
        raise dg.Failure(f"compare names two latents (or none), got {config.compare}")
    background = [str(g) for g in read_multiome(multiome.path, backed=True)["rna"].var_names]
    sets = go_bp_gene_sets()
    coverage = rep.symbol_coverage(background, sets)
    groups = rep.program_sets(gene_program_genes, config.compare)
    kinds = groups.drop_duplicates("program").set_index("program")["kind"]
    if groups.empty:
        result = pd.DataFrame({c: pd.Series(dtype=object) for c in column_names("gene_program_enrichment")})
    elif coverage < config.min_symbol_coverage:
        note = (
            f"enrichment skipped: only {coverage:.0%} of the measured genes are GO BP human symbols "
            f"(min_symbol_coverage {config.min_symbol_coverage:.0%}); map gene names to human symbols"
        )
        context.log.warning(note)
        result = pd.DataFrame({"program": kinds.index, "note": note})
    else:
        result = enrichment.enrich_programs(
            groups, background, sets, min_genes=config.min_genes, gene_set_name="GO_BP"
        )
    result.insert(1, "kind", result["program"].map(kinds))
    result = result.reindex(columns=list(column_names("gene_program_enrichment")))
    tested = result[result["Term"].notna()]
    pair = tuple(f"unique_{n}" for n in config.compare)
    diverging = len(pair) == 2 and all((tested["program"] == p).any() for p in pair)
    if diverging:
        groups = pair
    else:  # one-sided: the plot_groups programs with the smallest adjusted p-values
        best = tested.groupby("program", sort=False)["Adjusted P-value"].min().sort_values(kind="stable")
        groups = tuple(best.index[: config.plot_groups])
    fig = enrichment.plot_top_terms(tested, top_n=config.plot_top_n, groups=groups or None)
    top = tested.sort_values("Adjusted P-value", kind="stable").groupby("program", sort=False).head(1)
    context.add_output_metadata(
        {
            **figure_metadata(storage, "gene_program_enrichment", png_bytes(fig)),
            "symbol_coverage": coverage,
            "programs": int(result["program"].nunique()),
            "programs_with_terms": int(tested["program"].nunique()),
            "top_term_per_program": markdown(top[["program", "Term", "Overlap", "Adjusted P-value"]]),
            "plot": "unique_<a> vs unique_<b> (diverging)" if diverging else f"top terms of {list(groups)}",
        }
    )
    return result


REPORT_TABLES = [
    ablated_gene_models,
    gene_ranks,
    embeddings,
    clustering_scores,
    clustering_score_summary,
    gene_programs,
    gene_program_enrichment,
]
REPORT_ASSETS = REPORT_TABLES
