"""The KPNN result tables of the full and pruned networks, side by side, and their metrics figure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from regnet_assets.science.network.importance import importance_table, pathway_vs_decoy_auc

__all__ = ["kpnn_tables", "plot_kpnn_metrics"]


def kpnn_tables(
    results: dict,
    roles: dict[str, str],
    about: dict[str, dict],
    controls: dict[str, tuple[pd.DataFrame, dict]] | None = None,
) -> dict[str, pd.DataFrame]:
    """The KPNN result tables from ``{network: KPNNCVResult}`` (``"full"`` first, the reference)
    and, per network, its control networks' ``(node weights, about)`` from
    :func:`~regnet_assets.science.network.control.control_node_weights` (none: uncorrected).

    ``kpnn_metrics``/``kpnn_history``/``kpnn_predictions``: the CV frames with a ``network``
    column; ``kpnn_node_importance``: :func:`importance_table`; ``kpnn_activations``: held-out
    activations in long form (network, cell, fold, node, activation); ``kpnn_summary``: one row
    per network with mean metrics, ``about[network]`` (sizes, seconds, ...), the parameter
    compression and ROC-AUC change relative to the full network (the CORNETO tutorial's numbers),
    :func:`pathway_vs_decoy_auc` of the control-corrected importance and of the uncorrected
    scaled |mean gradient|, and the control networks' count, held-out ROC-AUC and seconds.
    """
    controls = controls or {}
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
        control = controls.get(net, (None, {}))[0]
        parts["kpnn_node_importance"].append(importance_table(res.node_weights, net, roles, control))
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
        control_about = controls.get(net, (None, {}))[1]
        rows.append(
            {
                "network": net,
                "n_params": int(m["n_params"].iloc[0]),
                **{c: float(m[c].mean()) for c in ("accuracy", "precision", "recall", "f1", "roc_auc")},
                "roc_auc_sd": float(m["roc_auc"].std(ddof=0)),
                "mean_best_epoch": float(m["best_epoch"].mean()),
                "pathway_vs_decoy_auc": pathway_vs_decoy_auc(importance[importance["network"] == net]),
                "pathway_vs_decoy_auc_uncorrected": pathway_vs_decoy_auc(
                    importance[importance["network"] == net], "node_weight_scaled"
                ),
                "control_networks": int(control_about.get("control_networks", 0)),
                "control_roc_auc": float(control_about.get("control_roc_auc", np.nan)),
                "control_seconds": float(control_about.get("control_seconds", 0.0)),
                **about.get(net, {}),
            }
        )
    summary = pd.DataFrame(rows)
    ref = summary.iloc[0]
    summary["parameter_compression_pct"] = 100.0 * (1 - summary["n_params"] / ref["n_params"])
    summary["roc_auc_change_pct"] = 100.0 * (summary["roc_auc"] - ref["roc_auc"]) / ref["roc_auc"]
    tables["kpnn_summary"] = summary
    return tables


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
