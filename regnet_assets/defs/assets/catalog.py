"""The ``catalog`` group: the DuckDB catalog file, refreshed once after the tables."""

import dagster as dg

from regnet_assets.defs.metadata import file_metadata
from regnet_assets.defs.resources import StorageResource
from regnet_assets.storage import refresh_catalog


def catalog_asset(tables: list[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    """A non-partitioned step after every table, so partition writes never touch DuckDB."""

    @dg.asset(
        group_name="catalog",
        deps=tables,
        pool="duckdb",
        kinds={"duckdb"},
        io_manager_key="object_io_manager",
    )
    def duckdb_catalog(context: dg.AssetExecutionContext, storage: StorageResource) -> list[str]:
        """``regnet.duckdb``: one read-only view per Parquet table, for SQL and BI tools."""
        names = refresh_catalog(storage.path)
        context.add_output_metadata(
            {
                **file_metadata(storage.path, storage.path / "regnet.duckdb"),
                "tables": dg.MetadataValue.json(names),
            }
        )
        return names

    return duckdb_catalog
