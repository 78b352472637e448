"""Node importance of a trained KPNN — the KPNN paper's |mean gradient| node weight, corrected by
control networks — against the simulator's truth: each node's role, the per-fold, mean and
control importance table, the pathway-vs-decoy AUROC, and its figure."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "IMPORTANCE_COLUMNS",
    "node_roles",
    "simulator_roles",
    "min_max",
    "kpnn_weights",
    "control_correction",
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


def min_max(values) -> np.ndarray:
    """(x − min) / (max − min) over the finite values (the KPNN analysis' ``minMax``); all zeros
    when they are all equal; NaN stays NaN."""
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        return x.copy()
    lo, hi = x[finite].min(), x[finite].max()
    return (x - lo) / (hi - lo) if hi > lo else np.where(finite, 0.0, np.nan)


def kpnn_weights(node_weights: pd.DataFrame) -> pd.DataFrame:
    """Add the paper's node weight to per-run rows (one experiment: the CV folds of one network,
    or its control networks): ``node_weight_kpnn`` = |mean ∂ŷ/∂a| and ``node_weight_scaled`` =
    its min–max over every hidden row of the experiment (the output's rows stay NaN)."""
    out = node_weights.copy()
    hidden = ~out["is_output"].astype(bool)
    out["node_weight_kpnn"] = out["node_weight"].abs().where(hidden)
    out["node_weight_scaled"] = np.nan
    out.loc[hidden, "node_weight_scaled"] = min_max(out.loc[hidden, "node_weight_kpnn"])
    return out


def control_correction(real: pd.DataFrame, control: pd.DataFrame) -> pd.DataFrame:
    """Per hidden node: the real runs' and the control runs' mean scaled node weight, their
    difference (the corrected importance) and a Welch statistic.

    ``real``/``control``: rows of :func:`kpnn_weights` (``node``, ``node_weight_scaled``; one row
    per run and node). ``node_weight_corrected`` = mean_real − mean_control;
    ``node_weight_control_z`` = that / √(s²_real/n_real + s²_control/n_control) (ddof 1; NaN with
    fewer than two runs on a side or no spread). A node missing from the controls gets NaN.
    """
    r = real[~real["is_output"].astype(bool)].groupby("node", sort=False)["node_weight_scaled"]
    c = control[~control["is_output"].astype(bool)].groupby("node", sort=False)["node_weight_scaled"]
    out = pd.DataFrame({"node_weight_scaled": r.mean(), "n_real": r.size(), "var_real": r.var(ddof=1)})
    out["control_weight_scaled"] = c.mean().reindex(out.index)
    n_c = c.size().reindex(out.index)
    var_c = c.var(ddof=1).reindex(out.index)
    out["node_weight_corrected"] = out["node_weight_scaled"] - out["control_weight_scaled"]
    se = np.sqrt(out["var_real"] / out["n_real"] + var_c / n_c)
    out["node_weight_control_z"] = (out["node_weight_corrected"] / se).where(se > 0)
    cols = ["node_weight_scaled", "control_weight_scaled", "node_weight_corrected", "node_weight_control_z"]
    return out[cols].rename_axis("node").reset_index()


IMPORTANCE_COLUMNS = [
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
    "node_weight_kpnn",
    "node_weight_scaled",
    "control_weight_scaled",
    "node_weight_corrected",
    "node_weight_control_z",
    "rank",
]


def importance_table(
    node_weights: pd.DataFrame,
    network: str,
    roles: dict[str, str],
    control: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """KPNN node importance of one network: per-fold rows, mean-over-folds rows (``fold = -1``,
    ``scope = "mean"``) and the control networks' rows (``scope = "control"``, ``fold`` = the
    control's number).

    The importance is the KPNN paper's (Fortelny & Bock 2020; ``KPNN_Function.py`` and
    ``Analysis_Scripts/Analysis_SIM.R`` of epigen/KPNN): per run, the *node weight* is the mean
    over held-out cells of ∂ŷ/∂a_v (ŷ the predicted probability, a_v the node's activation; the
    paper takes a central difference with ε = 0.001, here autograd, which agrees to 1e-4), its
    absolute value is taken (|mean|, not mean |·|: ``node_weight_kpnn``) and min–max scaled over
    every run and node of the experiment (``node_weight_scaled``). Uneven connectivity is then
    corrected with control inputs (:mod:`~regnet_assets.science.network.control`, the paper's
    ``--control``): the same network trained on data in which every gene is predictive, its
    weights scaled the same way (``control_weight_scaled``, mean over control networks). The
    importance ``rank`` ranks ``node_weight_corrected`` = scaled − control within each fold row
    set (1 = most important; the output unranked); without control rows it ranks the scaled
    weight and the control columns are NaN.

    Differences from the paper, and why: the comparison statistic is the difference of the mean
    scaled weights (the paper's code ships only the control runs and the per-run weights; how its
    TCR figures compare them is not in the repository), with a Welch statistic beside it; with
    the few control networks run here (3, against the paper's 90) its spread is a rough estimate,
    so the difference is what is ranked. The paper keeps only runs with test error < 0.2 (its
    SIM analysis); every CV fold is kept here, as a filter that drops folds of a weak but real
    signal would leave no importance at all. ``node_weight_abs`` (mean |∂ŷ/∂a|) is the earlier
    uncorrected score, kept for comparison.
    """
    real = kpnn_weights(node_weights)
    per_fold = real.assign(scope="fold")
    grouped = real.groupby("node", sort=False)
    mean = (
        grouped.agg(
            bias=("bias", "mean"),
            node_weight=("node_weight", "mean"),
            node_weight_abs=("node_weight_abs", "mean"),
            node_weight_kpnn=("node_weight_kpnn", "mean"),
            node_weight_scaled=("node_weight_scaled", "mean"),
            is_output=("is_output", "first"),
        )
        .reset_index()
        .assign(fold=-1, scope="mean")
    )
    sd = grouped["node_weight_abs"].std(ddof=0)
    table = pd.concat([per_fold, mean], ignore_index=True)
    table["node_weight_abs_sd"] = table["node"].map(sd).where(table["scope"] == "mean")
    has_control = control is not None and len(control) > 0
    controls = pd.DataFrame()
    if has_control:
        controls = kpnn_weights(control).rename(columns={"control": "fold"}).assign(scope="control")
        corr = control_correction(real, controls).set_index("node")
        table["control_weight_scaled"] = table["node"].map(corr["control_weight_scaled"])
        table["node_weight_corrected"] = table["node_weight_scaled"] - table["control_weight_scaled"]
        table["node_weight_control_z"] = (
            table["node"].map(corr["node_weight_control_z"]).where(table["scope"] == "mean")
        )
        score = "node_weight_corrected"
    else:
        for col in ("control_weight_scaled", "node_weight_corrected", "node_weight_control_z"):
            table[col] = np.nan
        score = "node_weight_scaled"
    hidden = ~table["is_output"].astype(bool)
    table["rank"] = table[hidden].groupby("fold")[score].rank(ascending=False, method="min")
    table = table.sort_values(["fold", "rank"], na_position="last", ignore_index=True)
    if has_control:
        table = pd.concat([table, controls.sort_values(["fold"], kind="stable")], ignore_index=True)
    table.insert(0, "network", network)
    table["role"] = table["node"].map(roles).fillna("").where(~table["is_output"].astype(bool), "root")
    for col in IMPORTANCE_COLUMNS:
        if col not in table.columns:
            table[col] = np.nan
    table["is_output"] = table["is_output"].astype(bool)
    # the node weights are stored as float32, like the sensitivities they come from
    weights = ["node_weight_kpnn", "node_weight_scaled", "control_weight_scaled"]
    weights += ["node_weight_corrected", "node_weight_control_z"]
    table[weights] = table[weights].astype(np.float32)
    return table[IMPORTANCE_COLUMNS].reset_index(drop=True)


def pathway_vs_decoy_auc(importance: pd.DataFrame, column: str = "node_weight_corrected") -> float:
    """AUROC of the mean-row ``column`` (default the control-corrected KPNN importance;
    ``node_weight_scaled`` is the uncorrected |mean gradient|) for the pathway's TF-level kinases
    (positives) against the decoy kinases, which sit at the same depth: 1 = every true kinase
    above every decoy, 0.5 = chance; NaN when either is absent (e.g. a pruned network that kept
    no true kinase) or the column is (no control networks)."""
    mean = importance[(importance["scope"] == "mean") & ~importance["is_output"].astype(bool)]
    pos = mean.loc[mean["role"].isin(PATHWAY_ROLES), column].to_numpy(float)
    neg = mean.loc[mean["role"].isin(DECOY_ROLES), column].to_numpy(float)
    if not len(pos) or not len(neg) or np.isnan(pos).any() or np.isnan(neg).any():
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
    """Top ``top`` hidden nodes per network by the control-corrected KPNN importance (the scaled
    |mean gradient| when there are no control networks), SD over folds as error bars, coloured by
    simulator role."""
    from regnet_assets.science.common.figures import figure

    hidden = importance[~importance["is_output"].astype(bool)]
    mean = hidden[hidden["scope"] == "mean"]
    networks = list(pd.unique(mean["network"]))
    fig, axes = figure(
        ncols=max(len(networks), 1), figsize=(5 * max(len(networks), 1), 0.22 * top + 1.5), squeeze=False
    )
    for ax, net in zip(axes[0], networks):
        rows = mean[mean["network"] == net]
        corrected = rows["node_weight_corrected"].notna().any()
        score = "node_weight_corrected" if corrected else "node_weight_scaled"
        folds = hidden[(hidden["network"] == net) & (hidden["scope"] == "fold")]
        sd = folds.groupby("node")[score].std(ddof=0)
        rows = rows.nlargest(top, score).iloc[::-1]
        colours = [_ROLE_COLOURS.get(r, _ROLE_COLOURS[""]) for r in rows["role"]]
        ax.barh(rows["node"], rows[score], xerr=rows["node"].map(sd), color=colours)
        ax.axvline(0, color="black", linewidth=0.6)
        label = (
            "scaled |mean ∂ŷ/∂a| − control networks' (KPNN, corrected)"
            if corrected
            else "scaled |mean ∂ŷ/∂a| (KPNN node weight, no controls)"
        )
        ax.set(xlabel=label, title=f"{net} network: top {len(rows)}")
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
