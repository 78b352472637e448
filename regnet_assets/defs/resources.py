"""Resources: which dataset, where results live, and which torch device trains models."""

import re
from pathlib import Path

import dagster as dg
from pydantic import Field, field_validator

from regnet_assets.storage import storage_root

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


class StorageResource(dg.ConfigurableResource):
    """The storage folder; empty means ``$REGNET_STORAGE`` or ``./regnet_storage``."""

    root: str = Field(default="", description="Folder for tables, models and the DuckDB catalog.")

    @property
    def path(self) -> Path:
        return storage_root(self.root or None)


class TorchDeviceResource(dg.ConfigurableResource):
    """The torch device for training and attribution: ``auto`` picks CUDA when present.

    torch is imported only when a step resolves the device, never at definition load time,
    so the code server does not initialise CUDA.
    """

    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N | mps")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {value!r}")
        return value

    def resolve(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


class DatasetResource(dg.ConfigurableResource):
    """The dataset settings every dataset asset shares (UI resource config or ``--dataset``)."""

    path: str = Field(default="", description="A user's .h5mu; empty = the simulated default.")
    groupby: str = Field(default="cell_type", description="obs column with the cell-type label.")
    preset: str = Field(default="default", description="Simulator preset: default, small, large or hard.")
    seed: int = Field(default=0, description="Seed of the simulator.")
    n_cells: int = Field(default=0, description="Simulated cells (0 = the simulator default).")
    n_target_genes: int = Field(default=0, description="Simulated target genes (0 = default).")
    n_tfs: int = Field(default=0, description="Simulated TFs (0 = default).")

    @property
    def simulated(self) -> bool:
        return not self.path

    def simulation_config(self):
        from dataclasses import replace

        from regnet_assets.science.dataset.simulator import SimulationConfig

        sizes = {k: getattr(self, k) for k in ("n_cells", "n_target_genes", "n_tfs") if getattr(self, k)}
        return replace(SimulationConfig.preset(self.preset, seed=self.seed), **sizes)
