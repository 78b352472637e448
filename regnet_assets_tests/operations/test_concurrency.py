"""Concurrency: processes writing different gene partitions while others query the DuckDB views.

No reader may see a lock error, a partial file (a gene with the wrong row count or rows of two
versions) or lose rows, and at the end every partition holds its last version.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from regnet_assets.storage import query, read_table, refresh_catalog, write_table

WRITERS, GENES_PER_WRITER, ROUNDS, ROWS = 3, 5, 6, 4000
READERS = 2
MIN_QUERIES = 3  # each reader's queries while the writers are still writing
CHECK_SQL = (
    "SELECT gene, count(*) AS n, min(version) AS lo, max(version) AS hi, sum(row) AS total "
    "FROM predictions GROUP BY gene"
)


def _genes(writer: int) -> list[str]:
    return [f"W{writer}G{i}" for i in range(GENES_PER_WRITER)]


def _frame(gene: str, version: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"gene": gene, "version": version, "row": range(ROWS), "value": [float(version)] * ROWS}
    )


def _writer(root: str, writer: int, go, raced) -> int:
    """Write every round; the last one only once each reader has queried a few times during the
    writes (so the race is real however the machine schedules the processes)."""
    go.wait()
    for version in range(ROUNDS):
        if version == ROUNDS - 1 and not all(e.wait(120) for e in raced):
            raise TimeoutError("the readers made no queries while the writers ran")
        for gene in _genes(writer):
            write_table(Path(root), "predictions", _frame(gene, version), key=gene)
    return writer


def _reader(root: str, stop, go, raced) -> dict:
    """Query in a loop until told to stop; report queries made, errors and partial reads."""
    go.wait()
    stats = {"queries": 0, "errors": [], "partial": [], "max_genes": 0}
    expected_total = ROWS * (ROWS - 1) // 2
    while True:
        last = stop.is_set()
        try:
            table = query(Path(root), CHECK_SQL)
            stats["queries"] += 1
            if stats["queries"] == MIN_QUERIES:
                raced.set()
            bad = table[
                (table["n"] != ROWS) | (table["lo"] != table["hi"]) | (table["total"] != expected_total)
            ]
            stats["partial"] += bad.to_dict("records")
            stats["max_genes"] = max(stats["max_genes"], len(table))
        except Exception as error:  # noqa: BLE001 - every failure is a finding
            stats["errors"].append(f"{type(error).__name__}: {error}")
        if last:
            return stats


def _refresher(root: str, stop, go) -> int:
    """The one non-partitioned step that rewrites the catalog file, racing the readers."""
    go.wait()
    n = 0
    while not stop.is_set():
        refresh_catalog(Path(root))
        n += 1
        time.sleep(0.05)
    return n


def test_writers_and_readers_in_separate_processes(tmp_path):
    root = tmp_path / "storage"
    write_table(root, "predictions", _frame("W0G0", 0), key="W0G0")
    refresh_catalog(root)
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(WRITERS + READERS + 1) as pool:
        stop, go = manager.Event(), manager.Event()
        raced = [manager.Event() for _ in range(READERS)]
        readers = [pool.apply_async(_reader, (str(root), stop, go, e)) for e in raced]
        refresher = pool.apply_async(_refresher, (str(root), stop, go))
        writers = [pool.apply_async(_writer, (str(root), w, go, raced)) for w in range(WRITERS)]
        time.sleep(1.0)  # let the pool import its modules, then start everyone at once
        go.set()
        assert sorted(w.get(timeout=240) for w in writers) == list(range(WRITERS))
        stop.set()
        stats = [r.get(timeout=60) for r in readers]
        refreshes = refresher.get(timeout=60)

    for s in stats:
        assert s["errors"] == [], s["errors"][:3]
        assert s["partial"] == [], s["partial"][:3]
        assert s["queries"] >= MIN_QUERIES
    assert refreshes >= 1
    final = query(root, CHECK_SQL)
    assert len(final) == WRITERS * GENES_PER_WRITER
    assert (
        (final["n"] == ROWS).all() and (final["lo"] == ROUNDS - 1).all() and (final["hi"] == ROUNDS - 1).all()
    )
    assert not [p for p in root.rglob("*.tmp")]  # no killed writer here: no temp file may remain


def test_threads_of_one_process_query_at_once(tmp_path):
    """A notebook or server querying from several threads: connections must not share (and lock)
    one DuckDB instance's configuration."""
    for gene in ("A", "B"):
        write_table(tmp_path, "predictions", _frame(gene, 0), key=gene)
    refresh_catalog(tmp_path)
    with ThreadPoolExecutor(4) as pool:
        counts = list(
            pool.map(
                lambda _: query(tmp_path, "SELECT count(*) AS n FROM predictions")["n"].item(), range(40)
            )
        )
    assert counts == [2 * ROWS] * 40


