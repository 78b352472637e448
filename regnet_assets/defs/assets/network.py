"""The ``network`` group: the prior-knowledge network, its minimal DAG, and a KPNN on each.

``pkn_edges`` (genes → TFs → signalling → root, computation direction) is validated against the
measured genes; ``pruned_dag_edges``/``pruning_summary`` are its smallest DAG in which every input
still reaches the root (MILP); the ``kpnn`` step trains a knowledge-primed neural network on the
full and on the pruned network with stratified k-fold CV, predicting the cells' condition.
"""

import json

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from regnet_assets.defs.assets.dataset import H5muRef
from regnet_assets.defs.config import science_field, to_science
from regnet_assets.defs.metadata import column_schema, figure_metadata, markdown
from regnet_assets.defs.pools import GPU_POOL
from regnet_assets.defs.resources import StorageResource, TorchDeviceResource
from regnet_assets.science.common.figures import png_bytes
from regnet_assets.science.dataset.reading import read_multiome
from regnet_assets.science.network.build import (
    finalize_pkn,
    infer_root,
    network_inputs,
    network_root,
    simulator_pkn,
)
from regnet_assets.science.network.cells import kpnn_data
from regnet_assets.science.network.control import N_CONTROLS, control_datasets, control_node_weights
from regnet_assets.science.network.importance import plot_node_importance, simulator_roles
from regnet_assets.science.network.kpnn_training import KPNNConfig, cross_validate_network
from regnet_assets.science.network.pkn import EDGE_COLUMNS, PKNError, human_kpnn, read_pkn
from regnet_assets.science.network.results import kpnn_tables, plot_kpnn_metrics
from regnet_assets.storage import read_table
from regnet_assets.storage.tables import table_description

GROUP = "network"
NETWORKS = ("full", "pruned")


def _fail(what: str, exc: Exception) -> dg.Failure:
    return dg.Failure(description=f"{what}: {exc}", metadata={"error": str(exc)})


# ============================================================================ prior knowledge


class PKNConfig(dg.Config):
    """Which prior-knowledge network: the simulator's, a user's file, or the shipped human one."""

    source: str = Field(
        default="auto",
        description=(
            "auto (file when path is set, else simulator when the dataset has signalling truth) | "
            "simulator | file | human (DoRothEA + signalling PKN restricted to the measured genes)"
        ),
    )
    path: str = Field(
        default="",
        description="PKN file: SIF (source sign target), TSV/CSV with "
        "source,target[,sign] or source,interaction,target, or the KPNN parent,child list.",
    )
    format: str = Field(default="", description="sif | tsv | csv; empty = from the file extension.")
    root: str = Field(
        default="",
        description="Output node. Empty: simulator = its receptor, human = TCR, "
        "file = the network's only node without outgoing edges.",
    )
    tf_edges: str = Field(
        default="auto",
        description="Simulator TF → gene layer: regulatory_network (the attribution group's learned "
        "edges), candidates (every motif candidate of gene_tf_candidates), or auto: the learned "
        "edges once that table exists, else the candidates (said in the log and the metadata).",
    )
    decoys: bool = Field(default=True, description="Simulator: wire the decoy kinases in as controls.")
    human_confidence: str = Field(default="ABC", description="DoRothEA confidence levels for source=human.")
    missing_inputs: str = Field(
        default="drop", description="Input genes not measured in the RNA: drop (counted in metadata) or fail."
    )


