"""The ``regnet`` command end to end on the small simulated dataset (tiny training settings).

``regnet run`` is started as a user would (the console script, a fresh process), then
``regnet sql`` must return rows from every table the README lists, ``regnet status`` must
report every asset materialized, and a failing gene must make ``regnet run`` exit non-zero
naming the asset and the gene.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import torch
import yaml

from regnet_assets.cli import main
from regnet_assets.science.models.config import TrainConfig
from regnet_assets.storage import query, read_table

README = Path(__file__).resolve().parents[2] / "README.md"
TINY = {
    "ops": {
        "gene_models": {"config": {"epochs": 1}},
        "tf_attribution": {"config": {"n_steps": 8}},
        "kpnn": {"config": {"epochs": 2, "n_folds": 2, "max_cells": 300}},
    }
}


def regnet(*args, env=None, timeout=600):
    exe = shutil.which("regnet") or str(Path(sys.executable).parent / "regnet")
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=timeout)


def readme_tables() -> list[str]:
    """The table names of the README's "Result tables" section."""
    text = README.read_text()
    section = text.split("## Result tables", 1)[1].split("\n## ", 1)[0]
    return sorted(set(re.findall(r"^\|\s*`([a-z_]+)`", section, flags=re.M)))


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    storage = tmp_path_factory.mktemp("cli") / "storage"
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "REGNET_STORAGE")}
    proc = regnet(
        "run",
        "--storage",
        str(storage),
        "--preset",
        "small",
        "--device",
        "cpu",
        "--config",
        json.dumps(TINY),
        env=env,
    )
    return storage, env, proc


def test_regnet_run_exits_0_with_progress_and_summary(ran):
    _, _, proc = ran
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"genes (\d+)/\1 .*ETA", proc.stderr)  # the progress bar reached the end
    assert re.search(r"genes (\d+)/\1 done", proc.stdout)  # the final summary
    assert "Sample query" in proc.stdout


def test_regnet_run_wires_the_pkn_from_the_learned_network(ran):
    """The run orders pkn_edges after regulatory_network (its declared dependency), so the
    default TF layer (tf_edges=auto) is the network's in-network edges, not the candidates."""
    storage, _, proc = ran
    assert proc.returncode == 0
    pkn = read_table(storage, "pkn_edges")
    layer = pkn[pkn["origin"] == "regulatory_network"]
    net = read_table(storage, "regulatory_network")
    net = net[net["in_network"]]
    assert "gene_tf_candidates" not in set(pkn["origin"]) and len(layer)
    # every in-network edge whose TF the signalling layers reach, and nothing else
    signalled = set(pkn.loc[pkn["origin"] != "regulatory_network", "source"])
    expected = {(g + "_gene", tf) for g, tf in zip(net["gene"], net["tf"]) if tf in signalled}
    assert set(zip(layer["source"], layer["target"])) == expected


def test_regnet_sql_returns_rows_from_every_table_the_readme_lists(ran, capsys):
    storage, _, proc = ran
    assert proc.returncode == 0
    tables = readme_tables()
    assert len(tables) >= 20 and "gene_models" in tables and "regulatory_network" in tables
    for table in tables:
        assert (
            main(["sql", "--storage", str(storage), "--format", "csv", f'SELECT * FROM "{table}" LIMIT 3'])
            == 0
        )
        out = capsys.readouterr().out.strip().splitlines()
        assert len(out) >= 2, f"{table}: no rows"  # header + at least one row


def test_regnet_sql_exports_csv_and_parquet(ran, tmp_path, capsys):
    storage, _, _ = ran
    sql = "SELECT gene, status FROM gene_models ORDER BY gene"
    assert (
        main(
            [
                "sql",
                "--storage",
                str(storage),
                "--format",
                "parquet",
                "--output",
                str(tmp_path / "g.parquet"),
                sql,
            ]
        )
        == 0
    )
    assert (
        main(["sql", "--storage", str(storage), "--format", "csv", "--output", str(tmp_path / "g.csv"), sql])
        == 0
    )
    parquet, csv = pd.read_parquet(tmp_path / "g.parquet"), pd.read_csv(tmp_path / "g.csv")
    assert len(parquet) > 0 and parquet["gene"].tolist() == csv["gene"].tolist()
    assert main(["sql", "--storage", str(storage), "--format", "parquet", sql]) == 2  # needs --output
    assert main(["sql", "--storage", str(storage), "DELETE FROM gene_models"]) == 1  # read-only


