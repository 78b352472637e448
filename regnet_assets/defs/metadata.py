"""What assets show in the UI: column schemas, markdown tables and figures.

Column schemas come from the table registry (``storage/tables.py``), which also documents the
tables in ``regnet export``'s README. Figures are saved as PNG beside the tables and embedded in
the UI as markdown metadata.
"""

import base64
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from regnet_assets.atomic import write_atomic
from regnet_assets.defs.resources import StorageResource
from regnet_assets.storage.parquet import validate_table_name
from regnet_assets.storage.tables import table


def column_schema(name: str) -> dict:
    """The ``metadata`` entry describing table ``name``'s columns: Arrow type and meaning from the
    registry."""
    columns = [dg.TableColumn(c.name, type=c.type, description=c.meaning) for c in table(name).columns]
    return {"dagster/column_schema": dg.TableSchema(columns=columns)}


def file_metadata(root: Path, path: Path | str) -> dict:
    """``path`` relative to the storage root, so metadata survives moving or exporting the
    results folder (the root is the ``storage`` resource's ``path``); a file outside it (the
    user's own dataset) keeps its absolute path."""
    path = Path(path)
    shown = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    return {"path": dg.MetadataValue.path(shown)}


def gene_metadata(
    context: dg.AssetExecutionContext, asset: str, rows: dict[str, pd.DataFrame], columns
) -> None:
    """Put each gene's own ``columns`` (from its one-row frame in ``rows``) on that gene's
    partition of ``asset``, rounded for reading; missing and non-finite values are left out."""
    for gene, frame in rows.items():
        row = frame.iloc[0] if len(frame) else pd.Series(dtype=object)
        meta = {c: _readable(row[c]) for c in columns if c in row.index and _readable(row[c]) is not None}
        context.add_asset_metadata(meta, asset_key=asset, partition_key=gene)


def _readable(value):
    if value is None or (isinstance(value, str) and not value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(f"{value:.4g}") if np.isfinite(value) else None
    return str(value)


def markdown(frame: pd.DataFrame) -> dg.MetadataValue:
    """A small frame as a markdown table ("(none)" when empty)."""
    return dg.MetadataValue.md(frame.to_markdown(index=False, floatfmt=".4g") if len(frame) else "(none)")


def figure_metadata(storage: StorageResource, name: str, png: bytes) -> dict:
    """Write ``<storage>/figures/<name>.png`` atomically; return metadata that shows it."""
    path = storage.path / "figures" / f"{validate_table_name(name)}.png"
    write_atomic(path, lambda tmp: tmp.write_bytes(png))
    encoded = base64.b64encode(png).decode()
    return {
        f"{name}_plot": dg.MetadataValue.md(f"![{name}](data:image/png;base64,{encoded})"),
        f"{name}_png": file_metadata(storage.path, path)["path"],
    }
