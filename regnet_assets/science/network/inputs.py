"""Glue between a dataset and the KPNN: which prior-knowledge network, which cells, which labels.

* :func:`simulator_pkn` builds the default network of a simulated dataset the way the KPNN paper
  builds its TCR network (receptor -> signalling -> TFs -> target genes), with the simulator's
  decoy kinases wired in as controls; :func:`finalize_pkn` validates any network (file, human,
  simulator) against the measured genes and returns the DAG a KPNN trains on.
* :func:`kpnn_expression` and :func:`condition_labels` give the KPNN its input matrix and labels.
* :func:`node_roles`, :func:`importance_table` and :func:`pathway_vs_decoy_auc` score node
  importance against the simulator's truth; :func:`plot_node_importance` and
  :func:`plot_kpnn_metrics` draw the two figures.

Edges are ``source, target, sign`` in computation direction (see :mod:`pkn`); inputs are the
``<SYMBOL>_gene`` nodes. Errors are :class:`~regnet_assets.science.network.pkn.PKNError` naming the part.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from regnet_assets.science.common.normalise import log_cp10k, row_totals
from regnet_assets.science.network.pkn import (
    EDGE_COLUMNS,
    GENE_SUFFIX,
    PKNError,
    _shortest_path_dag,  # the same acyclicity rule kpnn_from_layers uses
    is_acyclic,
    kpnn_from_layers,
    reachability_prune,
    validate_pkn,
)

__all__ = [
    "network_root",
    "network_inputs",
    "infer_root",
    "simulator_pkn",
    "finalize_pkn",
    "condition_labels",
    "subsample_cells",
    "kpnn_expression",
    "node_roles",
    "importance_table",
    "pathway_vs_decoy_auc",
    "kpnn_tables",
    "plot_node_importance",
    "plot_kpnn_metrics",
]

PATHWAY_ROLES = ("pathway_kinase",)
DECOY_ROLES = ("decoy_kinase",)


# ----------------------------------------------------------------------------------------------
# network shape


def network_inputs(edges: pd.DataFrame) -> list[str]:
    """Nodes without in-edges, in order of first appearance (the KPNN's data inputs)."""
    targets = set(edges["target"])
    return [n for n in pd.unique(edges["source"]) if n not in targets]


def network_root(edges: pd.DataFrame) -> str:
    """The single node without out-edges (a finalised KPNN network has exactly one)."""
    sinks = sorted(set(edges["target"]) - set(edges["source"]))
    if len(sinks) != 1:
        raise PKNError("root", f"expected one node without outgoing edges, found {len(sinks)}: {sinks[:10]}")
    return sinks[0]


def infer_root(edges: pd.DataFrame) -> str:
    """The root of a user's network when none is configured: its only non-gene sink."""
    sinks = sorted(n for n in set(edges["target"]) - set(edges["source"]) if not str(n).endswith(GENE_SUFFIX))
    if len(sinks) != 1:
        raise PKNError(
            "root",
            f"no root configured and the network has {len(sinks)} nodes without outgoing edges "
            f"(e.g. {sinks[:10]}); set the root (the output node) in the config",
        )
    return sinks[0]


# ----------------------------------------------------------------------------------------------
# building


def _signed(values) -> np.ndarray:
    s = np.sign(pd.to_numeric(pd.Series(values), errors="coerce").fillna(1.0).to_numpy())
    return np.where(s == 0, 1, s).astype(np.int8)


def _truth_root(truth_signalling: pd.DataFrame) -> str:
    roots = sorted(set(truth_signalling["source"]) - set(truth_signalling["target"]))
    if len(roots) != 1:
        raise PKNError(
            "truth_signalling", f"expected one receptor (a source that is never a target), found {roots}"
        )
    return roots[0]


def simulator_pkn(
    truth_signalling: pd.DataFrame,
    tf_gene_edges: pd.DataFrame,
    gene_roles: pd.DataFrame | None = None,
    reference_signalling: pd.DataFrame | None = None,
    root: str | None = None,
    decoys: bool = True,
    tf_edge_origin: str = "gene_tf_candidates",
) -> tuple[pd.DataFrame, dict]:
    """The default KPNN network of a simulated dataset, with an ``origin`` column per edge.

    Layers, as in the KPNN paper: the receptor (``root``, default the hierarchy's top) -> the
    true signalling hierarchy (``truth_signalling``, biological direction) -> TFs -> their target
    genes (``tf_gene_edges``: ``tf, gene[, sign]``). With ``decoys=True`` every decoy kinase of
    ``gene_roles`` is attached as a sibling of the hierarchy's TF-level kinases (a *false* prior
    edge from their parent, so decoys sit at the same depth as the true kinases) and wired to the
    TFs the shipped signalling PKN (``reference_signalling``: ``source, interaction, target``)
    gives it outside the pathway. A decoy with no such TF drops out. The decoys are controls: a
    KPNN that learned the biology ranks them below the true kinases.
    """
    truth = truth_signalling[["source", "target", "sign"]].copy()
    if truth.empty:
        raise PKNError("truth_signalling", "is empty: this dataset has no simulated signalling hierarchy")
    root = root or _truth_root(truth_signalling)
    pathway_tfs = set(
        truth_signalling.loc[truth_signalling["level"].astype(str).str.endswith("->tf"), "target"]
    )
    reg = pd.DataFrame(
        {
            "tf": tf_gene_edges["tf"].astype(str),
            "gene": tf_gene_edges["gene"].astype(str),
            "sign": _signed(tf_gene_edges["sign"]) if "sign" in tf_gene_edges.columns else np.int8(1),
        }
    )
    layers = [truth.assign(origin="truth_signalling")]
    report = {"root": root, "decoys_attached": [], "decoy_parents": []}
    if decoys and gene_roles is not None and reference_signalling is not None:
        decoy_nodes = [g for g in gene_roles.loc[gene_roles["role"] == "decoy_kinase", "gene"]]
        tfs = set(reg["tf"]) - pathway_tfs
        ref = reference_signalling.drop_duplicates(["source", "target"])
        dec = ref[ref["source"].isin(decoy_nodes) & ref["target"].isin(tfs)]
        dec = pd.DataFrame(
            {"source": dec["source"], "target": dec["target"], "sign": _signed(dec["interaction"])}
        )
        tf_kinases = set(truth_signalling.loc[truth_signalling["target"].isin(pathway_tfs), "source"])
        parents = sorted(set(truth.loc[truth["target"].isin(tf_kinases), "source"])) or [root]
        used = sorted(set(dec["source"]))
        attach = pd.DataFrame([(p, d, 1) for p in parents for d in used], columns=EDGE_COLUMNS)
        layers += [attach.assign(origin="decoy_control"), dec.assign(origin="signalling_pkn")]
        report.update(decoys_attached=used, decoy_parents=parents)
    sig = pd.concat(layers, ignore_index=True)
    edges = kpnn_from_layers(root, sig[EDGE_COLUMNS], reg.rename(columns={"gene": "target"}))
    origin = pd.concat(
        [
            pd.DataFrame({"source": sig["target"], "target": sig["source"], "origin": sig["origin"]}),
            pd.DataFrame(
                {"source": reg["gene"] + GENE_SUFFIX, "target": reg["tf"], "origin": tf_edge_origin}
            ),
        ]
    ).drop_duplicates(["source", "target"])
    edges = edges.merge(origin, on=["source", "target"], how="left")
    report["decoys_in_network"] = sorted(set(report["decoys_attached"]) & set(edges["target"]))
    return edges, report


def finalize_pkn(
    edges: pd.DataFrame,
    root: str,
    measured_genes: Iterable[str],
    missing_inputs: str = "drop",
) -> tuple[pd.DataFrame, dict]:
    """Validate a network against its root and the measured genes; return the DAG and a report.

    Errors (PKNError): everything :func:`pkn.validate_pkn` checks (self-loops, an edge with both
    signs, unknown root, no input reaching the root), no ``<SYMBOL>_gene`` input at all, input
    genes with incoming edges, input genes not measured in the RNA (all of them; or any of them
    with ``missing_inputs="fail"``), no *measured* input reaching the root. Exact duplicate edges
    are dropped and counted. Then reachability pruning (nodes on a measured-input -> root path);
    a cyclic network is made acyclic with the shortest-path rule of :func:`pkn.kpnn_from_layers`
    (edges that do not approach the root are dropped and counted). Extra columns (``origin``)
    are carried along.
    """
    if missing_inputs not in ("drop", "fail"):
        raise PKNError("missing_inputs", f"must be 'drop' or 'fail', got {missing_inputs!r}")
    if not {"source", "target"} <= set(edges.columns):
        raise PKNError("columns", f"need source and target; have {list(edges.columns)}")
    names = pd.unique(np.concatenate([edges["source"].astype(str), edges["target"].astype(str)]))
    inputs = [n for n in names if n.endswith(GENE_SUFFIX)]
    if not inputs:
        raise PKNError(
            "inputs", f"no input node: name the measured genes '<SYMBOL>{GENE_SUFFIX}' in the network"
        )
    fed = sorted(set(inputs) & set(edges["target"].astype(str)))
    if fed:
        raise PKNError(
            "inputs",
            f"{len(fed)} input gene node(s) have incoming edges, e.g. {fed[:10]}; "
            f"'{GENE_SUFFIX}' nodes are data inputs and must only feed other nodes",
        )
    clean, check = validate_pkn(edges, root, inputs, allow_missing_inputs=True)
    measured = set(measured_genes)
    absent = [i for i in inputs if i[: -len(GENE_SUFFIX)] not in measured]
    if len(absent) == len(inputs) or (absent and missing_inputs == "fail"):
        raise PKNError(
            "inputs",
            f"{len(absent)} of {len(inputs)} input gene(s) are not measured in mod['rna'].var_names, "
            f"e.g. {[a[: -len(GENE_SUFFIX)] for a in absent[:10]]}",
        )
    present = [i for i in inputs if i not in set(absent)]
    pruned = reachability_prune(clean, present, root)
    if pruned.empty:
        raise PKNError(
            "inputs", f"none of the {len(present)} measured input gene(s) reaches the root {root!r}"
        )
    acyclic = is_acyclic(pruned)
    n_cyclic = 0
    if not acyclic:
        dag = reachability_prune(_shortest_path_dag(pruned, root), present, root)
        n_cyclic = len(pruned) - len(dag)
        pruned = dag
    extra = [c for c in edges.columns if c not in EDGE_COLUMNS]
    if extra:
        carried = edges.astype({"source": str, "target": str}).drop_duplicates(["source", "target"])
        pruned = pruned.merge(carried[["source", "target", *extra]], on=["source", "target"], how="left")
    used = set(pruned["source"])
    report = {
        "root": root,
        "edges_given": int(len(edges)),
        "duplicates_dropped": int(check["duplicates_dropped"]),
        "input_genes": len(inputs),
        "input_genes_not_measured": len(absent),
        "input_genes_not_measured_examples": [a[: -len(GENE_SUFFIX)] for a in absent[:20]],
        "input_genes_not_reaching_root": sum(1 for i in present if i not in used),
        "input_genes_used": sum(1 for i in present if i in used),
        "input_acyclic": acyclic,
        "cycle_edges_dropped": int(n_cyclic),
        "edges": int(len(pruned)),
        "nodes": int(len(set(pruned["source"]) | set(pruned["target"]))),
    }
    report["hidden_nodes"] = report["nodes"] - report["input_genes_used"] - 1
    return pruned.reset_index(drop=True), report


# ----------------------------------------------------------------------------------------------
# cells, labels, expression


def condition_labels(obs_values: pd.Series | None, column: str, positive: str = "") -> tuple[pd.Series, dict]:
    """Binary 0/1 labels from an obs column; cells without a label are dropped and counted.

    ``positive`` names the class coded 1; empty = the last category of a categorical column
    (the simulator's ``stimulated``), else the last in sorted order.
    """
    if obs_values is None:
        raise ValueError(
            f"labels: obs has no column {column!r}; the KPNN needs a binary class label per cell"
        )
    values = obs_values.dropna()
    if isinstance(values.dtype, pd.CategoricalDtype):
        classes = [c for c in values.cat.categories if (values == c).any()]
    else:
        classes = sorted(values.astype(str).unique())
        values = values.astype(str)
    classes = [str(c) for c in classes]
    if len(classes) != 2:
        raise ValueError(
            f"labels: obs[{column!r}] must have exactly 2 classes, found {len(classes)}: {classes[:10]}"
        )
    positive = positive or classes[-1]
    if positive not in classes:
        raise ValueError(
            f"labels: positive class {positive!r} is not one of obs[{column!r}]'s classes {classes}"
        )
    negative = next(c for c in classes if c != positive)
    y = (values.astype(str) == positive).astype(np.int64)
    return y, {
        "positive": positive,
        "negative": negative,
        "unlabelled_cells": int(len(obs_values) - len(values)),
        "n_positive": int(y.sum()),
        "n_negative": int((1 - y).sum()),
    }


def subsample_cells(y: pd.Series, max_cells: int, seed: int) -> pd.Series:
    """A stratified, seeded subsample of at most ``max_cells`` cells (all cells when 0 or more)."""
    if not max_cells or max_cells >= len(y):
        return y
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(
        np.arange(len(y)), train_size=int(max_cells), stratify=y.to_numpy(), random_state=seed
    )
    return y.iloc[np.sort(keep)]


def kpnn_expression(rna, inputs: Sequence[str], cells: Sequence[str] | None = None) -> pd.DataFrame:
    """Cells × inputs of log1p(counts / total counts × 1e4) (scanpy normalize_total + log1p).

    Totals are over every measured gene; ``inputs`` are ``<SYMBOL>_gene`` names (the columns).
    """
    X = rna.X
    rows = slice(None) if cells is None else rna.obs_names.get_indexer(list(cells))
    symbols = [i[: -len(GENE_SUFFIX)] if i.endswith(GENE_SUFFIX) else i for i in inputs]
    cols = rna.var_names.get_indexer(symbols)
    if (cols < 0).any():
        missing = [s for s, c in zip(symbols, cols) if c < 0]
        raise ValueError(f"inputs: {len(missing)} input gene(s) are not measured, e.g. {missing[:10]}")
    X = X[rows]
    values = log_cp10k(X[:, cols], row_totals(X), np.float32)
    index = rna.obs_names if cells is None else pd.Index(list(cells))
    return pd.DataFrame(values, index=index, columns=list(inputs))


# ----------------------------------------------------------------------------------------------
# node importance vs truth


def node_roles(gene_roles: pd.DataFrame | None, truth_signalling: pd.DataFrame | None) -> dict[str, str]:
    """Simulator role of each signalling/TF node (empty dict without truth).

    ``pathway_kinase``: the hierarchy's kinases that act on TFs (the decoys' siblings, so the
    like-for-like comparison); ``pathway_upstream``: the receptor and kinases above them;
    ``pathway_tf``; ``decoy_kinase``; ``tf_regulator`` (true regulator of target genes, not driven
    by the condition); ``tf_decoy`` (TF with no true target).
    """
    roles: dict[str, str] = {}
    if gene_roles is not None and len(gene_roles):
        for gene, role in zip(gene_roles["gene"], gene_roles["role"]):
            if role in ("decoy_kinase", "tf_regulator", "tf_decoy"):
                roles[gene] = role
    if truth_signalling is not None and len(truth_signalling):
        to_tf = truth_signalling["level"].astype(str).str.endswith("->tf")
        tfs = set(truth_signalling.loc[to_tf, "target"])
        tf_kinases = set(truth_signalling.loc[to_tf, "source"])
        for node in set(truth_signalling["source"]) | set(truth_signalling["target"]):
            roles[node] = (
                "pathway_tf"
                if node in tfs
                else "pathway_kinase"
                if node in tf_kinases
                else "pathway_upstream"
            )
    return roles


def importance_table(node_weights: pd.DataFrame, network: str, roles: dict[str, str]) -> pd.DataFrame:
    """Per-fold rows plus mean-over-folds rows (``fold = -1``, ``scope = "mean"``), ranked
    within each (network, fold) by mean |node weight| (1 = most important; the output unranked)."""
    per_fold = node_weights.assign(scope="fold")
    mean = (
        node_weights.groupby("node", sort=False)
        .agg(
            bias=("bias", "mean"),
            node_weight=("node_weight", "mean"),
            node_weight_abs=("node_weight_abs", "mean"),
            is_output=("is_output", "first"),
        )
        .reset_index()
        .assign(fold=-1, scope="mean")
    )
    sd = node_weights.groupby("node", sort=False)["node_weight_abs"].std(ddof=0)
    table = pd.concat([per_fold, mean], ignore_index=True)
    table["node_weight_abs_sd"] = table["node"].map(sd).where(table["scope"] == "mean")
    table.insert(0, "network", network)
    table["role"] = table["node"].map(roles).fillna("").where(~table["is_output"].astype(bool), "root")
    hidden = ~table["is_output"].astype(bool)
    table["rank"] = table[hidden].groupby("fold")["node_weight_abs"].rank(ascending=False, method="min")
    cols = [
        "network",
        "fold",
        "scope",
        "node",
        "role",
        "is_output",
        "bias",
        "node_weight",
        "node_weight_abs",
        "node_weight_abs_sd",
        "rank",
    ]
    return table[cols].sort_values(["fold", "rank"], na_position="last", ignore_index=True)


def pathway_vs_decoy_auc(importance: pd.DataFrame) -> float:
    """AUROC of mean |node weight| for the pathway's TF-level kinases (positives) against the decoy
    kinases, which sit at the same depth: 1 = every true kinase above every decoy, 0.5 = chance;
    NaN when either is absent (e.g. a pruned network that kept no true kinase)."""
    mean = importance[(importance["scope"] == "mean") & ~importance["is_output"].astype(bool)]
    pos = mean.loc[mean["role"].isin(PATHWAY_ROLES), "node_weight_abs"].to_numpy(float)
    neg = mean.loc[mean["role"].isin(DECOY_ROLES), "node_weight_abs"].to_numpy(float)
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def kpnn_tables(results: dict, roles: dict[str, str], about: dict[str, dict]) -> dict[str, pd.DataFrame]:
    """The KPNN result tables from ``{network: KPNNCVResult}`` (``"full"`` first, the reference).

    ``kpnn_metrics``/``kpnn_history``/``kpnn_predictions``: the CV frames with a ``network``
    column; ``kpnn_node_importance``: :func:`importance_table`; ``kpnn_activations``: held-out
    activations in long form (network, cell, fold, node, activation); ``kpnn_summary``: one row
    per network with mean metrics, ``about[network]`` (sizes, seconds, ...), the parameter
    compression and ROC-AUC change relative to the full network (the CORNETO tutorial's numbers)
    and :func:`pathway_vs_decoy_auc`.
    """
    parts: dict[str, list] = {
        k: []
        for k in (
            "kpnn_metrics",
            "kpnn_history",
            "kpnn_node_importance",
            "kpnn_activations",
            "kpnn_predictions",
        )
    }
    for net, res in results.items():
        parts["kpnn_metrics"].append(res.metrics.assign(network=net))
        parts["kpnn_history"].append(res.history.assign(network=net))
        parts["kpnn_node_importance"].append(importance_table(res.node_weights, net, roles))
        act = res.activations.rename_axis("cell").reset_index()
        parts["kpnn_activations"].append(
            act.melt(id_vars=["cell", "fold"], var_name="node", value_name="activation").assign(network=net)
        )
        parts["kpnn_predictions"].append(res.predictions.assign(network=net))
    tables = {}
    for name, frames in parts.items():
        frame = pd.concat(frames, ignore_index=True)
        tables[name] = frame[["network", *[c for c in frame.columns if c != "network"]]]
    metrics, importance = tables["kpnn_metrics"], tables["kpnn_node_importance"]
    rows = []
    for net, m in metrics.groupby("network", sort=False):
        rows.append(
            {
                "network": net,
                "n_params": int(m["n_params"].iloc[0]),
                **{c: float(m[c].mean()) for c in ("accuracy", "precision", "recall", "f1", "roc_auc")},
                "roc_auc_sd": float(m["roc_auc"].std(ddof=0)),
                "mean_best_epoch": float(m["best_epoch"].mean()),
                "pathway_vs_decoy_auc": pathway_vs_decoy_auc(importance[importance["network"] == net]),
                **about.get(net, {}),
            }
        )
    summary = pd.DataFrame(rows)
    ref = summary.iloc[0]
    summary["parameter_compression_pct"] = 100.0 * (1 - summary["n_params"] / ref["n_params"])
    summary["roc_auc_change_pct"] = 100.0 * (summary["roc_auc"] - ref["roc_auc"]) / ref["roc_auc"]
    tables["kpnn_summary"] = summary
    return tables


# ----------------------------------------------------------------------------------------------
# figures

_ROLE_COLOURS = {
    "pathway_upstream": "#8c0000",
    "pathway_kinase": "#d62728",
    "pathway_tf": "#ff7f0e",
    "decoy_kinase": "#7f7f7f",
    "tf_regulator": "#1f77b4",
    "tf_decoy": "#aec7e8",
    "": "#9467bd",
}


def plot_node_importance(importance: pd.DataFrame, top: int = 30):
    """Top ``top`` hidden nodes by mean |node weight| per network, coloured by simulator role."""
    from regnet_assets.science.common.figures import figure

    mean = importance[(importance["scope"] == "mean") & ~importance["is_output"].astype(bool)]
    networks = list(pd.unique(mean["network"]))
    fig, axes = figure(
        ncols=max(len(networks), 1), figsize=(5 * max(len(networks), 1), 0.22 * top + 1.5), squeeze=False
    )
    for ax, net in zip(axes[0], networks):
        rows = mean[mean["network"] == net].nlargest(top, "node_weight_abs").iloc[::-1]
        colours = [_ROLE_COLOURS.get(r, _ROLE_COLOURS[""]) for r in rows["role"]]
        ax.barh(rows["node"], rows["node_weight_abs"], xerr=rows["node_weight_abs_sd"], color=colours)
        ax.set(xlabel="mean |node weight| (∂ŷ/∂a, test cells)", title=f"{net} network: top {len(rows)}")
        ax.tick_params(axis="y", labelsize=7)
    present = [r for r in _ROLE_COLOURS if r and r in set(mean["role"])]
    if present:
        from matplotlib.patches import Patch

        fig.legend(
            handles=[Patch(color=_ROLE_COLOURS[r], label=r) for r in present],
            loc="lower center",
            ncol=len(present),
            fontsize=7,
            frameon=False,
        )
    fig.tight_layout(rect=(0, 0.04 if present else 0, 1, 1))
    return fig


def plot_kpnn_metrics(metrics: pd.DataFrame):
    """Full vs pruned KPNN: mean of each held-out metric with the folds as points."""
    from regnet_assets.science.common.figures import figure

    names = ["accuracy", "precision", "recall", "f1", "roc_auc"]
    networks = list(pd.unique(metrics["network"]))
    fig, ax = figure(figsize=(6.5, 3.8))
    width = 0.8 / max(len(networks), 1)
    for k, net in enumerate(networks):
        rows = metrics[metrics["network"] == net]
        x = np.arange(len(names)) + (k - (len(networks) - 1) / 2) * width
        ax.bar(
            x,
            [rows[n].mean() for n in names],
            width=width,
            label=f"{net} ({int(rows['n_params'].iloc[0])} params)",
            alpha=0.8,
        )
        for j, n in enumerate(names):
            ax.scatter(np.full(len(rows), x[j]), rows[n], s=8, color="black", zorder=3)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set(ylim=(0, 1.02), ylabel="held-out folds", title="KPNN: full vs pruned network")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
