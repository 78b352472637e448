"""``export_results`` on a hand-made storage folder: the README documents what it was told, a
failure half-way leaves the old folder as it was and no staging folder behind, and an empty
storage is refused. (The whole graph's export is tested in test_cli.py.)"""

import os
import subprocess

import pandas as pd
import pytest

from regnet_assets.storage import export as export_module
from regnet_assets.storage import write_table
from regnet_assets.storage.export import ExportError, TableInfo, export_results


@pytest.fixture
def storage(tmp_path):
    root = tmp_path / "storage"
    write_table(root, "scores", pd.DataFrame({"gene": ["A", "B"], "score": [0.5, float("nan")]}))
    for gene in ("A", "B"):
        write_table(root, "per_gene", pd.DataFrame({"gene": [gene], "n": [1]}), key=gene)
    (root / "figures").mkdir()
    (root / "figures" / "plot.png").write_bytes(b"\x89PNG fake")
    (root / "models" / "gene=A").mkdir(parents=True)
    (root / "models" / "gene=A" / "model.pt").write_bytes(b"weights")
    (root / "models" / "gene=A" / ".model.pt.123.tmp").write_bytes(b"half")  # a write in progress
    return root


def test_export_writes_tables_figures_models_and_a_readme(storage, tmp_path):
    out = tmp_path / "out"
    done = export_results(
        storage,
        out,
        tables={"scores": TableInfo("Scores per gene.", "models", False, {"score": "valid Spearman"})},
        figures={"plot": "made by `scores`"},
        provenance={"runs": []},
    )
    assert done == {"tables": {"per_gene": 2, "scores": 2}, "figures": ["figures/plot.png"], "models": 1}
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "tables" / "scores.parquet"),
        pd.DataFrame({"gene": ["A", "B"], "score": [0.5, float("nan")]}),
    )
    assert pd.read_csv(out / "tables" / "per_gene.csv")["gene"].tolist() == ["A", "B"]
    assert sorted(p.name for p in (out / "models" / "gene=A").iterdir()) == ["model.pt"]
    readme = (out / "README.md").read_text()
    assert "| `scores` | 2 | models |  | Scores per gene. |" in readme
    assert (
        "| `score` | DOUBLE | valid Spearman |" in readme
        and "| `figures/plot.png` | made by `scores` |" in readme
    )


def test_a_failure_half_way_leaves_the_old_folder_and_no_staging(storage, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous export")

    def broken_copy(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export_module.shutil, "copy2", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        export_results(storage, out, force=True)
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "storage"]


def test_empty_storage_and_bad_destinations_are_refused(tmp_path, storage):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="no result tables"):
        export_results(tmp_path / "empty", tmp_path / "out")
    assert list((tmp_path / "empty").iterdir()) == []  # nothing written, not even a catalog
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="not a folder"):
        export_results(storage, tmp_path / "file")
    with pytest.raises(ExportError, match="overlaps"):
        export_results(storage, storage.parent)
    assert not (tmp_path / "out").exists()


def _dead_pid() -> int:
    process = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    return int(process.stdout)


def test_leftovers_of_a_killed_export_are_cleared_and_a_live_ones_kept(storage, tmp_path):
    dead, out = _dead_pid(), tmp_path / "out"
    (tmp_path / f".out.partial-{dead}-abc").mkdir()  # killed while writing
    (tmp_path / f".out.old-{dead}").mkdir()  # killed after moving the old folder aside
    (tmp_path / f".out.old-{dead}" / "old.txt").write_text("previous export")
    live = tmp_path / f".out.partial-{os.getpid()}-xyz"  # an export still running
    live.mkdir()
    with pytest.raises(ExportError, match="not empty"):  # the old folder is back in place
        export_results(storage, out)
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "out", "storage"]
    export_results(storage, out, force=True)
    assert (out / "README.md").exists() and not (out / "old.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "out", "storage"]
