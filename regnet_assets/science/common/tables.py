"""Reducing long tables that need not fit in memory, such as the attributions of every
gene × metacell × TF (2,000 genes × 1,000 metacells × 20 TFs is 40 million rows).

A function that reduces such a table takes either a DataFrame or the Parquet files that hold
it, and runs its aggregation in DuckDB, which streams the files rather than loading them whole.
DuckDB runs on one thread here, so sums are added in one order and the same input gives
bit-identical results.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb
import pandas as pd

LongTable = pd.DataFrame | Sequence[str | os.PathLike]


@contextmanager
def connect(**tables: LongTable) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection where each keyword is a view: a DataFrame, or Parquet
    files read as one table (columns matched by name)."""
    con = duckdb.connect(config={"threads": 1})
    try:
        for name, source in tables.items():
            if isinstance(source, pd.DataFrame):
                con.register(name, source)
            else:
                files = [os.fspath(path) for path in source]
                if not files:
                    raise ValueError(f"{name}: no Parquet files to read")
                con.read_parquet(files, union_by_name=True).create_view(name)
        yield con
    finally:
        con.close()


def require_columns(con: duckdb.DuckDBPyConnection, table: str, columns, label: str) -> None:
    """Fail naming the missing columns of a view, before a query fails less clearly."""
    have = con.table(table).columns
    missing = [c for c in columns if c not in have]
    if missing:
        raise ValueError(f"{label} lacks columns {missing} (has {have})")
