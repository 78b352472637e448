"""IO managers: tables to atomic Parquet (one file per gene partition), objects to pickles.

Reading all partitions of a table is one DuckDB scan over the files, not one read per file,
so a fan-in over thousands of genes stays fast (reference/dagster.md §2–3). An input annotated
``ParquetFiles`` gets the files instead, for a reduction that streams them (science/tables.py).
"""

import pickle

import dagster as dg
import pandas as pd

from regnet_assets.atomic import write_atomic
from regnet_assets.defs.metadata import file_metadata
from regnet_assets.defs.resources import StorageResource
from regnet_assets.storage import read_table, write_table
from regnet_assets.storage.parquet import (
    PARTITION_COLUMN,
    ParquetFiles,
    partition_path,
    table_files,
    validate_key,
)


def _table(context) -> str:
    return context.asset_key.path[-1]


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores DataFrames as Parquet tables under the storage folder."""

    storage: dg.ResourceDependency[StorageResource]

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | dict) -> None:
        """Write the table, or one file per gene partition; each partition's materialization
        gets its own row count and file (relative to the storage root), not the batch's."""
        root, table = self.storage.path, _table(context)
        if not context.has_asset_partitions:
            path = write_table(root, table, obj)
            context.add_output_metadata({"dagster/row_count": len(obj), **file_metadata(root, path)})
            return
        for key, frame in _split_by_partition(obj, context.asset_partition_keys).items():
            path = write_table(root, table, frame, key)
            context.step_context.add_asset_metadata(
                {"dagster/row_count": len(frame), **file_metadata(root, path)},
                asset_key=context.asset_key,
                partition_key=key,
            )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | ParquetFiles:
        """The upstream partitions this step depends on, or the whole table, in one scan (or
        their files, for a ``ParquetFiles`` input).

        Partitions that were never written (a failed gene) are left out with a warning rather
        than failing every downstream summary.
        """
        root, table = self.storage.path, _table(context)
        files_only = context.dagster_type.typing_type is ParquetFiles
        keys = None
        if context.has_asset_partitions:
            wanted = list(context.asset_partition_keys)
            keys = [k for k in wanted if partition_path(root, table, k).exists()]
            if len(keys) < len(wanted):
                context.log.warning(f"{table}: {len(wanted) - len(keys)} of {len(wanted)} partitions missing")
            if not keys:
                raise FileNotFoundError(f"table {table!r} has none of the {len(wanted)} requested partitions")
        return table_files(root, table, keys) if files_only else read_table(root, table, keys)


def _split_by_partition(obj, keys: list[str]) -> dict[str, pd.DataFrame]:
    """Accept ``{gene: frame}`` or one frame with a ``gene`` column; every key gets a file."""
    if isinstance(obj, dict):
        unknown = set(obj) - set(keys)
        if unknown:
            raise ValueError(f"output names partitions outside this run: {sorted(unknown)[:5]}")
        return {k: obj[k] for k in keys if k in obj}
    if len(keys) == 1 and PARTITION_COLUMN not in obj.columns:
        return {keys[0]: obj}
    grouped = dict(tuple(obj.groupby(PARTITION_COLUMN, sort=False)))
    return {k: grouped.get(k, obj.iloc[0:0]) for k in keys}


class PickleIOManager(dg.ConfigurableIOManager):
    """Small Python objects (dataset references, summaries) as atomic pickles."""

    storage: dg.ResourceDependency[StorageResource]

    def _path(self, context):
        name = _table(context)
        folder = self.storage.path / "objects"
        if context.has_asset_partitions:
            return folder / name / f"{validate_key(context.asset_partition_key)}.pickle"
        return folder / f"{name}.pickle"

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        data = pickle.dumps(obj)
        write_atomic(self._path(context), lambda tmp: tmp.write_bytes(data))

    def load_input(self, context: dg.InputContext):
        return pickle.loads(self._path(context).read_bytes())
