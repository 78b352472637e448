"""The ``models`` group: batched range runs, one row per gene in every table, bad partitions."""

import dagster as dg
import pytest

from regnet_assets.storage import query, read_table, refresh_catalog
from regnet_assets.storage.models import load_gene_model, model_path
from regnet_assets_tests.assets.test_dataset_assets import DATASET_GROUP
from regnet_assets_tests.conftest import materialize

MODEL_TABLES = ["gene_models", "training_history", "predictions", "gene_correlation"]
FEW_EPOCHS = {"ops": {"gene_models": {"config": {"epochs": 3}}}}


def range_tags(genes):
    return {"dagster/asset_partition_range_start": genes[0], "dagster/asset_partition_range_end": genes[-1]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Dataset group, then every modelable gene of the small dataset in one range run."""
    storage = tmp_path_factory.mktemp("storage")
    with dg.instance_for_test() as instance:
        assert materialize(DATASET_GROUP, storage, instance).success
        genes = read_table(storage, "genes").query("modelable")["gene"].tolist()
        instance.add_dynamic_partitions("genes", genes)
        result = materialize(MODEL_TABLES, storage, instance, run_config=FEW_EPOCHS, tags=range_tags(genes))
        assert result.success, result.get_step_failure_events()
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        summary = materialize(["model_performance"], storage, instance)
        assert summary.success
        yield storage, genes, checks, result, instance, summary


def test_one_run_writes_one_row_per_gene_in_every_table(trained):
    storage, genes, checks, result, *_ = trained
    assert len(genes) >= 3
    refresh_catalog(storage)
    for table in MODEL_TABLES:
        got = query(storage, f"SELECT DISTINCT gene FROM {table}")["gene"]
        assert sorted(got) == sorted(genes), table
    rows = query(storage, "SELECT gene, count(*) AS n FROM gene_models GROUP BY gene")
    assert (rows["n"] == 1).all()
    history = query(storage, "SELECT gene, count(*) AS n FROM training_history GROUP BY gene")
    assert (history["n"] == 3).all()
    metacells = query(storage, "SELECT count(*) AS n FROM metacells")["n"].item()
    per_gene = query(storage, "SELECT gene, count(*) AS n FROM predictions GROUP BY gene")
    assert (per_gene["n"] == metacells).all()
    assert checks == {"predictions_are_finite": True, "valid_spearman_present": True}


def test_each_partition_shows_its_own_gene_rows_file_and_scores(trained):
    """#16: a gene's partition page speaks for that gene, not for the batch it trained in (before
    the tests below re-train genes)."""
    storage, genes, _, result, *_ = trained
    correlation = read_table(storage, "gene_correlation").set_index("gene")
    seen = set()
    for event in result.get_asset_materialization_events():
        m = event.event_specific_data.materialization
        table, gene = m.asset_key.to_user_string(), m.partition
        rows = read_table(storage, table, [gene])
        assert m.metadata["dagster/row_count"].value == len(rows), (table, gene)
        assert m.metadata["path"].value == f"{table}/gene={gene}/part.parquet"
        assert (storage / m.metadata["path"].value).exists()
        if table == "gene_models":
            assert m.metadata["status"].value == rows["status"].item()
            if rows["status"].item() == "trained":
                assert m.metadata["n_peaks"].value == rows["n_peaks"].item()
                assert m.metadata["best_epoch"].value == rows["best_epoch"].item()
                for score in ("valid_spearman", "test_spearman"):
                    assert m.metadata[score].value == pytest.approx(correlation.at[gene, score], rel=1e-3)
        seen.add((table, gene))
    assert seen == {(t, g) for t in MODEL_TABLES for g in genes}


def test_checkpoints_reload_and_reproduce_predictions(trained):
    storage, genes, *_ = trained
    assert all(model_path(storage, g).exists() for g in genes)
    module, meta = load_gene_model(genes[0], storage)
    assert not module.training
    assert meta  # architecture and names travel with the weights


def test_model_performance_summarises_every_trained_gene(trained):
    storage, genes, *_ = trained
    summary = read_table(storage, "model_performance")
    assert summary["n_genes"].item() == len(genes)
    assert (storage / "figures" / "model_performance.png").stat().st_size > 1000
    correlation = read_table(storage, "gene_correlation")
    assert summary["test_spearman_median"].item() == pytest.approx(correlation["test_spearman"].median())
    assert summary["valid_spearman_median"].item() == pytest.approx(correlation["valid_spearman"].median())
    assert summary["null_spearman_median"].item() == pytest.approx(correlation["null_spearman"].median())
    assert correlation["n_test"].min() >= 2  # the held-out split is scored
    models = read_table(storage, "gene_models")
    assert summary["n_best_at_last_epoch"].item() == int((models["best_epoch"] == 3).sum())
    assert summary["best_epoch_median"].item() == models["best_epoch"].median()


def test_model_performance_plots_a_typical_genes_curve_and_the_best_epochs(trained):
    storage, genes, *_, instance, result = trained
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    correlation = (
        read_table(storage, "gene_correlation")
        .dropna(subset=["test_spearman"])
        .sort_values(["test_spearman", "gene"])
    )
    assert (
        meta["history_gene"].value == correlation["gene"].iloc[(len(correlation) - 1) // 2]
    )  # the median gene
    for name in ("best_epochs", "gene_training_curve", "test_predictions"):
        assert f"{name}_plot" in meta and (storage / "figures" / f"{name}.png").stat().st_size > 1000
    chosen = materialize(
        ["model_performance"],
        storage,
        instance,
        run_config={"ops": {"model_performance": {"config": {"history_gene": genes[0]}}}},
    )
    assert (
        chosen.get_asset_materialization_events()[0].materialization.metadata["history_gene"].value
        == genes[0]
    )
    bad = materialize(
        ["model_performance"],
        storage,
        instance,
        run_config={"ops": {"model_performance": {"config": {"history_gene": "NOPE"}}}},
    )
    assert not bad.success
    assert "history_gene" in bad.get_step_failure_events()[0].event_specific_data.error.to_string()


def test_unknown_gene_fails_its_partition_and_leaves_the_others(trained, tmp_path):
    storage, genes, _, _, instance, _ = trained
    instance.add_dynamic_partitions("genes", ["NOT_A_GENE"])
    before = read_table(storage, "gene_models", [genes[-1]])
    result = materialize(
        MODEL_TABLES, storage, instance, run_config=FEW_EPOCHS, tags=range_tags([genes[-1], "NOT_A_GENE"])
    )
    assert not result.success
    message = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "NOT_A_GENE" in message and "unknown gene" in message
    assert not model_path(storage, "NOT_A_GENE").exists()
    after = read_table(storage, "gene_models", [genes[-1]])
    assert after["gene"].tolist() == before["gene"].tolist() == [genes[-1]]


def test_training_config_presets():
    from regnet_assets.defs.assets.models import TrainingConfig
    from regnet_assets.science.models.config import TrainConfig

    assert TrainingConfig().to_science() == TrainConfig()
    assert TrainingConfig(preset="reference").to_science() == TrainConfig.reference()
    assert TrainingConfig(preset="reference", lr=3e-4).to_science() == TrainConfig.reference(lr=3e-4)
    assert TrainingConfig(epochs=3).to_science().steps is None  # an epoch budget by name
