"""Automation and operations, evaluated by Dagster's own machinery on throw-away instances.

Nothing here trains a model: the instance's event log is filled with runless materialization
events (what a finished run leaves behind), then the gene sensor, the nightly automation, the
backfill daemon and the checks are evaluated against it exactly as the daemon would.
"""

import datetime
import logging
import os
import tempfile

import dagster as dg
import pandas as pd
import pytest

from regnet_assets.defs.checks import build_checks
from regnet_assets.defs.definitions import ALL_ASSETS, ALL_CHECKS, TABLE_ASSETS, defs
from regnet_assets.defs.instance import asset_statuses, contiguous_batches, genes_per_run, partitioned_keys
from regnet_assets.defs.partitions import GENES
from regnet_assets.defs.schedules import nightly_targets
from regnet_assets.defs.sensors import RANGE_END, RANGE_START, gene_sensor_factory, register_genes
from regnet_assets.operations.runner import submit_backfill
from regnet_assets.storage import write_table

MODELS = ["gene_models", "training_history", "predictions", "gene_correlation"]
ATTRIBUTION = ["tf_attribution", "tf_to_gene", "attribution_delta"]
DATASET = [
    "multiome",
    "metacell_multiome",
    "peak_gene_links",
    "motif_hits",
    "gene_tf_candidates",
    "genes",
    "metacells",
    "truth_tf_gene",
    "truth_signalling",
]
UTC = datetime.UTC


def genes_table(storage, genes):
    write_table(storage, "genes", pd.DataFrame({"gene": genes, "modelable": True}))


def done(instance, keys, partitions=None):
    """Record materializations as a finished run would (one event per key and partition)."""
    for key in keys:
        for partition in partitions or [None]:
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))


# ------------------------------------------------------------------------- the gene sensor
def test_sensor_registers_only_new_genes_and_requests_contiguous_batches(tmp_path):
    size = genes_per_run(ALL_ASSETS)
    sensor = gene_sensor_factory(lambda: tmp_path, ALL_ASSETS)
    first = [f"G{i:04d}" for i in range(2 * size + 5)]
    genes_table(tmp_path, first)
    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(instance=instance))
        assert result.dynamic_partitions_requests[0].partition_keys == first
        runs = result.run_requests
        assert len(runs) == 3  # ceil(2 * size + 5 / size), not one run per gene
        assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in runs] == [
            (first[0], first[size - 1]),
            (first[size], first[2 * size - 1]),
            (first[2 * size], first[-1]),
        ]
        targets = partitioned_keys(ALL_ASSETS)
        assert all(set(r.asset_selection) == targets for r in runs)
        assert dg.AssetKey("gene_models") in targets and dg.AssetKey("tf_attribution") in targets

        instance.add_dynamic_partitions(GENES, first)  # what the daemon does with the request
        genes_table(tmp_path, [*first, "NEW1", "NEW2"])
        second = sensor(dg.build_sensor_context(instance=instance))
        assert second.dynamic_partitions_requests[0].partition_keys == ["NEW1", "NEW2"]
        assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in second.run_requests] == [("NEW1", "NEW2")]

        instance.add_dynamic_partitions(GENES, ["NEW1", "NEW2"])
        third = sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(third, dg.SkipReason)


def test_contiguous_batches_never_span_a_gap():
    order = [f"g{i}" for i in range(10)]
    assert contiguous_batches(order, ["g1", "g2", "g3", "g5", "g6", "g9"], 2) == [
        ["g1", "g2"],
        ["g3"],
        ["g5", "g6"],
        ["g9"],
    ]


# --------------------------------------------------------------------- the nightly refresh
def _nightly(instance, when, cursor=None):
    return dg.evaluate_automation_conditions(
        defs=defs,
        instance=instance,
        cursor=cursor,
        asset_selection=dg.AssetSelection.keys(*nightly_targets(ALL_ASSETS)).without_checks(),
        evaluation_time=when,
    )


def _requested(result, keys):
    return {k: sorted(p for p in result.get_requested_partitions(dg.AssetKey(k)) if p) for k in keys}


