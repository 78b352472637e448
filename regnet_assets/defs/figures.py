"""Figures: saved as PNG beside the tables and embedded in the UI as markdown metadata."""


import base64

import dagster as dg

from regnet_assets.defs.resources import StorageResource
from regnet_assets.storage.parquet import validate_table_name, write_atomic


def figure_metadata(storage: StorageResource, name: str, png: bytes) -> dict:
    """Write ``<storage>/figures/<name>.png`` atomically; return metadata that shows it."""
    path = storage.path / "figures" / f"{validate_table_name(name)}.png"
    write_atomic(path, lambda tmp: tmp.write_bytes(png))
    encoded = base64.b64encode(png).decode()
    return {
        f"{name}_plot": dg.MetadataValue.md(f"![{name}](data:image/png;base64,{encoded})"),
        f"{name}_png": dg.MetadataValue.path(str(path)),
    }
