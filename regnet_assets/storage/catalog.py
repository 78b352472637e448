"""The DuckDB catalog: one view per table over its Parquet glob, queried read-only.

The catalog file ``<root>/regnet.duckdb`` is rebuilt in one step (a temp file renamed over
the old one), never from partition writes, so no writer ever holds a lock that a reader,
a notebook or another run could collide with (reference/dagster.md §3). Views over globs see
partitions written after the refresh; only a brand-new table needs a refresh.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from regnet_assets.storage.parquet import validate_table_name, write_atomic

CATALOG_FILE = "regnet.duckdb"


def table_names(root: Path) -> list[str]:
    """Tables that have at least one Parquet file (a view over an empty glob would fail)."""
    root = Path(root)
    if not root.is_dir():
        return []
    names = []
    for child in sorted(root.iterdir()):
        try:
            validate_table_name(child.name)
        except ValueError:
            continue
        if child.is_dir() and next(child.glob("**/*.parquet"), None) is not None:
            names.append(child.name)
    return names


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def refresh_catalog(root: Path) -> list[str]:
    """Rebuild the catalog file with a view per table; returns the table names."""
    root = Path(root).resolve()
    names = table_names(root)

    def build(tmp: Path) -> None:
        with duckdb.connect(str(tmp)) as con:
            for name in names:
                glob = _sql_string(str(root / name / "**" / "*.parquet"))
                con.execute(
                    f'CREATE VIEW "{name}" AS SELECT * FROM '
                    f"read_parquet({glob}, union_by_name=true, hive_partitioning=false)"
                )

    write_atomic(root / CATALOG_FILE, build)
    return names


def connect(root: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the catalog (built first if it does not exist yet)."""
    catalog = Path(root).resolve() / CATALOG_FILE
    if not catalog.exists():
        refresh_catalog(root)
    return duckdb.connect(str(catalog), read_only=True)


def query(root: Path, sql: str) -> pd.DataFrame:
    """Run one SQL statement read-only against the catalog and return its result."""
    with connect(root) as con:
        return con.execute(sql).df()