# ------------------------------------------------------------------ Dagster runs in parallel

ONE_EPOCH = {"ops": {"gene_models": {"config": {"epochs": 1}}}}


@contextmanager
def _killed_on_failure():
    """On a failure (e.g. a run past its timeout) SIGKILL every child before the pool's exit:
    a worker still inside a Dagster run turns SIGTERM into a graceful interruption, so
    ``Pool.terminate()`` would wait on it until pytest-timeout fired (it did, on 2 busy cores)."""
    try:
        yield
    except BaseException:
        for child in mp.active_children():
            child.kill()
        raise


def _materialize_range(storage: str, home: str, genes: list[str], go) -> tuple[bool, str]:
    """A separate process: one batched range run of the model tables on the shared instance."""
    os.environ["DAGSTER_HOME"] = home
    import dagster as dg

    from regnet_assets_tests.conftest import materialize
    from regnet_assets_tests.corpus import MODEL_TABLES

    go.wait()
    try:
        with dg.DagsterInstance.get() as instance:
            result = materialize(
                MODEL_TABLES,
                Path(storage),
                instance,
                run_config=ONE_EPOCH,
                tags={
                    "dagster/asset_partition_range_start": genes[0],
                    "dagster/asset_partition_range_end": genes[-1],
                },
            )
    finally:
        # An in-process Dagster run leaves SIGTERM mapped to its SIGINT handling
        # (dagster._utils.interrupts), so this pool worker would survive Pool.terminate() and
        # the test would hang at teardown (it did, in CI). Give SIGTERM back its default.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    failures = [str(e.event_specific_data.error.message) for e in result.get_step_failure_events()]
    return result.success, "; ".join(failures)


def test_parallel_range_runs_on_one_instance_with_a_reader(tmp_path):
    """Two batched training runs of different genes at once, on one SQLite instance and one
    storage folder, while a third process queries the tables: both succeed, nothing is lost."""
    import dagster as dg

    from regnet_assets_tests.conftest import materialize
    from regnet_assets_tests.corpus import DATASET_GROUP, MODEL_TABLES

    storage, home = tmp_path / "storage", tmp_path / "home"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert materialize(DATASET_GROUP, storage, instance).success
        genes = read_table(storage, "genes").query("modelable")["gene"].tolist()
        instance.add_dynamic_partitions("genes", genes)
    refresh_catalog(storage)
    half = len(genes) // 2
    ranges = [genes[:half], genes[half:]]
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(3) as pool, _killed_on_failure():
        stop, go = manager.Event(), manager.Event()
        reader = pool.apply_async(_table_reader, (str(storage), stop, go))
        runs = [pool.apply_async(_materialize_range, (str(storage), str(home), r, go)) for r in ranges]
        time.sleep(1.0)
        go.set()
        outcomes = [r.get(timeout=600) for r in runs]
        stop.set()
        stats = reader.get(timeout=60)
        # every task is done: let the workers exit on the pool's sentinel instead of SIGTERM at
        # the with's exit, which a worker whose signal handling a run changed may ignore (a
        # worker then sat idle on the task queue until pytest-timeout, 2 of 5 tries here)
        pool.close()
        pool.join()

    assert outcomes == [(True, ""), (True, "")], outcomes
    assert stats["errors"] == [], stats["errors"][:3]
    assert stats["queries"] >= 1
    refresh_catalog(storage)
    rows = query(storage, "SELECT gene, count(*) AS n FROM gene_models GROUP BY gene")
    assert sorted(rows["gene"]) == sorted(genes) and (rows["n"] == 1).all()
    metacells = query(storage, "SELECT count(*) AS n FROM metacells")["n"].item()
    per_gene = query(storage, "SELECT gene, count(*) AS n FROM predictions GROUP BY gene")
    assert len(per_gene) == len(genes) and (per_gene["n"] == metacells).all()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for table in MODEL_TABLES:
            assert instance.get_materialized_partitions(dg.AssetKey(table)) == set(genes), table


def _table_reader(storage: str, stop, go) -> dict:
    go.wait()
    stats = {"queries": 0, "errors": []}
    while True:
        last = stop.is_set()
        try:
            query(Path(storage), "SELECT count(*) AS n FROM metacells")
            try:  # gene_models has no view until the first partition exists and a refresh ran
                query(
                    Path(storage),
                    "SELECT gene, count(*) AS n FROM read_parquet("
                    f"'{storage}/gene_models/**/*.parquet') GROUP BY gene",
                )
            except Exception as error:  # noqa: BLE001
                if "No files found" not in str(error):
                    raise
            stats["queries"] += 1
        except Exception as error:  # noqa: BLE001
            stats["errors"].append(f"{type(error).__name__}: {error}")
        if last:
            return stats
        time.sleep(0.05)