def test_regnet_status_reports_everything_materialized(ran, monkeypatch, capsys):
    storage, _, _ = ran
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["status", "--storage", str(storage)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"gene_models\s+materialized\s+(\d+)/\1 genes materialized, 0 stale, 0 failed", out)
    assert "0 stale, 0 missing, 0 failed" in out


def test_failing_gene_exits_non_zero_naming_asset_and_gene(ran):
    storage, env, _ = ran
    with dg.DagsterInstance.from_config(str(storage / "dagster_home")) as instance:
        instance.add_dynamic_partitions("genes", ["NOT_A_GENE"])
    proc = regnet(
        "run",
        "--storage",
        str(storage),
        "--preset",
        "small",
        "--device",
        "cpu",
        "--select",
        "group:models",
        "--genes",
        "NOT_A_GENE",
        "--config",
        json.dumps(TINY),
        env=env,
    )
    assert proc.returncode == 1
    assert "gene_models" in proc.stderr and "NOT_A_GENE" in proc.stderr
    status = regnet("status", "--storage", str(storage), env=env)
    assert status.returncode == 0 and "NOT_A_GENE" not in status.stderr
    # a run of only unknown genes writes nothing, so status reports that partition as failed
    assert re.search(r"gene_models\s+failed\s+.*\(failed: NOT_A_GENE\)", status.stdout), status.stdout

    unknown = regnet("run", "--storage", str(storage), "--select", "group:models", "--genes", "NOPE", env=env)
    assert unknown.returncode == 2 and "NOPE" in unknown.stderr


def test_regnet_export_writes_every_readme_table_equal_to_its_duckdb_view(ran, tmp_path, monkeypatch, capsys):
    storage, _, proc = ran
    assert proc.returncode == 0
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    out = tmp_path / "results"
    assert main(["export", str(out), "--storage", str(storage)]) == 0
    readme = (out / "README.md").read_text()
    for table in readme_tables():
        view = query(storage, f'SELECT * FROM "{table}"')
        exported = pd.read_parquet(out / "tables" / f"{table}.parquet")
        pd.testing.assert_frame_equal(exported, view, check_dtype=False, obj=table)
        csv = pd.read_csv(out / "tables" / f"{table}.csv")
        assert list(csv.columns) == list(view.columns) and len(csv) == len(view), table
        assert f"| `{table}` | {len(view)} |" in readme, table  # listed with its row count
    figures = sorted(p.name for p in (storage / "figures").glob("*.png"))
    assert (
        sorted(p.name for p in (out / "figures").iterdir()) == figures
        and "umap_tf_activity_batch.png" in figures
    )
    assert all(f"`figures/{name}` | made by `" in readme for name in figures)
    genes = query(storage, "SELECT gene FROM gene_models WHERE status = 'trained'")["gene"]
    checkpoints = sorted(out.glob("models/gene=*/model.pt"))
    assert len(checkpoints) == len(genes) > 0
    payload = torch.load(checkpoints[0], weights_only=True)  # opens without regnet
    assert payload["summary"]["gene"] in set(genes) and payload["state"]
    provenance = yaml.safe_load((out / "run_config.yaml").read_text())
    assert provenance["dataset"]["preset"] == "small"
    trained_by = [r for r in provenance["runs"] if "gene_models" in r["assets"]]
    partitions = query(storage, "SELECT gene FROM gene_models")["gene"]  # trained and skipped genes
    assert sorted(g for r in trained_by for g in r["genes"]) == sorted(partitions)
    assert all(r["n_genes"] == len(r["genes"]) for r in trained_by)
    assert all(
        r["config"]["gene_models"]["epochs"] == 1 and r["config"]["gene_models"]["lr"] == TrainConfig().lr
        for r in trained_by
    )  # given (epochs) and default (lr) settings