def test_nightly_requests_exactly_the_missing_then_the_stale_genes():
    genes = [f"G{i:03d}" for i in range(10)]
    before_tick = datetime.datetime(2026, 1, 1, 1, 30, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(GENES, genes)
        done(instance, DATASET)
        done(instance, MODELS, genes[:6])  # partially materialized: 4 genes never trained
        done(instance, ATTRIBUTION, genes[:6])
        done(instance, ["model_performance", "regulatory_network", "grn_recovery", "duckdb_catalog"])

        quiet = _nightly(instance, before_tick)
        assert quiet.total_requested == 0  # nothing happens between nights

        night = _nightly(instance, before_tick + datetime.timedelta(minutes=31), quiet.cursor)
        assert _requested(night, MODELS + ATTRIBUTION) == {k: genes[6:] for k in MODELS + ATTRIBUTION}
        for table in ("model_performance", "regulatory_network", "grn_recovery", "duckdb_catalog"):
            assert night.get_num_requested(dg.AssetKey(table)) == 1, table  # then the tables downstream
        assert night.get_num_requested(dg.AssetKey("metacell_multiome")) == 0  # the dataset is given

        # the nights' runs finished; then the dataset changes: every gene is stale
        done(instance, MODELS + ATTRIBUTION, genes[6:])
        done(instance, ["model_performance", "regulatory_network", "grn_recovery", "duckdb_catalog"])
        day = _nightly(instance, before_tick + datetime.timedelta(hours=8), night.cursor)
        done(instance, ["metacell_multiome"])
        later = _nightly(instance, before_tick + datetime.timedelta(hours=9), day.cursor)
        assert day.total_requested == later.total_requested == 0  # waits for the night
        next_night = _nightly(instance, before_tick + datetime.timedelta(hours=24, minutes=31), later.cursor)
        assert _requested(next_night, MODELS + ATTRIBUTION) == {k: genes for k in MODELS + ATTRIBUTION}


def test_nightly_sensor_targets_genes_and_downstream_and_emits_backfills():
    sensor = next(s for s in defs.sensors if s.name == "nightly_refresh")
    assert sensor.emit_backfills and sensor.default_status == dg.DefaultSensorStatus.RUNNING
    targets = nightly_targets(ALL_ASSETS)
    assert partitioned_keys(ALL_ASSETS) <= targets
    assert {dg.AssetKey("model_performance"), dg.AssetKey("duckdb_catalog")} <= targets
    assert dg.AssetKey("multiome") not in targets
    assert {dg.AssetKey(k) for k in ("pkn_edges", "pruned_dag_edges", "kpnn_summary")} <= targets  # #16


def test_network_up_to_date_check_turns_red_when_the_dataset_changes():
    network = ["pkn_edges", "pruned_dag_edges", "pruning_summary", "kpnn_summary"]
    with dg.instance_for_test() as instance:
        done(instance, DATASET)
        done(instance, network)
        check = _check("up_to_date", "kpnn_summary")
        assert check(dg.build_op_context(instance=instance)).passed
        done(instance, ["multiome"])  # the dataset changed under the network
        result = check(dg.build_op_context(instance=instance))
        assert not result.passed and "multiome" in result.metadata["newer_inputs"].value


# ---------------------------------------------------------------- a backfill of all genes
def test_backfill_of_200_genes_with_batch_50_makes_4_runs():
    """The UI's / ``regnet backfill``'s asset backfill, planned by Dagster's backfill daemon."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.backfill import execute_backfill_iteration

    from regnet_assets_tests import backfill_defs

    genes = [f"G{i:04d}" for i in range(200)]
    queued = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}}
    # SQLite writes one "planned" event per gene and asset at launch (1,400 here), each a
    # committed transaction: on tmpfs this takes seconds instead of minutes (README, Postgres).
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with (
        tempfile.TemporaryDirectory(dir=shm) as home,
        dg.instance_for_test(overrides=queued, temp_dir=home) as instance,
    ):  # runs stay queued
        instance.add_dynamic_partitions(GENES, genes)
        done(instance, DATASET)
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(module_name="regnet_assets_tests.backfill_defs", attribute="defs"),
            location_name="regnet_assets",
        )
        with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as context:
            backfill_id = submit_backfill(
                instance, asset_graph=backfill_defs.defs.resolve_asset_graph(), assets=backfill_defs.assets
            )
            list(execute_backfill_iteration(context, logging.getLogger("backfill-test")))
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        ranges = sorted((r.tags[RANGE_START], r.tags[RANGE_END]) for r in runs)
        assert ranges == [(genes[i], genes[i + 49]) for i in (0, 50, 100, 150)]
        for run in runs:
            assert set(MODELS) <= {k.path[-1] for k in run.asset_selection}
            assert "model_performance" not in {k.path[-1] for k in run.asset_selection}  # comes after


# ------------------------------------------------------------------------------ checks
def _check(name, asset):
    return next(c for c in ALL_CHECKS if dg.AssetCheckKey(dg.AssetKey(asset), name) in c.check_keys)


def test_up_to_date_check_turns_red_when_the_dataset_changes(tmp_path):
    genes = ["A", "B", "C"]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(GENES, genes)
        done(instance, DATASET)
        done(instance, MODELS, genes)
        check = _check("up_to_date", "gene_models")
        assert check(dg.build_op_context(instance=instance)).passed

        done(instance, ["peak_gene_links"])  # the dataset changed under the models
        done(instance, MODELS, ["B"])  # only B was re-trained
        result = check(dg.build_op_context(instance=instance))
        assert not result.passed
        assert result.metadata["stale_genes"].value == 2
        assert result.metadata["stale_examples"].value == ["A", "C"]
        assert result.metadata["newer_inputs"].value == ["peak_gene_links"]

        status = asset_statuses(instance, ALL_ASSETS, [dg.AssetKey("gene_models"), dg.AssetKey("genes")])
        assert status[dg.AssetKey("gene_models")].stale == ["A", "C"]
        assert status[dg.AssetKey("genes")].state == "stale"  # older than peak_gene_links too


def test_up_to_date_check_is_rerun_when_the_dataset_is_updated():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(GENES, ["A"])
        selection = dg.AssetSelection.checks(_check("up_to_date", "gene_models"))
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        done(instance, ["peak_gene_links"])
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=first.cursor
        )
        assert second.total_requested == 1


def test_zero_row_tables_turn_the_checks_red(tmp_path):
    from regnet_assets.defs.resources import StorageResource

    storage = StorageResource(root=str(tmp_path))
    write_table(tmp_path, "metacells", pd.DataFrame({"metacell": pd.Series([], dtype=str)}))
    write_table(tmp_path, "peak_gene_links", pd.DataFrame({"gene": ["A"], "peak": ["p"]}))
    write_table(tmp_path, "predictions", pd.DataFrame({"gene": pd.Series([], dtype=str)}), "A")
    has_rows = {k.asset_key.path[-1]: c for c in ALL_CHECKS for k in c.check_keys if k.name == "has_rows"}
    assert {"metacells", "model_performance", "regulatory_network"} <= set(has_rows)
    assert "predictions" not in has_rows  # gene-partitioned: counted once on the catalog instead
    assert not has_rows["metacells"](storage=storage).passed
    assert has_rows["peak_gene_links"](storage=storage).passed
    catalog = _check("no_empty_tables", "duckdb_catalog")
    result = catalog(storage=storage)
    assert not result.passed
    assert {"metacells", "predictions", "gene_models"} <= set(result.metadata["empty_tables"].value)
    assert "peak_gene_links" not in result.metadata["empty_tables"].value


def test_every_table_asset_is_covered_by_a_zero_row_check():
    checks = build_checks(ALL_ASSETS, TABLE_ASSETS)
    covered = {k.asset_key for c in checks for k in c.check_keys if k.name == "has_rows"}
    tables = {k for a in TABLE_ASSETS for k in a.keys} - partitioned_keys(ALL_ASSETS)
    assert tables - covered <= {dg.AssetKey(n) for n in ("truth_tf_gene", "truth_signalling", "grn_recovery")}


@pytest.mark.parametrize("name", ["gene_partitions_sensor", "nightly_refresh"])
def test_automation_is_on_by_default(name):
    sensor = next(s for s in defs.sensors if s.name == name)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_pools_are_created_once_before_runs_claim_them():
    """``initialize_pools`` creates the gpu pool's row (so concurrent runs never race to), once."""
    from regnet_assets.defs.pools import GPU_POOL, initialize_pools

    with dg.instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 3}}}) as instance:
        assert GPU_POOL not in instance.event_log_storage.get_concurrency_keys()
        assert initialize_pools(instance) == [GPU_POOL]
        assert instance.event_log_storage.get_concurrency_info(GPU_POOL).slot_count == 3
        assert initialize_pools(instance) == []  # already there: nothing to do
    with dg.instance_for_test() as instance:  # no default limit configured: no pool row to create
        assert initialize_pools(instance) == []


