"""Names and paths: hostile gene, table and SQL input cannot escape the storage folder or change
a table, through partition registration and runs, the storage functions, and ``regnet sql``.
The UI binds 127.0.0.1 by default.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from regnet_assets import cli
from regnet_assets.science.dataset.names import _check_names
from regnet_assets.science.dataset.reading import DatasetError
from regnet_assets.storage import query, read_table, refresh_catalog, storage_root, validate_key, write_table
from regnet_assets.storage.catalog import ReadOnlyQueryError
from regnet_assets_tests.conftest import materialize, tree_digest
from regnet_assets_tests.corpus import DATASET_GROUP, MODEL_TABLES

TRAVERSAL = "../../x"
INJECTION = "x'; DROP TABLE predictions; --"
ONE_EPOCH = {"ops": {"gene_models": {"config": {"epochs": 1}}}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A storage folder (inside its own parent, to see anything written beside it) with the
    dataset group and one trained gene, and the in-memory instance that registered it."""
    storage = tmp_path_factory.mktemp("parent") / "deep" / "storage"
    storage.mkdir(parents=True)
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize(DATASET_GROUP, storage, instance).success
        gene = read_table(storage, "genes").query("modelable")["gene"].iloc[0]
        instance.add_dynamic_partitions("genes", [gene])
        assert materialize(MODEL_TABLES, storage, instance, partition_key=gene, run_config=ONE_EPOCH).success
        refresh_catalog(storage)
        yield storage, instance, gene


def _outside(storage: Path) -> set[Path]:
    """Everything under the grandparent of the storage folder but outside it."""
    top = storage.parent.parent
    return {p for p in top.rglob("*") if storage not in p.parents and p != storage}


@pytest.mark.parametrize("key", [TRAVERSAL, INJECTION])
def test_hostile_gene_partition_cannot_escape_or_change_a_table(trained, key):
    """Dagster accepts any dynamic partition key (a user can add one in the UI); a run of it
    fails naming the gene, and writes nothing inside or outside the storage folder."""
    storage, instance, gene = trained
    before, outside = tree_digest(storage), _outside(storage)
    rows = query(storage, "SELECT count(*) AS n FROM predictions")["n"].item()
    instance.add_dynamic_partitions("genes", [key])

    result = materialize(MODEL_TABLES, storage, instance, partition_key=key, run_config=ONE_EPOCH)

    assert not result.success
    assert tree_digest(storage) == before
    assert _outside(storage) == outside
    assert query(storage, "SELECT count(*) AS n FROM predictions")["n"].item() == rows
    assert query(storage, "SELECT DISTINCT gene FROM predictions")["gene"].tolist() == [gene]


def test_run_of_only_unknown_genes_names_them(trained):
    storage, instance, _ = trained
    instance.add_dynamic_partitions("genes", ["NOT_A_GENE_EITHER"])
    result = materialize(
        MODEL_TABLES, storage, instance, partition_key="NOT_A_GENE_EITHER", run_config=ONE_EPOCH
    )
    error = result.get_step_failure_events()[0].event_specific_data.error
    assert "NOT_A_GENE_EITHER" in (error.cause or error).message


@pytest.mark.parametrize("manager", ["parquet", "pickle"])
def test_io_managers_refuse_a_traversal_partition_key(tmp_path, manager):
    from regnet_assets.defs.io_managers import ParquetIOManager, PickleIOManager
    from regnet_assets.defs.partitions import genes_partitions
    from regnet_assets.defs.resources import StorageResource

    root = tmp_path / "storage"
    storage = StorageResource(root=str(root))
    io = (ParquetIOManager if manager == "parquet" else PickleIOManager)(storage=storage)
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("genes", [TRAVERSAL])
        context = dg.build_output_context(
            asset_key="predictions",
            partition_key=TRAVERSAL,
            asset_partitions_def=genes_partitions,
            instance=instance,
        )
        with pytest.raises(ValueError, match=r"\.\."):
            io.handle_output(context, pd.DataFrame({"gene": [TRAVERSAL], "value": [1.0]}))
    assert not any(p for p in tmp_path.rglob("*") if p.is_file())


def test_storage_functions_refuse_traversal_and_quote_sql(tmp_path):
    root = tmp_path / "storage"
    write_table(root, "predictions", pd.DataFrame({"value": [1.0, 2.0]}), key="IL2")
    with pytest.raises(ValueError, match=r"\.\."):
        write_table(root, "predictions", pd.DataFrame({"value": [0.0]}), key=TRAVERSAL)
    with pytest.raises(ValueError):
        read_table(root, "predictions", [TRAVERSAL])
    assert not (tmp_path / "x").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["storage"]

    # A quote is harmless in a folder name; the value travels as data, never as SQL.
    write_table(root, "predictions", pd.DataFrame({"value": [3.0]}), key=INJECTION)
    refresh_catalog(root)
    table = query(root, "SELECT gene, value FROM predictions ORDER BY value")
    assert table["gene"].tolist() == ["IL2", "IL2", INJECTION]
    assert read_table(root, "predictions", [INJECTION])["value"].tolist() == [3.0]
    escaped = INJECTION.replace("'", "''")
    assert query(root, f"SELECT count(*) AS n FROM predictions WHERE gene = '{escaped}'")["n"].item() == 1