def _tf_gene_layer(config: PKNConfig, candidates: pd.DataFrame, storage: StorageResource, log):
    """The simulator PKN's TF → gene edges. Why the learned network by default: through the dense
    candidate layer every decoy kinase reaches as many input genes as the true kinases, so KPNN
    node importance cannot tell them apart (pathway-vs-decoy AUROC 0.5-0.67 over 4 seeds); wired
    with regnet's in-network edges it does (0.83-1.0, bench/README.md, "KPNN")."""
    mode = config.tf_edges
    if mode not in ("auto", "candidates", "regulatory_network"):
        raise PKNError(
            "tf_edges", f"must be 'auto', 'candidates' or 'regulatory_network', got {config.tf_edges!r}"
        )
    net = None
    if mode != "candidates":
        try:
            net = read_table(storage.path, "regulatory_network")
        except FileNotFoundError as exc:
            if mode == "regulatory_network":
                raise PKNError(
                    "tf_edges",
                    "the regulatory_network table does not exist yet: materialize it (attribution "
                    "group) first, or use tf_edges='candidates'",
                ) from exc
            log.warning(
                "regulatory_network is not materialized yet, so the PKN's TF -> gene layer is every "
                "motif candidate; materialize the attribution group, then pkn_edges, for the learned edges"
            )
    if net is None:
        return candidates[["tf", "gene"]], "gene_tf_candidates", {}
    if "in_network" in net.columns:
        net = net[net["in_network"].astype(bool)]
    if net.empty:
        raise PKNError("tf_edges", "the regulatory_network table has no edges in the network")
    cols = [c for c in ("tf", "gene", "sign") if c in net.columns]
    return net[cols], "regulatory_network", {"regulatory_network_edges": len(net)}


def _build(config: PKNConfig, mdata, truth_signalling, candidates, storage, log):
    """(edges with origin, root, metadata) for the configured source; PKNError when unusable."""
    source = config.source
    if source == "auto":
        source = "file" if config.path else ("simulator" if len(truth_signalling) else "")
        if not source:
            raise PKNError(
                "source",
                "this dataset has no simulated signalling truth and no PKN file is set: "
                "set path to a PKN file, or source='human' for the shipped human network",
            )
    if source == "file":
        if not config.path:
            raise PKNError("path", "source='file' needs path")
        edges = read_pkn(config.path, config.format or None).assign(origin="file")
        return edges, config.root or infer_root(edges), {"source": "file", "path": config.path}
    if source == "human":
        root = config.root or "TCR"
        edges = human_kpnn(root=root, confidence=config.human_confidence).assign(origin="human_kpnn")
        return edges, root, {"source": "human", "confidence": config.human_confidence}
    if source != "simulator":
        raise PKNError("source", f"must be auto, simulator, file or human, got {source!r}")
    if truth_signalling.empty:
        raise PKNError("source", "source='simulator' needs a simulated dataset (truth_signalling is empty)")
    from regnet_assets.science.dataset.reference_data import signalling_pkn

    tf_gene, origin, extra = _tf_gene_layer(config, candidates, storage, log)
    roles = pd.DataFrame(mdata.uns["truth_gene_roles"]) if "truth_gene_roles" in mdata.uns else None
    edges, report = simulator_pkn(
        truth_signalling,
        tf_gene,
        roles,
        signalling_pkn(),
        root=config.root or None,
        decoys=config.decoys,
        tf_edge_origin=origin,
    )
    meta = {
        "source": "simulator",
        "tf_edges": origin,
        **extra,
        "decoys_in_network": dg.MetadataValue.json(report["decoys_in_network"]),
        "decoy_parents": dg.MetadataValue.json(report["decoy_parents"]),
    }
    return edges, report["root"], meta


# regulatory_network is read (not loaded) by the default TF layer: the dependency orders the runs
@dg.asset(
    group_name=GROUP,
    kinds={"parquet"},
    metadata=column_schema("pkn_edges"),
    deps=[dg.AssetDep("regulatory_network")],
)
def pkn_edges(
    context: dg.AssetExecutionContext,
    config: PKNConfig,
    multiome: H5muRef,
    truth_signalling: pd.DataFrame,
    gene_tf_candidates: pd.DataFrame,
    storage: StorageResource,
) -> pd.DataFrame:
    """The prior-knowledge network: input genes → TFs → signalling → root, validated, a DAG."""
    mdata = read_multiome(multiome.path)
    try:
        edges, root, meta = _build(config, mdata, truth_signalling, gene_tf_candidates, storage, context.log)
        final, report = finalize_pkn(edges, root, mdata["rna"].var_names, config.missing_inputs)
    except ValueError as exc:  # PKNError, and unreadable files (pandas' parser errors)
        raise _fail("prior-knowledge network rejected", exc) from exc
    if report["input_genes_not_measured"]:
        context.log.warning(
            f"{report['input_genes_not_measured']} input gene(s) not measured, dropped: "
            f"{report['input_genes_not_measured_examples']}"
        )
    if report["cycle_edges_dropped"]:
        context.log.warning(
            f"the network had cycles: {report['cycle_edges_dropped']} edge(s) that do not "
            "approach the root were dropped"
        )
    by_origin = final.groupby("origin").size().rename("edges").reset_index()
    context.add_output_metadata(
        {
            **meta,
            **{k: v for k, v in report.items() if not isinstance(v, list)},
            "input_genes_not_measured_examples": dg.MetadataValue.json(
                report["input_genes_not_measured_examples"]
            ),
            "edges_by_origin": markdown(by_origin),
        }
    )
    return final[[*EDGE_COLUMNS, "origin"]]


