"""The network stage: a prior-knowledge network read, built and validated, pruned to a provably
minimal DAG by mixed-integer optimisation, and a knowledge-primed neural network (KPNN) on it.
"""

from regnet_assets.science.network.build import (
    finalize_pkn,
    infer_root,
    network_inputs,
    network_root,
    simulator_pkn,
)
from regnet_assets.science.network.cells import condition_labels, kpnn_data, kpnn_expression, subsample_cells
from regnet_assets.science.network.control import control_datasets, control_node_weights
from regnet_assets.science.network.importance import (
    control_correction,
    importance_table,
    node_roles,
    pathway_vs_decoy_auc,
    plot_node_importance,
    simulator_roles,
)
from regnet_assets.science.network.kpnn import KPNN, node_sensitivity
from regnet_assets.science.network.kpnn_training import (
    KPNN_REFERENCE,
    KPNNConfig,
    cross_validate_kpnn,
    cross_validate_network,
    train_kpnn,
)
from regnet_assets.science.network.pkn import EDGE_COLUMNS, PKNError, human_kpnn, read_pkn, validate_pkn
from regnet_assets.science.network.pruning import PruningError, prune_to_minimal_dag
from regnet_assets.science.network.results import kpnn_tables, plot_kpnn_metrics

__all__ = [
    "EDGE_COLUMNS",
    "KPNN",
    "KPNNConfig",
    "KPNN_REFERENCE",
    "PKNError",
    "PruningError",
    "condition_labels",
    "control_correction",
    "control_datasets",
    "control_node_weights",
    "cross_validate_kpnn",
    "cross_validate_network",
    "finalize_pkn",
    "human_kpnn",
    "importance_table",
    "infer_root",
    "kpnn_data",
    "kpnn_expression",
    "kpnn_tables",
    "network_inputs",
    "network_root",
    "node_roles",
    "node_sensitivity",
    "pathway_vs_decoy_auc",
    "plot_kpnn_metrics",
    "plot_node_importance",
    "prune_to_minimal_dag",
    "read_pkn",
    "simulator_pkn",
    "simulator_roles",
    "subsample_cells",
    "train_kpnn",
    "validate_pkn",
]
