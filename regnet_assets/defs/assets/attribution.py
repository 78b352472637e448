"""The ``attribution`` group: which TFs each gene's model relies on, and the network they form.

One batched run per range of genes loads the checkpoints ``gene_models`` saved, runs
Integrated Gradients of every gene's predicted log-rate with respect to its TFs' expression
over all metacells (the reference's ``cn.ip.tf_attr``), and summarises the attributions per
cell type (``cn.ip.tf_to_gene``, ranked by |mean| so repressors count). Two fan-in assets then
build the TF → gene network and, on data with a known truth, score it against correlation and
random rankings.
"""

import time

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from regnet_assets.defs.assets.dataset import H5muRef
from regnet_assets.defs.assets.models import GENES_PER_RUN
from regnet_assets.defs.metadata import column_schema, figure_metadata
from regnet_assets.defs.partitions import genes_partitions
from regnet_assets.defs.pools import GPU_POOL
from regnet_assets.defs.resources import DatasetResource, StorageResource, TorchDeviceResource
from regnet_assets.science.attribution import grn as grn
from regnet_assets.science.attribution import ig as attribution
from regnet_assets.science.common.figures import png_bytes
from regnet_assets.science.common.normalise import expression_frame
from regnet_assets.science.dataset.reading import read_multiome
from regnet_assets.science.models import trainer as training
from regnet_assets.storage.models import model_path
from regnet_assets.storage.parquet import ParquetFiles

GROUP = "attribution"
TABLES = ("tf_attribution", "tf_to_gene", "attribution_delta")
METHOD_NAME = "regnet"
_DESCRIPTIONS = {
    "tf_attribution": "Integrated Gradients of each gene's predicted log-rate w.r.t. each candidate TF, per metacell.",
    "tf_to_gene": "Attributions summarised per gene, cell type and TF (mean, SD), ranked.",
    "attribution_delta": "Completeness (convergence delta) of each gene's attributions.",
}

_COLUMNS = {
    "tf_attribution": {
        "gene": "target gene",
        "metacell": "metacell name",
        "tf": "candidate TF of the gene",
        "attribution": "Integrated Gradients of the gene's predicted log-rate w.r.t. the TF's "
        "expression (baseline: TF expression 0)",
    },
    "tf_to_gene": {
        "gene": "target gene",
        "cell_type": "cell type of the metacells ('all' = every metacell)",
        "tf": "candidate TF",
        "mean_attr": "mean attribution over the cell type's metacells (signed)",
        "std_attr": "standard deviation (ddof 0) of the attribution",
        "n_metacells": "metacells of the cell type",
        "rank": "1 = largest |mean_attr| (or signed, see config)",
    },
    "attribution_delta": {
        "gene": "target gene",
        "status": "attributed | skipped",
        "reason": "why a gene was skipped",
        "n_metacells": "metacells attributed",
        "n_tfs": "candidate TFs of the gene",
        "n_steps": "quadrature points (0 = closed-form integral)",
        "max_abs_delta": "max over metacells of |Σ attributions − (f(x) − f(baseline))|",
        "mean_abs_delta": "mean over metacells of the same",
        "output_range": "max over metacells of |f(x) − f(baseline)|, the effect the attributions explain",
        "relative_delta": "max_abs_delta / output_range (the completeness check compares it to its threshold)",
        "device": "torch device",
    },
    "regulatory_network": {
        "tf": "regulator",
        "gene": "target",
        "score": "mean |attribution| over all metacells",
        "sign": "+1 activates, −1 represses (sign of the mean attribution)",
        "mean_attr": "mean attribution over all metacells",
        "cell_types": "';'-joined cell types where the TF is in the gene's top n",
        "top_overall": "in the gene's top n over all metacells",
        "in_network": "in any top n (the network proper; other rows are scored candidates)",
        "n_targets_of_tf": "network genes the TF regulates",
    },
    "grn_recovery": {
        "method": "regnet (attribution), correlation (|Pearson r| of log1p CP10k expression), "
        "random_expected (analytic), random_seeded (one draw)",
        "cell_type": "'all' or the cell type whose metacells and true edges are scored",
        "auroc": "area under the ROC curve of true TF → gene edges among the candidates",
        "auprc": "average precision (area under the precision–recall curve)",
        "prevalence": "share of candidates that are true edges (AUPRC of a random ranking)",
        "sign_accuracy": "share of true edges whose predicted sign matches",
    },
}


class AttributionConfig(dg.Config):
    """Integrated Gradients and the per-cell-type summary; defaults follow the Cell2Net tutorial."""

    n_steps: int = Field(default=100, ge=1, description="Gauss-Legendre points on the path.")
    method: str = Field(
        default="gausslegendre",
        description="gausslegendre (captum's default) or exact (closed-form, delta 0).",
    )
    n_tfs: int = Field(default=10, ge=1, description="TFs kept per gene and cell type in tf_to_gene.")
    signed: bool = Field(
        default=False,
        description="Rank by the signed mean as the reference does (repressors drop "
        "out) instead of by |mean|.",
    )
    max_relative_delta: float = Field(
        default=0.05,
        gt=0,
        description="Completeness check: fail when a gene's max |delta| / output range exceeds this.",
    )


