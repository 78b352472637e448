"""The instance and deployment configurations load and validate against Dagster's schemas.

No cluster is needed: the YAML is parsed, the instance files are validated by Dagster's own
instance schema and by each configured class's ``config_type()`` (the K8s run launcher,
Postgres storage), the run config by the ``k8s_job_executor`` schema, and the k8s code location
loads as a ``Definitions``.
"""

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes.config_class import class_from_code_pointer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
INSTANCE_FILES = [
    ROOT / "dagster.yaml",
    DEPLOY / "dagster.postgres.yaml",
    DEPLOY / "k8s" / "dagster-instance.yaml",
]


def _validate_class(section: dict) -> None:
    cls = class_from_code_pointer(section["module"], section["class"])
    result = process_config(cls.config_type(), section.get("config", {}))
    assert result.success, [e.message for e in result.errors]


@pytest.mark.parametrize("path", INSTANCE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_instance_config_validates(path, tmp_path, monkeypatch):
    for name in ("REGNET_POSTGRES_URL", "DAGSTER_PG_HOST", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(name, "postgresql://u:p@127.0.0.1:5432/db" if name.endswith("URL") else "x")
    shutil.copy(path, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # raises DagsterInvalidConfigError if wrong
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    if "run_launcher" in config:
        _validate_class(config["run_launcher"])
    if "postgres" in config.get("storage", {}):
        from dagster_postgres import DagsterPostgresStorage

        result = process_config(DagsterPostgresStorage.config_type(), config["storage"]["postgres"])
        assert result.success, [e.message for e in result.errors]


def test_k8s_instance_uses_postgres_and_the_k8s_launcher():
    config = yaml.safe_load((DEPLOY / "k8s" / "dagster-instance.yaml").read_text())
    assert "postgres" in config["storage"]
    assert config["run_launcher"]["class"] == "K8sRunLauncher"


def test_gpu_run_config_validates_and_targets_the_gpu_pool_steps():
    from dagster_k8s import k8s_job_executor
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    from regnet_assets.defs.definitions import ALL_ASSETS

    run_config = yaml.safe_load((DEPLOY / "k8s" / "run_config.gpu.yaml").read_text())
    executor = run_config["execution"]["config"]
    result = process_config(k8s_job_executor.config_schema.config_type, executor)
    assert result.success, [e.message for e in result.errors]
    gpu_ops = {a.node_def.name for a in ALL_ASSETS if a.node_def.pools == {"gpu"}}
    gpu_steps = set(executor["per_step_k8s_config"])
    assert gpu_steps <= gpu_ops  # every GPU step names a real `gpu`-pool op ...
    assert {"gene_models", "tf_attribution", "kpnn"} <= gpu_steps  # ... and the core ones are there
    for step in executor["per_step_k8s_config"].values():
        parsed = UserDefinedDagsterK8sConfig.from_dict(step)
        assert parsed.pod_spec_config["node_selector"]
        assert parsed.container_config["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_k8s_code_location_loads():
    from deploy.k8s.regnet_k8s import defs
    from regnet_assets.defs.definitions import defs as regnet_defs

    dg.Definitions.validate_loadable(defs)
    assert defs.executor is not None and defs.executor.name == "k8s"
    assert {s.name for s in defs.sensors} == {s.name for s in regnet_defs.sensors}


def test_helm_values_name_the_code_location_module():
    values = yaml.safe_load((DEPLOY / "k8s" / "values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "deploy.k8s.regnet_k8s"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher" and not values["postgresql"]["enabled"]


def test_object_store_views_read_the_hive_layout(tmp_path):
    """The DuckDB SQL for the bucket, run against the same layout on local disk (no httpfs)."""
    import pandas as pd

    from regnet_assets.storage import write_table

    write_table(tmp_path, "gene_models", pd.DataFrame({"gene": ["A"], "status": ["trained"]}), "A")
    write_table(tmp_path, "gene_correlation", pd.DataFrame({"gene": ["A"], "valid_spearman": [0.5]}), "A")
    write_table(
        tmp_path,
        "regulatory_network",
        pd.DataFrame({"tf": ["T"], "gene": ["A"], "sign": [1], "score": [0.2], "in_network": [True]}),
    )
    sql = (DEPLOY / "k8s" / "duckdb_object_store.sql").read_text().replace("{root}", str(tmp_path))
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    statements = [s for s in code.split(";") if s.strip() and "httpfs" not in s and "SECRET" not in s]
    with duckdb.connect() as con:
        for statement in statements[:-1]:
            con.execute(statement)
        rows = con.execute(statements[-1]).fetchall()
    assert rows == [("A", 0.5, "T", 1, 0.2)]