# ============================================================================ minimal DAG


class PruningConfig(dg.Config):
    """The minimal-DAG MILP (cvxpy + HiGHS)."""

    method: str = Field(
        default="structural",
        description="structural (node selection, exact and fast) or "
        "acyclic_flow (the CORNETO formulation, for comparison).",
    )
    time_limit: float = Field(default=60.0, description="Seconds for HiGHS; a stopped solve is reported.")


def _summary_row(summary: dict, root: str) -> pd.DataFrame:
    row = {"root": root}
    for key, value in summary.items():
        if key == "model":
            row["model_info"] = json.dumps(value, default=str)
        else:
            row[key] = np.nan if value is None else value
    return pd.DataFrame([row])


@dg.multi_asset(
    outs={
        "pruned_dag_edges": dg.AssetOut(
            group_name=GROUP,
            kinds={"parquet"},
            metadata=column_schema("pruned_dag_edges"),
            description=table_description("pruned_dag_edges"),
        ),
        "pruning_summary": dg.AssetOut(
            group_name=GROUP,
            kinds={"parquet"},
            metadata=column_schema("pruning_summary"),
            description=table_description("pruning_summary"),
        ),
    },
    check_specs=[
        dg.AssetCheckSpec(
            "pruning_is_optimal",
            asset="pruning_summary",
            description="The MILP proved its DAG minimal (warns otherwise).",
        )
    ],
)
def pruned_dag(context: dg.AssetExecutionContext, config: PruningConfig, pkn_edges: pd.DataFrame):
    """Minimal DAG of the prior-knowledge network by MILP, with the solver's status and bound."""
    from regnet_assets.science.network.pruning import PruningError, prune_to_minimal_dag

    try:
        root, inputs = network_root(pkn_edges), network_inputs(pkn_edges)
        result = prune_to_minimal_dag(
            pkn_edges[EDGE_COLUMNS], inputs, root, method=config.method, time_limit=config.time_limit
        )
    except (PruningError, ValueError) as exc:
        raise _fail("minimal-DAG pruning failed", exc) from exc
    s = result.summary
    kept = result.edges.merge(pkn_edges[["source", "target", "origin"]], on=["source", "target"], how="left")
    optimal = result.optimal
    if not optimal:
        context.log.warning(
            f"pruning status {s['status']}: the DAG is feasible but NOT proven minimal "
            f"(objective {s['objective']}, best bound {s['best_bound']})"
        )
    headline = {
        k: s[k]
        for k in (
            "status",
            "method",
            "edges_before",
            "edges_after",
            "nodes_before",
            "nodes_after",
            "edge_compression_pct",
            "parameter_compression_pct",
            "solve_seconds",
        )
    }
    yield dg.Output(
        kept,
        output_name="pruned_dag_edges",
        metadata={
            **headline,
            "optimal": optimal,
            "edges_by_origin": markdown(kept.groupby("origin").size().rename("edges").reset_index()),
        },
    )
    yield dg.Output(
        _summary_row(s, root),
        output_name="pruning_summary",
        metadata={
            **headline,
            "optimal": optimal,
            "best_bound": dg.MetadataValue.float(
                float("nan") if s["best_bound"] is None else float(s["best_bound"])
            ),
        },
    )
    yield dg.AssetCheckResult(
        check_name="pruning_is_optimal",
        asset_key="pruning_summary",
        passed=bool(optimal),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "status": s["status"],
            "objective": s["objective"],
            "best_bound": float("nan") if s["best_bound"] is None else float(s["best_bound"]),
        },
    )


