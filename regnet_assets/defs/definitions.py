"""Wires assets, checks, resources, IO managers and sensors into one ``Definitions``."""

from __future__ import annotations

import dagster as dg

from regnet_assets.defs.assets.attribution import ATTRIBUTION_ASSETS, ATTRIBUTION_TABLES
from regnet_assets.defs.assets.catalog import catalog_asset
from regnet_assets.defs.assets.dataset import DATASET_ASSETS, DATASET_TABLES
from regnet_assets.defs.assets.experiment import EXPERIMENT_ASSETS
from regnet_assets.defs.assets.models import MODEL_ASSETS
from regnet_assets.defs.assets.network import NETWORK_ASSETS, NETWORK_TABLES
from regnet_assets.defs.assets.reports import REPORT_ASSETS, REPORT_TABLES
from regnet_assets.defs.checks import build_checks
from regnet_assets.defs.io_managers import ParquetIOManager, PickleIOManager
from regnet_assets.defs.launch_check import launch_checked
from regnet_assets.defs.resources import DatasetResource, StorageResource, TorchDeviceResource
from regnet_assets.defs.schedules import nightly_sensor, with_nightly_conditions
from regnet_assets.defs.sensors import gene_sensor_factory

TABLE_ASSETS = [
    *DATASET_TABLES,
    *MODEL_ASSETS,
    *ATTRIBUTION_TABLES,
    *NETWORK_TABLES,
    *REPORT_TABLES,
    *EXPERIMENT_ASSETS,
]
ALL_ASSETS = [
    *DATASET_ASSETS,
    *MODEL_ASSETS,
    *ATTRIBUTION_ASSETS,
    *NETWORK_ASSETS,
    *REPORT_ASSETS,
    *EXPERIMENT_ASSETS,
    catalog_asset(TABLE_ASSETS),
]
ALL_CHECKS = build_checks(ALL_ASSETS, TABLE_ASSETS)


def make_resources(
    storage_root: str = "", dataset: DatasetResource | None = None, device: str = "auto"
) -> dict:
    """The resources every asset needs, for a storage folder, dataset and torch device."""
    storage = StorageResource(root=storage_root)
    return {
        "storage": storage,
        "dataset_config": dataset or DatasetResource(),
        "device": TorchDeviceResource(device=device),
        "io_manager": ParquetIOManager(storage=storage),
        "object_io_manager": PickleIOManager(storage=storage),
    }


def _default_storage():
    return StorageResource().path


defs = dg.Definitions(
    assets=with_nightly_conditions(ALL_ASSETS),
    asset_checks=ALL_CHECKS,
    # the UI's launches check the dataset's file first; regnet run checks it itself (cli.py)
    resources={**make_resources(), "dataset_config": launch_checked(DatasetResource())},
    sensors=[gene_sensor_factory(_default_storage, ALL_ASSETS), nightly_sensor(ALL_ASSETS, ALL_CHECKS)],
)
