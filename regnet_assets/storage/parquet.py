"""Atomic Parquet files in a hive layout: ``<root>/<table>/gene=<key>/part.parquet``.

Every write goes to a hidden temporary file in the same folder and is renamed over the target
with ``os.replace``, so a killed run leaves either the old file or the new one, never a torn
file, and temporary files never match the ``*.parquet`` globs the DuckDB views read.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from regnet_assets.atomic import write_atomic

DEFAULT_STORAGE = "regnet_storage"
PARTITION_COLUMN = "gene"
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


# DuckDB reads every path it is given as a glob pattern, so these would make a partition's path
# match other partitions' files (``IL*`` reading ``IL2`` and ``IL7``) or not match its own.
GLOB_CHARACTERS = "*?[]{}"
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def storage_root(path: str | os.PathLike | None = None) -> Path:
    """The storage folder: ``path``, else ``$REGNET_STORAGE``, else ``./regnet_storage``."""
    root = Path(path or os.environ.get("REGNET_STORAGE") or DEFAULT_STORAGE).resolve()
    glob = sorted(set(GLOB_CHARACTERS) & set(str(root)))
    if glob:
        raise ValueError(
            f"storage folder {str(root)!r} contains glob characters {glob}: DuckDB would read "
            "its paths as patterns; choose a folder name without * ? [ ] { }"
        )
    return root


def validate_key(key: str, what: str = "partition key") -> str:
    """Reject keys that could escape their folder, act as a glob or confuse the hive layout."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"{what} must be a non-empty string, got {key!r}")
    bad = [c for c in key if ord(c) < 32 or ord(c) == 127]
    if bad:
        raise ValueError(f"{what} {key!r} contains control characters (NUL, newline, ...)")
    for token in ("/", "\\", "..", "=", *GLOB_CHARACTERS):
        if token in key:
            raise ValueError(f"{what} {key!r} must not contain {token!r}: keys become folder names")
    if key.startswith(".") or key != key.strip():
        raise ValueError(f"{what} {key!r} must not start with '.' or have surrounding spaces")
    hidden = [c for c in key if not c.isascii() and unicodedata.category(c) in _HIDDEN_CATEGORIES]
    if hidden:
        raise ValueError(f"{what} {key!r} contains invisible or unassigned character U+{ord(hidden[0]):04X}")
    return key


def validate_table_name(name: str) -> str:
    """Table names become folder and SQL view names: lowercase identifiers only."""
    if not isinstance(name, str) or not _TABLE_NAME.match(name):
        raise ValueError(f"table name {name!r} must match {_TABLE_NAME.pattern}")
    return name


def table_dir(root: Path, table: str) -> Path:
    """The folder of a table under the storage root (the name is validated)."""
    return Path(root) / validate_table_name(table)


def partition_path(root: Path, table: str, key: str | None) -> Path:
    """Where a table (``key=None``) or one gene partition of it lives."""
    base = table_dir(root, table)
    if key is None:
        return base / "part.parquet"
    return base / f"{PARTITION_COLUMN}={validate_key(key)}" / "part.parquet"


def write_table(root: Path, table: str, df: pd.DataFrame, key: str | None = None) -> Path:
    """Write one table (or one gene partition of it) atomically; returns the file path.

    A partition's rows always carry the ``gene`` column equal to the key, so each file is
    self-describing and the views need no hive partition inference.
    """
    path = partition_path(root, table, key)
    if key is not None:
        if PARTITION_COLUMN in df.columns and not (df[PARTITION_COLUMN] == key).all():
            raise ValueError(f"table {table!r}: rows for partition {key!r} name other genes")
        df = df.assign(**{PARTITION_COLUMN: key})
    arrow = pa.Table.from_pandas(df, preserve_index=False)
    write_atomic(path, lambda tmp: pq.write_table(arrow, tmp))
    return path


class ParquetFiles(tuple):
    """The Parquet files of a table, to be streamed (by DuckDB) rather than loaded whole."""


def table_files(root: Path, table: str, keys: list[str] | None = None) -> ParquetFiles:
    """The Parquet files of a table: all of them, or only those of the given gene keys."""
    if keys is None:
        files = ParquetFiles(sorted(table_dir(root, table).glob("**/*.parquet")))
        if not files:
            raise FileNotFoundError(f"table {table!r} has no files under {table_dir(root, table)}")
        return files
    files = ParquetFiles(partition_path(root, table, k) for k in keys)
    missing = [k for k, p in zip(keys, files) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"table {table!r} has no partition for {missing[:5]}")
    return files


def read_table(root: Path, table: str, keys: list[str] | None = None) -> pd.DataFrame:
    """Read a whole table (or the given partitions) in one DuckDB scan, not file by file."""
    files = table_files(Path(root), table, keys)
    with duckdb.connect() as con:
        return con.execute(
            "SELECT * FROM read_parquet(?, union_by_name=true)", [[str(f) for f in files]]
        ).df()
