"""Node importance of a trained KPNN against the simulator's truth: each node's role, the
per-fold and mean importance table, the pathway-vs-decoy AUROC, and its figure."""

from __future__ import annotations

import pandas as pd

__all__ = [
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
