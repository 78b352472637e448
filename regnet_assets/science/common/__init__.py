"""What every stage shares: figures, DuckDB helpers over long Parquet tables.

Nothing here imports another stage.
"""

from regnet_assets.science.common.figures import figure, png_bytes
from regnet_assets.science.common.tables import LongTable, connect, require_columns

__all__ = ["LongTable", "connect", "figure", "png_bytes", "require_columns"]
