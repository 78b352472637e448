"""What assets show in the UI: column schemas, markdown tables and figures.

Column schemas come from the table registry (``storage/tables.py``), which also documents the
tables in ``regnet export``'s README. Figures are saved as PNG beside the tables and embedded in
the UI as markdown metadata.
"""

import base64

import dagster as dg
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
        f"{name}_png": dg.MetadataValue.path(str(path)),
    }