@dg.multi_asset(
    outs={
        name: dg.AssetOut(
            group_name=GROUP,
            kinds={"pytorch", "parquet"} if name == "tf_attribution" else {"parquet"},
            metadata=column_schema(_COLUMNS[name]),
            description=_DESCRIPTIONS[name],
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
    if config.method not in ("gausslegendre", "exact"):
        raise dg.Failure(f"method must be 'gausslegendre' or 'exact', got {config.method!r}")
    genes = list(context.partition_keys)
    status = _model_status(gene_models, genes, storage)
    for gene, reason in status.items():
        if reason:
            context.log.warning(f"no attribution for gene {gene}: {reason}")
    todo = [g for g in genes if not status[g]]

    mc = read_multiome(metacell_multiome.path)
    labels = _labels(mc, dataset_config.groupby)
    inputs, skipped = (
        training.build_gene_inputs(mc, peak_gene_links, gene_tf_candidates, todo) if todo else ([], {})
    )
    if skipped:  # trained earlier, not buildable now: the dataset changed under the models
        raise dg.Failure(
            f"checkpoints exist for {sorted(skipped)} but their inputs cannot be rebuilt "
            f"({skipped}); re-materialize gene_models for these genes"
        )
    torch_device = device.resolve()
    started = time.perf_counter()
    try:
        results = (
            attribution.integrated_gradients(
                [model_path(storage.path, x.gene) for x in inputs],
                inputs,
                n_steps=config.n_steps,
                device=torch_device,
                method=config.method,
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

    tables = _tables(results, status, labels, config, torch_device)
    for name in TABLES:
        yield dg.Output(
            tables[name],
            output_name=name,
            metadata={
                "genes_attributed": len(results),
                "ig_seconds": round(seconds, 3),
                "device": torch_device,
            },
        )
    yield from _checks(tables, config.max_relative_delta)


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


def _empty(table: str) -> pd.DataFrame:
    types = {
        "gene": "string",
        "metacell": "string",
        "tf": "string",
        "cell_type": "string",
        "reason": "string",
        "status": "string",
        "device": "string",
        "n_metacells": "int64",
        "rank": "int64",
        "n_tfs": "int64",
        "n_steps": "int64",
    }
    return pd.DataFrame({c: pd.Series(dtype=types.get(c, "float64")) for c in _COLUMNS[table]})


def _tables(
    results, status: dict[str, str], labels: pd.Series, config: AttributionConfig, torch_device: str
) -> dict[str, dict[str, pd.DataFrame]]:
    """Per table, ``{gene: rows}`` for every gene of the run (skipped genes get empty rows)."""
    out: dict[str, dict[str, pd.DataFrame]] = {name: {} for name in TABLES}
    rank_by = "signed" if config.signed else "abs"
    for r in results:
        long = r.to_frame()
        out["tf_attribution"][r.gene] = long
        out["tf_to_gene"][r.gene] = grn.tf_to_gene(long, labels, n_tfs=config.n_tfs, rank_by=rank_by)
        out["attribution_delta"][r.gene] = pd.DataFrame([_delta_row(r, torch_device)])
    for gene, reason in status.items():
        if reason:
            out["tf_attribution"][gene] = _empty("tf_attribution")
            out["tf_to_gene"][gene] = _empty("tf_to_gene")
            out["attribution_delta"][gene] = pd.DataFrame(
                [
                    {
                        "gene": gene,
                        "status": "skipped",
                        "reason": reason,
                        "n_metacells": 0,
                        "n_tfs": 0,
                        "n_steps": 0,
                        "max_abs_delta": np.nan,
                        "mean_abs_delta": np.nan,
                        "output_range": np.nan,
                        "relative_delta": np.nan,
                        "device": torch_device,
                    }
                ]
            )
    return out


def _delta_row(r, torch_device: str) -> dict:
    abs_delta = np.abs(r.delta)
    max_delta = float(abs_delta.max()) if abs_delta.size else 0.0
    output_range = float(np.abs(r.f_x - r.f_baseline).max()) if abs_delta.size else 0.0
    relative = max_delta / output_range if output_range > 0 else (0.0 if max_delta == 0 else float("inf"))
    return {
        "gene": r.gene,
        "status": "attributed",
        "reason": "",
        "n_metacells": len(r.metacells),
        "n_tfs": len(r.tf_names),
        "n_steps": r.n_steps,
        "max_abs_delta": max_delta,
        "mean_abs_delta": float(abs_delta.mean()) if abs_delta.size else 0.0,
        "output_range": output_range,
        "relative_delta": relative,
        "device": torch_device,
    }


def _checks(tables, threshold: float):
    deltas = pd.concat(tables["attribution_delta"].values(), ignore_index=True)
    done = deltas[deltas["status"] == "attributed"]
    over = done[~(done["relative_delta"] <= threshold)].sort_values("relative_delta", ascending=False)
    worst = done["relative_delta"].max() if len(done) else 0.0
    yield dg.AssetCheckResult(
        check_name="attribution_complete",
        asset_key="tf_attribution",
        passed=over.empty,
        metadata={
            "threshold": threshold,
            "max_relative_delta": float(worst),
            "genes_over": dg.MetadataValue.json(over["gene"].tolist()[:50]),
            "genes_checked": len(done),
        },
    )
    attr = [f["attribution"].to_numpy(float) for f in tables["tf_attribution"].values() if len(f)]
    values = np.concatenate(attr) if attr else np.array([])
    bad = {
        g: int((~np.isfinite(f["attribution"].to_numpy(float))).sum())
        for g, f in tables["tf_attribution"].items()
        if len(f)
    }
    bad = {g: n for g, n in bad.items() if n}
    yield dg.AssetCheckResult(
        check_name="attribution_finite",
        asset_key="tf_attribution",
        passed=not bad,
        metadata={
            "non_finite": int((~np.isfinite(values)).sum()),
            "genes": dg.MetadataValue.json(sorted(bad)),
        },
    )


# ====================================================================== fan-in over all genes
@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema(_COLUMNS["regulatory_network"]))
def regulatory_network(
    context: dg.AssetExecutionContext, tf_to_gene: pd.DataFrame, tf_attribution: ParquetFiles
) -> pd.DataFrame:
    """TF → gene edges of all genes: score, sign, cell types where the TF is in the top n, targets per TF."""
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
        }
    )
    return net


class RecoveryConfig(dg.Config):
    """Scoring the network against the simulator's truth."""

    seed: int = Field(default=0, description="Seed of the random_seeded ranking.")
    per_cell_type: bool = Field(default=True, description="Also score each cell type separately.")


_RECOVERY_COLUMNS = [
    "method",
    "cell_type",
    "n_candidates",
    "n_true",
    "auroc",
    "auprc",
    "prevalence",
    "sign_accuracy",
    "n_signed",
    "n_true_outside",
]


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema(_COLUMNS["grn_recovery"]))
def grn_recovery(
    context: dg.AssetExecutionContext,
    config: RecoveryConfig,
    regulatory_network: pd.DataFrame,
    tf_attribution: ParquetFiles,
    truth_tf_gene: pd.DataFrame,
    metacell_multiome: H5muRef,
    dataset_config: DatasetResource,
    storage: StorageResource,
) -> pd.DataFrame:
    """AUROC/AUPRC/sign accuracy of the network vs the true edges, beside correlation and random."""
    if truth_tf_gene.empty:
        context.add_output_metadata(
            {"note": "no ground truth for this dataset (truth_tf_gene is empty): nothing to score"}
        )
        return pd.DataFrame(
            {
                c: pd.Series(dtype="string" if c in ("method", "cell_type") else "float64")
                for c in _RECOVERY_COLUMNS
            }
        )
    # the candidates the models saw; truth restricted to the attributed genes
    edges = regulatory_network[["tf", "gene", "score", "sign"]]
    candidates = edges[["gene", "tf"]]
    truth = truth_tf_gene[truth_tf_gene["gene"].isin(set(edges["gene"]))]
    mc = read_multiome(metacell_multiome.path)
    labels = _labels(mc, dataset_config.groupby)
    rna = mc["rna"]
    expression = expression_frame(
        rna, [g for g in sorted(set(edges["tf"]) | set(edges["gene"])) if g in rna.var_names]
    )
    cell_type_scores = None
    if config.per_cell_type:
        cell_type_scores = grn.cell_type_edge_scores(grn.tf_to_gene(tf_attribution, labels, n_tfs=None))
    table = grn.grn_recovery(
        edges,
        truth,
        candidates,
        cell_type_scores=cell_type_scores,
        expression=expression,
        metacell_labels=labels,
        method_name=METHOD_NAME,
        seed=config.seed,
    )
    fig = grn.plot_pr_curves(
        edges,
        truth,
        candidates,
        expression=expression,
        method_name=METHOD_NAME,
        title=f"TF → gene recovery ({edges['gene'].nunique()} genes)",
    )
    overall = table[table["cell_type"] == grn.ALL].set_index("method")
    context.add_output_metadata(
        {
            **figure_metadata(storage, "grn_recovery", png_bytes(fig)),
            "overall": dg.MetadataValue.md(
                overall[["auroc", "auprc", "sign_accuracy", "n_true", "n_candidates"]].to_markdown(
                    floatfmt=".3f"
                )
            ),
            **{f"auprc_{m}": float(overall.at[m, "auprc"]) for m in overall.index},
        }
    )
    return table[_RECOVERY_COLUMNS]


ATTRIBUTION_TABLES = [tf_attribution, regulatory_network, grn_recovery]
ATTRIBUTION_ASSETS = ATTRIBUTION_TABLES
