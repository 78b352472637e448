"""The attribution stage: Integrated Gradients of each gene model's TF inputs, reduced to TF →
gene rankings, the regulatory network, and its recovery of a known truth.
"""

from regnet_assets.science.attribution.captum_reference import reference_ig
from regnet_assets.science.attribution.grn import (
    cell_type_edge_scores,
    regulatory_network,
    tf_to_gene,
)
from regnet_assets.science.attribution.ig import (
    attribution_table,
    integrated_gradients,
)
from regnet_assets.science.attribution.recovery import grn_recovery, plot_pr_curves

__all__ = [
    "attribution_table",
    "cell_type_edge_scores",
    "grn_recovery",
    "integrated_gradients",
    "plot_pr_curves",
    "reference_ig",
    "regulatory_network",
    "tf_to_gene",
]
