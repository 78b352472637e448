"""Crash and kill: SIGKILL a table writer and a batched training run at several points, then
check that every Parquet file and checkpoint on disk is whole, that no temporary file shows in
the DuckDB views, and that a re-run trains the missing genes only.

The victims are real processes running this module (``python -m regnet_assets_tests.operations.test_crash_kill
write|train ...``), killed with SIGKILL at seeded random delays after markers they print.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from regnet_assets.storage import query, refresh_catalog

EPOCHS = 2
BATCH = 4
PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")


# ============================================================================ victims


def _slow_parquet_writes(pause: float = 0.02) -> None:
    """Write each Parquet file in 8 row groups with a pause between them, so a kill lands inside
    a write (a half-written temporary file) rather than only between writes."""
    original = pq.write_table

    def write_table(table, where, **kwargs):
        step = max(1, table.num_rows // 8)
        with pq.ParquetWriter(where, table.schema) as writer:
            for start in range(0, table.num_rows, step):
                writer.write_table(table.slice(start, step))
                time.sleep(pause)

    write_table.original = original
    pq.write_table = write_table


def victim_write(root: Path) -> None:
    """Rewrite partitions of ``predictions`` (and the catalog) forever."""
    import pandas as pd

    from regnet_assets.storage import write_table

    _slow_parquet_writes()
    i = 0
    while True:
        gene, n = f"G{i % 6}", 1000 * (1 + i % 5)
        write_table(root, "predictions", pd.DataFrame({"n": n, "i": i, "row": range(n)}), key=gene)
        if i % 7 == 0:
            refresh_catalog(root)
        if i == 0:
            print("ready", flush=True)
        i += 1


def complete_genes(instance, tables) -> set[str]:
    import dagster as dg

    done = [instance.get_materialized_partitions(dg.AssetKey(t)) for t in tables]
    return set.intersection(*map(set, done)) if done else set()


def victim_train(storage: Path) -> None:
    """Train the genes the instance does not have yet, in contiguous batched range runs."""
    import dagster as dg

    from regnet_assets.defs.instance import contiguous_batches
    from regnet_assets_tests.conftest import materialize
    from regnet_assets_tests.corpus import MODEL_TABLES

    with dg.DagsterInstance.get() as instance:
        order = instance.get_dynamic_partitions("genes")
        missing = set(order) - complete_genes(instance, MODEL_TABLES)
        for batch in contiguous_batches(order, missing, BATCH):
            print("RUN " + json.dumps(batch), flush=True)
            result = materialize(
                MODEL_TABLES,
                storage,
                instance,
                run_config={
                    "ops": {"gene_models": {"config": {"epochs": EPOCHS}}},
                    "loggers": {"console": {"config": {"log_level": "ERROR"}}},
                },
                tags={
                    "dagster/asset_partition_range_start": batch[0],
                    "dagster/asset_partition_range_end": batch[-1],
                },
            )
            assert result.success
    print("DONE", flush=True)


# ============================================================================ harness


class Victim:
    def __init__(self, mode: str, storage: Path, home: Path | None = None):
        env = {**os.environ, "PYTHONPATH": str(PROJECT)}
        if home is not None:
            env["DAGSTER_HOME"] = str(home)
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "regnet_assets_tests.operations.test_crash_kill", mode, str(storage)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=PROJECT,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def poll_lines(self) -> list[str]:
        return self.lines

    def wait_for(self, condition, timeout: float = 180) -> bool:
        """Poll until ``condition()`` or the victim exits; True when the condition held."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll_lines()
            if condition():
                return True
            if self.proc.poll() is not None:
                self.poll_lines()
                return condition()
            time.sleep(0.005)
        raise TimeoutError(f"victim stuck; output {self.lines[-5:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.reader.join(timeout=10)

    def runs(self) -> list[list[str]]:
        return [json.loads(line[4:]) for line in self.lines if line.startswith("RUN ")]


def _temp_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*.tmp")}


def _assert_views_hide_temp_files(root: Path, table: str, expected_rows: int) -> None:
    refresh_catalog(root)
    assert query(root, f"SELECT count(*) AS n FROM {table}")["n"].item() == expected_rows
    files = query(
        root, f"SELECT DISTINCT filename FROM read_parquet('{root}/{table}/**/*.parquet', filename=true)"
    )["filename"]
    assert all(f.endswith("/part.parquet") for f in files), list(files)


# ============================================================================ tests


def test_sigkill_during_table_writes_leaves_only_whole_files(tmp_path):
    root = tmp_path / "storage"
    rng = random.Random(20261123)
    torn, delays = 0, []
    for _ in range(6):
        before = _temp_files(root) if root.exists() else set()
        victim = Victim("write", root)
        assert victim.wait_for(lambda: "ready" in victim.lines, timeout=120)
        delays.append(round(rng.uniform(0.05, 0.8), 3))
        time.sleep(delays[-1])
        victim.kill()
        torn += len(_temp_files(root) - before)

        rows = 0
        for path in sorted((root / "predictions").glob("**/*.parquet")):
            table = pq.read_table(path).to_pandas()  # raises on a torn file
            assert len(table) == table["n"].iloc[0] and table["i"].nunique() == 1, path
            assert sorted(table["row"]) == list(range(len(table))), path
            rows += len(table)
        assert query(root, "SELECT count(*) AS n FROM predictions")["n"].item() == rows  # old catalog opens
        _assert_views_hide_temp_files(root, "predictions", rows)
    assert torn >= 1, f"no kill landed inside a write (delays {delays})"


@pytest.fixture(scope="module")
def training_setup(tmp_path_factory):
    """Dataset group materialized and the modelable genes registered on a SQLite instance."""
    import dagster as dg

    from regnet_assets.storage import read_table
    from regnet_assets_tests.conftest import materialize
    from regnet_assets_tests.corpus import DATASET_GROUP

    base = tmp_path_factory.mktemp("kill")
    storage, home = base / "storage", base / "home"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert materialize(DATASET_GROUP, storage, instance).success
        genes = read_table(storage, "genes").query("modelable")["gene"].tolist()
        instance.add_dynamic_partitions("genes", genes)
    return storage, home, genes


def _assert_model_files_whole(storage: Path) -> None:
    from regnet_assets.science.models.checkpoint import load_gene_model_file

    metacells = query(storage, "SELECT count(*) AS n FROM metacells")["n"].item()
    expected = {"gene_models": 1, "gene_correlation": 1, "training_history": EPOCHS, "predictions": metacells}
    for table, n in expected.items():
        files = sorted((storage / table).glob("**/*.parquet"))
        for path in files:
            frame = pq.read_table(path).to_pandas()
            assert len(frame) == n, (path, len(frame))
            assert frame["gene"].nunique() == 1 and path.parent.name == f"gene={frame['gene'].iloc[0]}"
        if files:
            _assert_views_hide_temp_files(storage, table, n * len(files))
    for path in sorted((storage / "models").glob("**/model.pt")):
        module, meta = load_gene_model_file(path)  # raises on a torn checkpoint
        assert meta


def test_sigkill_during_batched_training_then_rerun_trains_missing_genes_only(training_setup):
    import dagster as dg

    from regnet_assets_tests.conftest import tree_digest
    from regnet_assets_tests.corpus import MODEL_TABLES

    storage, home, genes = training_setup
    rng = random.Random(7)
    checkpoints = lambda: len(list((storage / "models").glob("**/model.pt")))  # noqa: E731

    def after_second_run(v):  # the first batch is complete; kill somewhere in the second
        v.wait_for(lambda: len(v.runs()) >= 2)
        time.sleep(rng.uniform(0.0, 1.0))

    def on_first_table_file(v):  # while a batch writes its tables
        start = len(list(storage.glob("predictions/**/*.parquet")))
        v.wait_for(lambda: len(list(storage.glob("predictions/**/*.parquet"))) > start)
        time.sleep(rng.uniform(0.0, 0.05))

    def after_a_checkpoint(v):  # checkpoints are written before the tables
        start = checkpoints()
        v.wait_for(lambda: checkpoints() > start)

    def mid_run(v):
        v.wait_for(lambda: len(v.runs()) >= 1)
        time.sleep(rng.uniform(0.1, 1.5))

    killed = []
    for plan in (after_second_run, on_first_table_file, after_a_checkpoint, mid_run):
        victim = Victim("train", storage, home)
        plan(victim)
        finished = victim.proc.poll() is not None
        victim.kill()
        killed.append((plan.__name__, victim.runs(), "finished" if finished else "killed"))
        _assert_model_files_whole(storage)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        complete = complete_genes(instance, MODEL_TABLES)
    assert len(complete) >= BATCH, killed  # the first batch survived the kills
    missing = set(genes) - complete
    kept = {k: v for k, v in tree_digest(storage).items() if any(f"gene={g}/" in k for g in complete)}

    final = Victim("train", storage, home)
    assert final.wait_for(lambda: "DONE" in final.lines, timeout=300), final.lines
    final.kill()

    rerun = [g for batch in final.runs() for g in batch]
    assert sorted(rerun) == sorted(missing), (killed, final.runs())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert complete_genes(instance, MODEL_TABLES) == set(genes)
    after = tree_digest(storage)
    assert {k: after[k] for k in kept} == kept  # complete genes were not retrained
    _assert_model_files_whole(storage)
    for table in MODEL_TABLES:
        assert len(list((storage / table).glob("gene=*/part.parquet"))) == len(genes), table


if __name__ == "__main__":
    mode, where = sys.argv[1], Path(sys.argv[2])
    {"write": victim_write, "train": victim_train}[mode](where)
