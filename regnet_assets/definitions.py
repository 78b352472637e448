"""The one Dagster ``Definitions`` object of regnet (what workspace.yaml loads)."""

from regnet_assets.defs.definitions import defs

__all__ = ["defs"]