def test_run_missing_only_trains_just_the_genes_not_done_yet(tmp_path):
    """``regnet run --missing-only`` after a run of 3 genes: the dataset is not rebuilt, only the
    other genes are trained, the summary is refreshed; a second call finds nothing to do."""
    from regnet_assets.defs.resources import DatasetResource
    from regnet_assets.operations.runner import run_graph

    config = {"ops": {"gene_models": {"config": {"epochs": 1}}}}
    with dg.instance_for_test() as instance:

        def run(**kwargs):
            return run_graph(
                instance,
                tmp_path,
                DatasetResource(preset="small"),
                device="cpu",
                select="group:dataset, group:models",
                run_config=config,
                echo=lambda _: None,
                progress=lambda _: None,
                **kwargs,
            )

        def latest(asset):
            return instance.get_asset_records([dg.AssetKey(asset)])[
                0
            ].asset_entry.last_materialization_storage_id

        assert run_graph(
            instance, tmp_path, DatasetResource(preset="small"), select="group:dataset", echo=lambda _: None
        ).success
        genes = register_genes(instance, tmp_path)
        assert len(genes) > 3 and run(genes=genes[:3]).genes_done == 3
        dataset, performance = latest("multiome"), latest("model_performance")

        resumed = run(missing_only=True)
        assert resumed.success and resumed.genes_done == resumed.genes_total == len(genes) - 3
        assert latest("multiome") == dataset and latest("model_performance") > performance
        done = instance.get_materialized_partitions(dg.AssetKey("gene_models"))
        assert done == set(genes)

        again = run(missing_only=True)
        assert again.success and again.runs == 0 and again.genes_total == 0


