"""Result storage: Parquet files are the source of truth, DuckDB is the query layer (DESIGN §3).

Plain Python with no Dagster import, so notebooks and BI tools can read results the same way.
"""

from regnet_assets.storage.catalog import query, refresh_catalog, table_names
from regnet_assets.storage.parquet import (
    read_table,
    storage_root,
    validate_key,
    validate_table_name,
    write_table,
)

__all__ = [
    "query",
    "read_table",
    "refresh_catalog",
    "storage_root",
    "table_names",
    "validate_key",
    "validate_table_name",
    "write_table",
]