def test_regnet_export_refuses_a_non_empty_folder_unless_forced(ran, tmp_path, monkeypatch, capsys):
    storage, _, _ = ran
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    out = tmp_path / "results"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert main(["export", str(out), "--storage", str(storage)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert main(["export", str(storage / "export"), "--storage", str(storage)]) == 2  # inside the storage
    assert not (storage / "export").exists()
    assert main(["export", str(out), "--storage", str(storage), "--force"]) == 0
    assert not (out / "mine.txt").exists() and (out / "README.md").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no staging folder left behind


def _rna_only(storage: Path, tmp_path: Path) -> Path:
    """A copy of the run's dataset without its ATAC modality."""
    import mudata

    from regnet_assets.science.dataset.reading import quiet_mudata, read_multiome

    good = read_multiome(storage / "dataset" / "simulated.h5mu")
    broken = tmp_path / "broken.h5mu"
    with quiet_mudata():
        mudata.MuData({"rna": good["rna"]}).write(str(broken))
    return broken


def _instance_state(home: str):
    """Every run with its status and every asset's latest materialization and planned run (what
    the UI's status reads): equal before and after means nothing turned red or moved."""
    with dg.DagsterInstance.from_config(home) as instance:
        runs = [(r.run_id, r.status) for r in instance.get_runs()]
        keys = instance.get_asset_keys()
        events = {k.to_user_string(): instance.get_latest_materialization_event(k) for k in keys}
        latest = {k: (e.run_id, e.timestamp) for k, e in events.items() if e is not None}
        planned = {k.to_user_string(): instance.get_latest_planned_materialization_info(k) for k in keys}
    return runs, latest, planned


def test_a_broken_dataset_is_refused_before_any_run_and_changes_no_asset(ran, tmp_path):
    """#16: a file that breaks the contract fails in seconds, launches nothing, turns nothing red."""
    storage, env, _ = ran
    broken = _rna_only(storage, tmp_path)  # no ATAC modality
    home = str(storage / "dagster_home")

    def state():
        return _instance_state(home)

    before = state()
    proc = regnet("run", "--storage", str(storage), "--dataset", str(broken), env=env, timeout=120)
    assert proc.returncode == 2
    assert "mod['atac']" in proc.stderr and "No run was launched" in proc.stderr, proc.stderr
    assert state() == before  # no new (failed) run, no asset's last materialization moved


def test_a_broken_dataset_is_refused_at_the_uis_launch_and_changes_no_asset(ran, tmp_path):
    """#16: the launch the UI's Materialize button sends (GraphQL, planned in a code server), with
    ``dataset_config.path`` set to a file that breaks the contract, is refused with the field
    named; no run is recorded and no asset's status changes. A valid path passes the same check."""
    from dagster_graphql.client.query import LAUNCH_PIPELINE_EXECUTION_MUTATION
    from dagster_graphql.test.utils import (
        define_out_of_process_context,
        execute_dagster_graphql,
        infer_job_selector,
    )

    from regnet_assets.defs.definitions import defs

    storage, _, _ = ran
    broken = _rna_only(storage, tmp_path)
    home = str(storage / "dagster_home")

    def config(path):
        return {"resources": {"dataset_config": {"config": {"path": str(path)}}}}

    job = defs.resolve_implicit_global_asset_job_def()
    assert dg.validate_run_config(job, config(storage / "dataset" / "simulated.h5mu"))
    before = _instance_state(home)
    with dg.DagsterInstance.from_config(home) as instance:
        with define_out_of_process_context(
            str(README.parent / "regnet_assets" / "definitions.py"), "defs", instance
        ) as ctx:
            selector = infer_job_selector(ctx, "__ASSET_JOB", asset_selection=[{"path": ["multiome"]}])
            params = {"selector": selector, "runConfigData": config(broken)}
            launched = execute_dagster_graphql(
                ctx, LAUNCH_PIPELINE_EXECUTION_MUTATION, variables={"executionParams": params}
            ).data["launchPipelineExecution"]
    assert launched["__typename"] == "PythonError", launched
    message = launched["message"]
    assert "DagsterInvalidConfigError" in message and "dataset_config:config:path" in message, message
    assert "mod['atac']: expected a 'atac' modality; found modalities ['rna']" in message, message
    assert _instance_state(home) == before  # no run, nothing planned, nothing moved