@pytest.mark.parametrize("key", ["IL*", "I?2", "IL[27]", "IL{2,7}"])
def test_glob_characters_in_keys_are_refused(tmp_path, key):
    """DuckDB reads every path as a glob: 'IL*' would read IL2's and IL7's rows as its own."""
    with pytest.raises(ValueError, match="must not contain"):
        write_table(tmp_path, "predictions", pd.DataFrame({"value": [1.0]}), key=key)
    assert not any(tmp_path.rglob("*.parquet"))


def test_storage_folder_with_glob_characters_is_refused(tmp_path):
    with pytest.raises(ValueError, match="glob characters"):
        storage_root(tmp_path / "run[1]")


@pytest.mark.parametrize(
    "name",
    [
        "IL2",
        "HLA-A",
        "C1orf112",
        "MT-CO1",
        "RP11-34P13.3",
        "Pou5f1::Sox2",
        "TFAP2A(var.2)",
        "Γ1",
        TRAVERSAL,
        INJECTION,
        "IL*",
        "a=b",
        ".hidden",
        "IL\u200b2",
        "IL\n2",
        "CAFE\u0301",
        "a\\b",
        "x\x00y",
    ],
)
def test_every_name_the_dataset_accepts_is_a_valid_partition_key(name):
    """The dataset validator and the storage agree: no accepted gene fails later at a write."""
    try:
        _check_names([name], "mod['rna'].var_names", "gene names")
    except DatasetError:
        return
    assert validate_key(name) == name


def test_odd_folder_names_never_become_views(tmp_path):
    write_table(tmp_path, "predictions", pd.DataFrame({"value": [1.0]}), key="IL2")
    for name in ['x"; DROP VIEW predictions; --', "Predictions", "1table"]:
        folder = tmp_path / name / "gene=A"
        folder.mkdir(parents=True)
        write_table(tmp_path, "predictions", pd.DataFrame({"value": [2.0]}), key="A")
        (folder / "part.parquet").write_bytes(
            (tmp_path / "predictions" / "gene=A" / "part.parquet").read_bytes()
        )
    assert refresh_catalog(tmp_path) == ["predictions"]
    assert query(tmp_path, "SELECT count(*) AS n FROM predictions")["n"].item() == 2


def _hostile(storage: Path, outside: Path) -> list[str]:
    part = storage / "predictions" / "gene=A" / "part.parquet"
    return [
        "DROP VIEW predictions",
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO predictions VALUES (1)",
        f"COPY (SELECT 1 AS gene) TO '{part}' (FORMAT parquet)",
        f"COPY (SELECT 1) TO '{outside / 'out.csv'}'",
        f"COPY (SELECT 1) TO '{storage / 'inside.csv'}'",
        f"EXPORT DATABASE '{outside / 'export'}'",
        f"ATTACH '{outside / 'new.duckdb'}' AS n",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        f"SET profiling_output = '{outside / 'profile.txt'}'",
        "CALL pragma_version()",
        "PRAGMA version",
        "SELECT 1; DROP VIEW predictions",
        INJECTION,
        f"SELECT * FROM read_csv('{outside / 'secret.csv'}')",
        f"SELECT * FROM read_text('{outside / 'secret.csv'}')",
        f"SELECT * FROM read_parquet('{storage}/../secret.parquet')",
        "SELECT * FROM glob('/etc/*')",
    ]


def test_sql_path_is_read_only_and_sandboxed(trained, tmp_path, capsys):
    """Through ``query`` and ``regnet sql``: writes, file output, attaching, extensions, setting
    changes and reads outside the storage folder are all refused; reading the views and Parquet
    files inside the storage folder still works."""
    storage, _, gene = trained
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("a\n1\n")
    pd.DataFrame({"a": [1]}).to_parquet(storage.parent / "secret.parquet")
    before, around = tree_digest(storage), set(outside.iterdir())
    for sql in _hostile(storage, outside):
        with pytest.raises(duckdb.Error):
            query(storage, sql)
        assert cli.main(["sql", "--storage", str(storage), sql]) == 1, sql
        assert "SQL error" in capsys.readouterr().err
    assert tree_digest(storage) == before
    assert set(outside.iterdir()) == around

    with pytest.raises(ReadOnlyQueryError, match="COPY"):
        query(storage, f"COPY (SELECT 1) TO '{outside / 'x.csv'}'")
    assert query(storage, "SELECT DISTINCT gene FROM predictions")["gene"].tolist() == [gene]
    files = query(storage, f"SELECT count(*) AS n FROM read_parquet('{storage}/predictions/**/*.parquet')")
    assert files["n"].item() > 0
    assert cli.main(["sql", "--storage", str(storage), "SELECT count(*) AS n FROM metacells"]) == 0


def test_ui_binds_localhost_by_default(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda command, **kw: calls.append(command) or 0)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert cli.main(["ui", "--storage", str(tmp_path / "storage")]) == 0
    command = calls[0]
    assert command[command.index("-h") + 1] == "127.0.0.1"
    for path in ["Makefile", "workspace.yaml", "dagster.yaml", "README.md", "regnet_assets/cli.py"]:
        text = (cli.PROJECT_ROOT / path).read_text()
        assert "0.0.0.0" not in text, path
