"""The network stage: a prior-knowledge network read and validated, pruned to a provably
minimal DAG by mixed-integer optimisation, and a knowledge-primed neural network (KPNN) on it.
"""

from regnet_assets.science.network.kpnn import KPNNConfig, cross_validate_kpnn
from regnet_assets.science.network.pkn import EDGE_COLUMNS, PKNError, human_kpnn, read_pkn, validate_pkn
from regnet_assets.science.network.pruning import PruningError, prune_to_minimal_dag

__all__ = [
    "EDGE_COLUMNS",
    "KPNNConfig",
    "PKNError",
    "PruningError",
    "cross_validate_kpnn",
    "human_kpnn",
    "prune_to_minimal_dag",
    "read_pkn",
    "validate_pkn",
]