# ============================================================================ KPNN


class KPNNTrainingConfig(dg.Config):
    """KPNN training and CV; the training fields and their defaults are :class:`KPNNConfig`'s."""

    label: str = Field(default="condition", description="obs column with the binary class label.")
    positive_class: str = Field(default="", description="Class coded 1; empty = the last category.")
    max_cells: int = Field(default=2000, description="Stratified seeded subsample of cells (0 = all).")
    n_folds: int = Field(default=5, description="Stratified CV folds.")
    epochs: int = science_field(KPNNConfig, "epochs", "Maximum epochs (early stopping on an inner split).")
    patience: int = science_field(
        KPNNConfig, "patience", "Epochs without validation improvement before stopping."
    )
    lr: float = science_field(KPNNConfig, "lr", "Adam learning rate.")
    batch_size: int = science_field(KPNNConfig, "batch_size", "Cells per batch.")
    dropout: float = science_field(
        KPNNConfig, "dropout", "Hidden-node dropout (KPNN rule protects small fan-ins)."
    )
    input_dropout: float = science_field(KPNNConfig, "input_dropout", "Input-gene dropout.")
    weight_l1: float = science_field(
        KPNNConfig,
        "weight_l1",
        "L1 penalty on connection weights (sparser routing: sharper node weights, at some cost in accuracy).",
    )
    weight_l2: float = science_field(KPNNConfig, "weight_l2", "L2 penalty on connection weights.")
    balance_classes: bool = science_field(KPNNConfig, "balance_classes", "Class-balanced sample weights.")
    seed: int = science_field(KPNNConfig, "seed", "Seed of the folds, subsample and initialisation.")
    num_threads: int = science_field(KPNNConfig, "num_threads", "torch CPU threads (0 = torch's default).")
    n_controls: int = Field(
        default=N_CONTROLS,
        description="Networks trained on the KPNN paper's control inputs (every gene two-fold up or "
        "down) per network, to correct node importance for uneven connectivity (0 = uncorrected).",
    )
    control_cells: int = Field(
        default=0, description="Cells per control data set (0 = the paper's two batches: 2 × batch_size)."
    )


#: KPNNTrainingConfig fields that are not KPNNConfig's (data selection, CV and control inputs).
KPNN_DAGSTER_ONLY = {"label", "positive_class", "max_cells", "n_folds", "n_controls", "control_cells"}


KPNN_TABLES = (
    "kpnn_metrics",
    "kpnn_summary",
    "kpnn_node_importance",
    "kpnn_history",
    "kpnn_activations",
    "kpnn_predictions",
)


