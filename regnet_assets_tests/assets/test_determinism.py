"""Determinism: the same config and seed give the same results on CPU across two runs.

Two full runs of the graph (``run_graph``, what ``regnet run`` does) on the small simulated
default, each in its own storage folder and instance, on small budgets (``FAST``). Then, file by file:

* Parquet tables, .h5mu files and figures are byte-identical, except the tables that record
  wall-clock time (``seconds``, ``*_seconds`` columns: ``gene_models``, ``pruning_summary``,
  ``kpnn_summary``); those are compared decoded, exactly, without those columns — and the test
  fails if any other table differs in bytes or any other column differs at all;
* checkpoints hold identical tensors and metadata, except the training time in their summary;
* pickled dataset references are identical once the storage folder's path is replaced;
* the DuckDB catalog file embeds the absolute storage path and DuckDB's own block layout, so it
  is compared by what it serves: the same views with the same rows.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import torch

from regnet_assets.defs.resources import DatasetResource
from regnet_assets.operations.runner import run_graph
from regnet_assets.storage import query

# Small but complete: every asset runs, on budgets that keep two runs well under a minute each.
FAST = {
    "ops": {
        "gene_models": {"config": {"epochs": 1}},
        "tf_attribution": {"config": {"n_steps": 16}},
        "kpnn": {"config": {"epochs": 10, "n_folds": 2, "max_cells": 300}},
    }
}
TIMING = re.compile(r"(^|_)seconds$")
TABLES_WITH_TIMINGS = {"gene_models", "pruning_summary", "kpnn_summary"}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    roots = []
    for _ in range(2):
        root = tmp_path_factory.mktemp("run")
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
        roots.append(root)
    return roots


def _files(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and "dagster_home" not in p.parts
    }


def test_both_runs_write_the_same_files(two_runs):
    a, b = two_runs
    assert _files(a).keys() == _files(b).keys()
    assert sum(k.endswith(".parquet") for k in _files(a)) > 50


def test_tables_are_byte_identical_or_differ_only_in_wall_clock_columns(two_runs):
    a, b = two_runs
    differing = set()
    for name, path in _files(a).items():
        if not name.endswith(".parquet"):
            continue
        other = b / name
        if path.read_bytes() == other.read_bytes():
            continue
        table = name.split("/")[0]
        differing.add(table)
        left, right = pd.read_parquet(path), pd.read_parquet(other)
        timing = [c for c in left.columns if TIMING.search(c)]
        assert timing, f"{name} differs and has no wall-clock column"
        pd.testing.assert_frame_equal(left.drop(columns=timing), right.drop(columns=timing), check_exact=True)
    assert differing <= TABLES_WITH_TIMINGS, differing


def test_datasets_figures_and_checkpoints_are_identical(two_runs):
    a, b = two_runs
    checkpoints = 0
    for name, path in _files(a).items():
        other = b / name
        if name.endswith((".h5mu", ".png")):
            assert path.read_bytes() == other.read_bytes(), name
        elif name.endswith(".pt"):
            checkpoints += 1
            left, right = (torch.load(p, map_location="cpu", weights_only=False) for p in (path, other))
            left["summary"].pop("seconds"), right["summary"].pop("seconds")
            _assert_same(left, right, name)
        elif name.endswith(".pickle"):
            left, right = (pickle.loads(p.read_bytes()) for p in (path, other))
            if hasattr(left, "path"):
                left = replace(left, path=left.path.replace(str(a), str(b)))
            assert left == right, name
    assert checkpoints >= 3


def test_catalogs_serve_the_same_rows(two_runs):
    a, b = two_runs
    views = query(a, "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1")
    assert views.equals(query(b, "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"))
    for view in views["view_name"]:
        sql = f'SELECT count(*) AS n FROM "{view}"'
        assert query(a, sql).equals(query(b, sql)), view


def _assert_same(left, right, where: str) -> None:
    if isinstance(left, dict):
        assert left.keys() == right.keys(), where
        for key in left:
            _assert_same(left[key], right[key], f"{where}/{key}")
    elif isinstance(left, (list, tuple)):
        assert len(left) == len(right), where
        for i, (x, y) in enumerate(zip(left, right)):
            _assert_same(x, y, f"{where}/{i}")
    elif torch.is_tensor(left):
        assert torch.equal(left, right), where
    elif isinstance(left, pd.DataFrame):
        pd.testing.assert_frame_equal(left, right, check_exact=True)
    elif isinstance(left, float) and left != left:
        assert right != right, where
    else:
        assert left == right, where
