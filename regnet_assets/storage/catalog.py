"""The DuckDB catalog: one view per table over its Parquet glob, queried read-only.

The catalog file ``<root>/regnet.duckdb`` is rebuilt in one step (a temp file renamed over
the old one), never from partition writes, so no writer ever holds a lock that a reader,
a notebook or another run could collide with (reference/dagster.md §3). Views over globs see
partitions written after the refresh; only a brand-new table needs a refresh.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd

from regnet_assets.atomic import write_atomic
from regnet_assets.storage.parquet import validate_table_name

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


# What a query may be: reading (SELECT, SHOW, DESCRIBE, SUMMARIZE, VALUES, FROM-first) and
# EXPLAIN. COPY ... TO, EXPORT, ATTACH, INSTALL/LOAD, SET, CALL, PRAGMA and CREATE are refused.
READ_ONLY_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})


class ReadOnlyQueryError(duckdb.PermissionException):
    """A statement that is not a read was passed to :func:`query`."""


def connect(root: Path) -> duckdb.DuckDBPyConnection:
    """A read-only, sandboxed connection to the catalog (built first if it does not exist yet).

    A private in-memory DuckDB attaches the catalog ``READ_ONLY`` (no change to its views), is
    told to touch no file outside the storage folder (``enable_external_access=false`` with
    ``allowed_directories``) and to install or load no extension, then locks that configuration
    so a query cannot undo it. The database is private to the connection: DuckDB shares one
    instance per file path within a process, and a locked shared instance would refuse the next
    connection's settings (two threads querying at once).
    """
    root = Path(root).resolve()
    catalog = root / CATALOG_FILE
    if not catalog.exists():
        refresh_catalog(root)
    con = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    try:
        con.execute(f"ATTACH {_sql_string(str(catalog))} AS regnet (READ_ONLY)")
        con.execute("USE regnet")
        con.execute("SET allowed_directories = ?", [[str(root) + os.sep]])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise :class:`ReadOnlyQueryError` unless ``sql`` is exactly one reading statement."""
    statements = con.extract_statements(sql)
    if len(statements) != 1:
        raise ReadOnlyQueryError(f"expected one SQL statement, got {len(statements)}")
    kind = statements[0].type.name
    if kind not in READ_ONLY_STATEMENTS:
        raise ReadOnlyQueryError(
            f"only reading statements ({', '.join(sorted(READ_ONLY_STATEMENTS))}) are allowed; got {kind}"
        )


def query(root: Path, sql: str) -> pd.DataFrame:
    """Run one reading SQL statement against the catalog, sandboxed, and return its result.

    Raises a ``duckdb.Error`` (:class:`ReadOnlyQueryError` for a statement that is not a read,
    ``duckdb.PermissionException`` for a file outside the storage folder).
    """
    with connect(root) as con:
        check_read_only(con, sql)
        return con.execute(sql).df()
