"""The table registry (``storage/tables.py``) against the definitions and the files they write.

Every Parquet asset is in the registry with its group and partitioning, and the column schemas
the assets show agree with it; after a run of the whole graph on the small simulated dataset,
every file of every table has exactly the registry's columns, in order, with its Arrow types.
"""

import dagster as dg
import pyarrow.parquet as pq
import pytest

from regnet_assets.defs.definitions import defs
from regnet_assets.defs.resources import DatasetResource
from regnet_assets.operations.runner import run_graph
from regnet_assets.storage.tables import TABLES

FAST = {
    "ops": {
        "gene_models": {"config": {"epochs": 1}},
        "tf_attribution": {"config": {"n_steps": 16}},
        "kpnn": {"config": {"epochs": 10, "n_folds": 2, "max_cells": 300}},
    }
}


def _parquet_assets() -> dict:
    graph = defs.resolve_asset_graph()
    return {
        k.to_user_string(): graph.get(k)
        for k in graph.get_all_asset_keys()
        if "parquet" in graph.get(k).kinds
    }


def test_every_parquet_asset_is_in_the_registry_with_its_group_and_partitioning():
    assets = _parquet_assets()
    assert sorted(assets) == sorted(TABLES)
    for name, node in assets.items():
        assert (node.group_name, node.partitions_def is not None) == (
            TABLES[name].group,
            TABLES[name].per_gene,
        )


def test_every_parquet_asset_shows_the_registrys_typed_column_schema_and_description():
    for name, node in _parquet_assets().items():
        schema = node.metadata.get("dagster/column_schema")
        assert schema is not None, f"{name} has no column schema"
        shown = [(c.name, c.type, c.description) for c in schema.columns]
        assert shown == [(c.name, c.type, c.meaning) for c in TABLES[name].columns], name
        assert " ".join((node.description or "").split()) == TABLES[name].description, name


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    root = tmp_path_factory.mktemp("storage")
    with dg.instance_for_test() as instance:
        summary = run_graph(
            instance,
            root,
            DatasetResource(preset="small"),
            device="cpu",
            run_config=FAST,
            echo=lambda _: None,
            progress=lambda _: None,
        )
    assert summary.success, summary.failures
    return root


def test_column_types_equal_the_parquet_schema_for_every_table(storage):
    for name, t in TABLES.items():
        files = sorted((storage / name).glob("**/*.parquet"))
        assert files, f"{name}: no files"
        expected = [(c.name, c.type) for c in t.columns]
        for path in files:
            found = [(f.name, str(f.type)) for f in pq.read_schema(path)]
            assert found == expected, f"{path.relative_to(storage)}"
