"""Node importance of a trained KPNN against the simulator's truth: each node's role, the
per-fold and mean importance table, the pathway-vs-decoy AUROC, and its figure.

Importance follows the KPNN paper (Fortelny & Bock 2020): a node's weight is the mean over test
cells of ∂ŷ/∂activation, ranked by its magnitude |mean gradient| (a node that pushes ŷ one way
in every cell), not by mean |gradient| (which any node with a steep but inconsistent effect
collects). Weights are min–max scaled over the hidden nodes of each fold, and the same measure
on the control inputs (:func:`.kpnn_training.control_inputs`, every gene equally predictive) is
subtracted: what remains is what the data, not the node's connectivity, gives it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

__all__ = [
    "corrected_importance",
    "node_roles",
    "simulator_roles",
    "importance_table",
    "pathway_vs_decoy_auc",
    "plot_node_importance",
]

PATHWAY_ROLES = ("pathway_kinase",)
DECOY_ROLES = ("decoy_kinase",)


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


def _minmax(v: np.ndarray) -> np.ndarray:
    span = np.ptp(v) if len(v) else 0.0
    return (v - v.min()) / span if span > 0 else np.zeros_like(v)


def corrected_importance(node_weight, control_weight) -> np.ndarray:
    """min–max scaled |node_weight| minus min–max scaled |control_weight| (one fold's hidden
    nodes; both mean ∂ŷ/∂a over test cells): −1..1, above 0 when the data make a node more
    important than its connectivity alone does."""
    real = np.abs(np.asarray(node_weight, np.float64))
    control = np.abs(np.asarray(control_weight, np.float64))
    if real.shape != control.shape:
        raise ValueError(f"node_weight has shape {real.shape} but control_weight {control.shape}")
    return _minmax(real) - _minmax(control)


def importance_table(node_weights: pd.DataFrame, network: str, roles: dict[str, str]) -> pd.DataFrame:
    """Per-fold rows plus mean-over-folds rows (``fold = -1``, ``scope = "mean"``) with
    :func:`corrected_importance` per fold, ranked within each (network, fold) by it (1 = most
    important; the output unranked)."""
    per_fold = node_weights.reset_index(drop=True).assign(scope="fold", importance=np.nan)
    hidden_rows = ~per_fold["is_output"].astype(bool)
    for _, rows in per_fold[hidden_rows].groupby("fold").groups.items():
        per_fold.loc[rows, "importance"] = corrected_importance(
            per_fold.loc[rows, "node_weight"], per_fold.loc[rows, "control_weight"]
        )
    mean = (
        per_fold.groupby("node", sort=False)
        .agg(
            bias=("bias", "mean"),
            node_weight=("node_weight", "mean"),
            node_weight_abs=("node_weight_abs", "mean"),
            control_weight=("control_weight", "mean"),
            importance=("importance", "mean"),
            is_output=("is_output", "first"),
        )
        .reset_index()
        .assign(fold=-1, scope="mean")
    )
    sd = per_fold.groupby("node", sort=False)["importance"].std(ddof=0)
    table = pd.concat([per_fold, mean], ignore_index=True)
    table["importance_sd"] = table["node"].map(sd).where(table["scope"] == "mean")
    table.insert(0, "network", network)
    table["role"] = table["node"].map(roles).fillna("").where(~table["is_output"].astype(bool), "root")
    hidden = ~table["is_output"].astype(bool)
    table["rank"] = table[hidden].groupby("fold")["importance"].rank(ascending=False, method="min")
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
        "control_weight",
        "importance",
        "importance_sd",
        "rank",
    ]
    return table[cols].sort_values(["fold", "rank"], na_position="last", ignore_index=True)


def pathway_vs_decoy_auc(importance: pd.DataFrame) -> float:
    """AUROC (sklearn) of the mean corrected importance for the pathway's TF-level kinases
    (positives) against the decoy kinases, which sit at the same depth: 1 = every true kinase
    above every decoy, 0.5 = chance; NaN when either is absent (e.g. a pruned network that kept
    no true kinase)."""
    mean = importance[(importance["scope"] == "mean") & ~importance["is_output"].astype(bool)]
    pos = mean.loc[mean["role"].isin(PATHWAY_ROLES), "importance"].to_numpy(float)
    neg = mean.loc[mean["role"].isin(DECOY_ROLES), "importance"].to_numpy(float)
    if not len(pos) or not len(neg):
        return float("nan")
    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))


def simulator_roles(mdata) -> dict[str, str]:
    """:func:`node_roles` from the truth a simulated dataset carries in ``uns`` (empty otherwise)."""
    return node_roles(
        pd.DataFrame(mdata.uns["truth_gene_roles"]) if "truth_gene_roles" in mdata.uns else None,
        pd.DataFrame(mdata.uns["truth_signalling"]) if "truth_signalling" in mdata.uns else None,
    )


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
    """Top ``top`` hidden nodes by mean corrected importance per network, coloured by simulator role."""
    from regnet_assets.science.common.figures import figure

    mean = importance[(importance["scope"] == "mean") & ~importance["is_output"].astype(bool)]
    networks = list(pd.unique(mean["network"]))
    fig, axes = figure(
        ncols=max(len(networks), 1), figsize=(5 * max(len(networks), 1), 0.22 * top + 1.5), squeeze=False
    )
    for ax, net in zip(axes[0], networks):
        rows = mean[mean["network"] == net].nlargest(top, "importance").iloc[::-1]
        colours = [_ROLE_COLOURS.get(r, _ROLE_COLOURS[""]) for r in rows["role"]]
        ax.barh(rows["node"], rows["importance"], xerr=rows["importance_sd"], color=colours)
        ax.set(
            xlabel="importance: scaled |mean ∂ŷ/∂a| − the same on control inputs",
            title=f"{net} network: top {len(rows)}",
        )
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
