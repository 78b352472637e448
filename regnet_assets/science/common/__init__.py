"""What every stage shares: the normalisation, correlations, obs lookup, figures, DuckDB helpers.

Nothing here imports another stage.
"""

from regnet_assets.science.common.correlation import pearson, spearman
from regnet_assets.science.common.figures import figure, png_bytes
from regnet_assets.science.common.normalise import expression_frame, log_cp10k, row_totals
from regnet_assets.science.common.obs import obs_column
from regnet_assets.science.common.tables import LongTable, connect, require_columns

__all__ = [
    "LongTable",
    "connect",
    "expression_frame",
    "figure",
    "log_cp10k",
    "obs_column",
    "pearson",
    "png_bytes",
    "require_columns",
    "row_totals",
    "spearman",
]