def test_waves_keep_multi_assets_whole_and_follow_the_dependencies():
    from regnet_assets.operations.runner import resolve_selection, waves

    graph = defs.resolve_asset_graph()
    selection = resolve_selection(None)
    order = waves(selection)
    assert set().union(*order) == selection and sum(map(len, order)) == len(selection)
    wave_of = {k: n for n, wave in enumerate(order) for k in wave}
    for a in ALL_ASSETS:
        assert len({wave_of[k] for k in a.keys}) == 1, a.node_def.name  # one step, one run
        for k in a.keys:
            assert all(wave_of[p] < wave_of[k] for p in graph.get(k).parent_keys - set(a.keys)), k
    assert order[0] == {dg.AssetKey("multiome")}


def test_a_run_that_fails_midway_marks_only_the_assets_that_ran(tmp_path, monkeypatch):
    """#16: ``peak_gene_links`` raises. The UI shows an asset *Failed* when the latest run that
    planned it failed without materializing it; that is ``peak_gene_links`` alone: what depends
    on it (``gene_tf_candidates``, ``genes``) was never planned, what does not (``metacells``)
    was still materialized. In one run per phase both dependants showed *Failed* as well."""
    from regnet_assets.defs.assets import dataset as dataset_assets
    from regnet_assets.defs.resources import DatasetResource
    from regnet_assets.operations.runner import run_graph

    def broken(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(dataset_assets, "peak_to_gene", broken)
    with dg.instance_for_test() as instance:
        summary = run_graph(
            instance, tmp_path, DatasetResource(preset="small"), select="group:dataset", echo=lambda _: None
        )
        assert [f.split(":")[0] for f in summary.failures] == ["asset 'peak_gene_links'"], summary.failures

        def shown_failed(name):
            key = dg.AssetKey(name)
            planned = instance.get_latest_planned_materialization_info(key)
            if planned is None:
                return False
            event = instance.get_latest_materialization_event(key)
            run = instance.get_run_by_id(planned.run_id)
            return run.status == dg.DagsterRunStatus.FAILURE and (event is None or event.run_id != run.run_id)

        assert [name for name in DATASET if shown_failed(name)] == ["peak_gene_links"]
        for name in ("gene_tf_candidates", "genes"):
            assert instance.get_latest_planned_materialization_info(dg.AssetKey(name)) is None, name
        assert instance.get_latest_materialization_event(dg.AssetKey("metacells")) is not None
