"""Atomic Parquet storage, key validation and the read-only DuckDB catalog."""

from __future__ import annotations

import multiprocessing as mp

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from regnet_assets.storage import parquet, query, read_table, refresh_catalog, write_table


def frame(gene: str, n: int) -> pd.DataFrame:
    return pd.DataFrame({"gene": gene, "metacell": [f"mc{i}" for i in range(n)], "value": range(n)})


def test_partition_writes_read_back_in_one_scan(tmp_path):
    for i, gene in enumerate(["A", "B", "HLA-A"]):
        write_table(tmp_path, "predictions", frame(gene, 3 + i), key=gene)
    table = read_table(tmp_path, "predictions")
    assert sorted(table["gene"].unique()) == ["A", "B", "HLA-A"]
    assert len(table) == 3 + 4 + 5
    assert len(read_table(tmp_path, "predictions", ["B"])) == 4
    assert (tmp_path / "predictions" / "gene=HLA-A" / "part.parquet").exists()


def test_partition_rows_must_match_their_key(tmp_path):
    with pytest.raises(ValueError, match="other genes"):
        write_table(tmp_path, "predictions", frame("A", 2), key="B")


@pytest.mark.parametrize("key", ["a/b", "..", "../../x", "x\x00y", "x\ny", "", ".hidden", "g=1", "a\\b"])
def test_bad_partition_keys_are_rejected_before_touching_disk(tmp_path, key):
    with pytest.raises(ValueError):
        write_table(tmp_path, "predictions", frame("A", 1).assign(gene=key), key=key)
    assert not any(tmp_path.rglob("*"))


@pytest.mark.parametrize("name", ["Predictions", "x; DROP TABLE y", "../t", "1table", ""])
def test_bad_table_names_are_rejected(tmp_path, name):
    with pytest.raises(ValueError, match="table name"):
        write_table(tmp_path, name, frame("A", 1))


def test_crash_mid_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    write_table(tmp_path, "predictions", frame("A", 5), key="A")
    path = parquet.partition_path(tmp_path, "predictions", "A")
    before = path.read_bytes()

    def torn_write(table, where):
        with open(where, "wb") as handle:
            handle.write(b"PAR1 half a file")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(pq, "write_table", torn_write)
    with pytest.raises(KeyboardInterrupt):
        write_table(tmp_path, "predictions", frame("A", 50), key="A")
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["part.parquet"]


def _write_genes(args):
    root, genes = args
    for gene in genes:
        for _ in range(3):  # rewrite each partition a few times to overlap with the others
            write_table(root, "predictions", frame(gene, 20), key=gene)
    return len(genes)


def test_concurrent_writers_of_different_partitions_lose_nothing(tmp_path):
    batches = [[f"G{p}_{i}" for i in range(6)] for p in range(4)]
    with mp.get_context("spawn").Pool(4) as pool:
        assert sum(pool.map(_write_genes, [(tmp_path, b) for b in batches])) == 24
    table = read_table(tmp_path, "predictions")
    assert len(table) == 24 * 20
    assert table.groupby("gene").size().eq(20).all()


def test_catalog_views_are_read_only_and_see_new_partitions(tmp_path):
    write_table(tmp_path, "metacells", pd.DataFrame({"metacell": ["a", "b"], "split": ["train", "valid"]}))
    write_table(tmp_path, "predictions", frame("A", 2), key="A")
    assert refresh_catalog(tmp_path) == ["metacells", "predictions"]
    write_table(tmp_path, "predictions", frame("B", 3), key="B")  # after the refresh
    assert query(tmp_path, "SELECT count(*) AS n FROM predictions")["n"].item() == 5
    with pytest.raises(duckdb.Error):
        query(tmp_path, "DROP VIEW predictions")
    assert query(tmp_path, "SELECT count(*) AS n FROM predictions")["n"].item() == 5