@dg.multi_asset(
    outs={
        name: dg.AssetOut(
            group_name=GROUP,
            kinds={"pytorch", "parquet"} if name == "kpnn_summary" else {"parquet"},
            description=table_description(name),
            metadata=column_schema(name),
        )
        for name in KPNN_TABLES
    },
    ins={"multiome": dg.AssetIn(), "pkn_edges": dg.AssetIn(), "pruned_dag_edges": dg.AssetIn()},
    pool=GPU_POOL,
)
def kpnn(
    context: dg.AssetExecutionContext,
    config: KPNNTrainingConfig,
    multiome: H5muRef,
    pkn_edges: pd.DataFrame,
    pruned_dag_edges: pd.DataFrame,
    storage: StorageResource,
    device: TorchDeviceResource,
):
    """Train the KPNN on the full PKN and on its minimal DAG (stratified CV), and a few networks on
    the KPNN paper's control inputs on each; metrics, node weights corrected by the controls."""
    mdata = read_multiome(multiome.path)
    nets = {"full": pkn_edges, "pruned": pruned_dag_edges}
    try:
        kcfg = to_science(config, KPNNConfig, num_threads=config.num_threads or None)
        X, y, label_info = kpnn_data(
            mdata, nets, config.label, config.positive_class, config.max_cells, config.seed
        )
    except ValueError as exc:
        raise _fail("KPNN inputs rejected", exc) from exc
    torch_device = device.resolve()
    try:
        if config.n_controls < 0 or config.control_cells < 0:
            raise ValueError("KPNNTrainingConfig.n_controls and control_cells must be >= 0")
        control_data = control_datasets(
            mdata["rna"],
            list(X.columns),
            list(y.index),
            config.n_controls,
            config.control_cells or 2 * kcfg.batch_size,
            kcfg.seed,
        )
    except ValueError as exc:
        raise _fail("KPNN control inputs rejected", exc) from exc
    results, about, controls = {}, {}, {}
    for net, edges in nets.items():
        try:
            results[net], about[net] = cross_validate_network(
                X, y, edges, kcfg, n_folds=config.n_folds, device=torch_device
            )
            controls[net] = control_node_weights(control_data, edges, kcfg, device=torch_device)
        except ValueError as exc:
            raise _fail(f"KPNN on the {net} network", exc) from exc
        about[net]["positive_class"] = label_info["positive"]
        auc = results[net].mean_metrics["roc_auc"]
        extra = controls[net][1]
        context.log.info(
            f"{net} network: ROC-AUC {auc:.3f} in {about[net]['seconds']:.1f} s; "
            f"{extra['control_networks']} control networks in {extra['control_seconds']:.1f} s"
        )
    tables = kpnn_tables(results, simulator_roles(mdata), about, controls)
    cells = {
        "cells_used": len(y),
        "cells_positive_used": int(y.sum()),
        "positive_class": label_info["positive"],
        "negative_class": label_info["negative"],
        "unlabelled_cells": label_info["unlabelled_cells"],
        "device": torch_device,
    }
    metadata = _kpnn_metadata(storage, tables, cells)
    for name in KPNN_TABLES:
        yield dg.Output(tables[name], output_name=name, metadata=metadata[name])


def _kpnn_metadata(storage: StorageResource, tables: dict, common: dict) -> dict[str, dict]:
    """Per table: the common numbers; the metrics plot on kpnn_metrics and kpnn_summary (one
    PNG, written once), the summary on kpnn_summary; the importance plot, top nodes and truth
    score on kpnn_node_importance."""
    summary, imp = tables["kpnn_summary"], tables["kpnn_node_importance"]
    top = imp[(imp["scope"] == "mean") & (imp["network"] == "full") & ~imp["is_output"]].head(10)
    truth = [None if np.isnan(v) else float(v) for v in summary["pathway_vs_decoy_auc"]]
    uncorrected = summary["pathway_vs_decoy_auc_uncorrected"]
    metadata = {name: dict(common) for name in KPNN_TABLES}
    metrics_figure = figure_metadata(
        storage, "kpnn_metrics", png_bytes(plot_kpnn_metrics(tables["kpnn_metrics"]))
    )
    metadata["kpnn_metrics"].update(metrics_figure)
    metadata["kpnn_summary"].update(
        {
            **metrics_figure,
            "summary": markdown(
                summary[
                    [
                        "network",
                        "n_params",
                        "roc_auc",
                        "f1",
                        "parameter_compression_pct",
                        "roc_auc_change_pct",
                        "pathway_vs_decoy_auc",
                        "pathway_vs_decoy_auc_uncorrected",
                        "control_networks",
                        "control_roc_auc",
                    ]
                ]
            ),
        }
    )
    metadata["kpnn_node_importance"].update(
        {
            **figure_metadata(storage, "kpnn_node_importance", png_bytes(plot_node_importance(imp))),
            "top_nodes_full": markdown(
                top[
                    [
                        "node",
                        "role",
                        "node_weight_corrected",
                        "node_weight_scaled",
                        "control_weight_scaled",
                        "node_weight_abs",
                        "bias",
                    ]
                ]
            ),
            "pathway_vs_decoy_auc": dg.MetadataValue.json(dict(zip(summary["network"], truth))),
            "pathway_vs_decoy_auc_uncorrected": dg.MetadataValue.json(
                dict(zip(summary["network"], [None if np.isnan(v) else float(v) for v in uncorrected]))
            ),
        }
    )
    return metadata


NETWORK_TABLES = [pkn_edges, pruned_dag, kpnn]
NETWORK_ASSETS = [*NETWORK_TABLES]
