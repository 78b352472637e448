"""The ``reports`` group end to end on the small simulated dataset.

Dataset -> per-gene models, TF attributions and the TF-ablated models in one range run (few
epochs) -> PKN, minimal DAG and KPNN (few epochs, 3 folds) -> embeddings, clustering scores and
their summary, gene ranks, gene programs and their offline GO enrichment -> the DuckDB catalog.
The metrics themselves are checked against their references in the science tests
(test_clustering, test_programs, test_enrichment); here: wiring, shapes, folds, plots, SQL.
"""

import shutil

import dagster as dg
import numpy as np
import pytest

from regnet_assets.defs.partitions import GENES
from regnet_assets.defs.sensors import modelable_genes
from regnet_assets.storage import query, read_table
from regnet_assets_tests.assets.test_dataset_assets import DATASET_GROUP
from regnet_assets_tests.conftest import materialize

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
PARTITIONED = [
    "gene_models",
    "training_history",
    "predictions",
    "gene_correlation",
    "tf_attribution",
    "tf_to_gene",
    "attribution_delta",
    "ablated_gene_correlation",
]
NETWORK = [
    "pkn_edges",
    "pruned_dag_edges",
    "pruning_summary",
    "kpnn_metrics",
    "kpnn_summary",
    "kpnn_node_importance",
    "kpnn_history",
    "kpnn_activations",
    "kpnn_predictions",
]
REPORTS = [
    "embeddings",
    "clustering_scores",
    "clustering_score_summary",
    "gene_ranks",
    "gene_loadings",
    "latent_rank_report",
    "dim_importance",
    "gene_program_genes",
    "gene_program_enrichment",
    "history_allfolds",
    "mean_history_allfolds",
    "embedding_maps",
]
REPRESENTATIONS = {"observed_pca", "predicted_pca", "tf_activity", "kpnn_full", "kpnn_pruned"}
PLOTS = {
    "clustering_score_summary": "clustering_scores",
    "gene_ranks": "gene_ranks",
    "dim_importance": "dim_importance",
    "gene_program_enrichment": "gene_program_enrichment",
    "mean_history_allfolds": "mean_history_allfolds",
    **{f"embedding_maps/{r}/{c}": f"umap_{r}_{c}" for r in REPRESENTATIONS for c in ("cell_type", "batch")},
}
N_FOLDS, KPNN_FOLDS = 5, 3
CONFIG = {
    "ops": {
        "metacell_multiome": {"config": {"n_metacells": 120}},
        "gene_models": {"config": {"epochs": 3, "lr": 1e-3}},
        "tf_attribution": {"config": {"n_steps": 20}},
        "kpnn": {"config": {"epochs": 5, "n_folds": KPNN_FOLDS, "max_cells": 300}},
        "embeddings": {"config": {"n_folds": N_FOLDS, "n_components": 5}},
        "clustering_scores": {"config": {"sample_size": 100}},
        "embedding_maps": {"config": {"max_obs": 90}},
    }
}


def ops(*names):
    return {"ops": {k: v for k, v in CONFIG["ops"].items() if k in names}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Everything upstream once, then the reports and the catalog."""
    storage = tmp_path_factory.mktemp("storage")
    with dg.instance_for_test() as instance:
        assert materialize(DATASET_GROUP, storage, instance, run_config=ops("metacell_multiome")).success
        genes = modelable_genes(storage)
        instance.add_dynamic_partitions(GENES, genes)
        ranged = materialize(
            PARTITIONED,
            storage,
            instance,
            run_config=ops("gene_models", "tf_attribution"),
            tags={RANGE_START: genes[0], RANGE_END: genes[-1]},
        )
        assert ranged.success, [
            e.event_specific_data.error.to_string() for e in ranged.get_step_failure_events()
        ]
        assert materialize(NETWORK, storage, instance, run_config=ops("kpnn")).success
        reports = materialize(
            REPORTS + ["duckdb_catalog"],
            storage,
            instance,
            run_config=ops("embeddings", "clustering_scores", "embedding_maps"),
        )
        assert reports.success, [
            e.event_specific_data.error.to_string() for e in reports.get_step_failure_events()
        ]
        metadata = {
            e.asset_key.to_user_string(): e.materialization.metadata
            for e in reports.get_asset_materialization_events()
        }
        yield storage, genes, metadata, instance


def test_every_report_table_is_a_non_empty_duckdb_view(run):
    storage, *_ = run
    for table in [*REPORTS, "ablated_gene_correlation"]:
        assert query(storage, f'SELECT count(*) AS n FROM "{table}"')["n"].item() > 0, table


def test_plots_are_attached_and_saved_beside_the_tables(run):
    storage, _, metadata, _ = run
    for asset, figure in PLOTS.items():
        asset = asset.split("/")[0]
        assert f"{figure}_plot" in metadata[asset] and f"{figure}_png" in metadata[asset], asset
        assert metadata[asset][f"{figure}_plot"].value.startswith(f"![{figure}](data:image/png;base64,")
        png = storage / "figures" / f"{figure}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000, figure


def test_embeddings_cover_every_representation_with_its_folds(run):
    storage, _, metadata, _ = run
    emb = read_table(storage, "embeddings")
    metacells = read_table(storage, "metacells")
    assert set(emb["representation"]) == REPRESENTATIONS
    for name in ("observed_pca", "predicted_pca", "tf_activity"):
        sub = emb[emb["representation"] == name]
        assert sorted(sub["fold"].unique()) == list(range(N_FOLDS))
        test = sub[sub["split"] == "test"].drop_duplicates(["fold", "obs_name"])
        assert sorted(test["obs_name"]) == sorted(metacells["metacell"])  # held out exactly once
        train = sub[sub["split"] == "train"].drop_duplicates(["fold", "obs_name"])
        assert len(train) == (N_FOLDS - 1) * len(metacells)
        assert (sub["level"] == "metacell").all() and sub["cell_type"].notna().all()
    pcs = emb[emb["representation"] == "observed_pca"]
    assert set(pcs["dim"]) == {f"PC{i}" for i in range(1, 6)}
    # folds stratified by cell type: every test fold holds every cell type
    test = pcs[pcs["split"] == "test"].drop_duplicates(["fold", "obs_name"])
    assert (test.groupby("fold")["cell_type"].nunique() == metacells["cell_type"].nunique()).all()
    tf = emb[emb["representation"] == "tf_activity"]
    assert set(tf["dim"]) <= set(read_table(storage, "gene_tf_candidates")["tf"])
    kpnn = emb[emb["representation"] == "kpnn_full"]
    assert (kpnn["split"] == "test").all() and (kpnn["level"] == "cell").all()
    assert kpnn["fold"].nunique() == KPNN_FOLDS and kpnn["obs_name"].nunique() == 300
    assert metadata["embeddings"]["skipped"].value == {}


def test_scores_and_summary_use_each_representations_own_folds(run):
    storage, *_ = run
    scores = read_table(storage, "clustering_scores")
    assert set(scores["label"]) == {"cell_type", "batch"} and set(scores["split"]) == {"test"}
    assert (scores["n_cells"] <= 100).all()
    bio = scores[scores["label_role"] == "bio"]
    assert np.allclose(bio["asw_label_scib"], (bio["silhouette"] + 1) / 2)
    summary = read_table(storage, "clustering_score_summary")
    sil = summary[summary["metric"] == "silhouette"].set_index(["representation", "label"])
    for name, folds in (("observed_pca", N_FOLDS), ("tf_activity", N_FOLDS), ("kpnn_full", KPNN_FOLDS)):
        row = sil.loc[(name, "cell_type")]
        assert row["n_folds"] == folds and row["ci_df"] == folds - 1
        per_fold = scores[(scores["representation"] == name) & (scores["label"] == "cell_type")]["silhouette"]
        assert row["mean"] == pytest.approx(per_fold.mean())
        batch = scores[(scores["representation"] == name) & (scores["label"] == "batch")]
        assert row["fold_min_batch_silhouette"] == batch.loc[batch["silhouette"].idxmin(), "fold"]


def test_ablated_models_train_like_the_full_models_and_rank_every_gene(run):
    storage, genes, *_ = run
    ablated = read_table(storage, "ablated_gene_correlation").set_index("gene")
    full = read_table(storage, "gene_models").set_index("gene")
    trained = full.index[full["status"] == "trained"]
    assert sorted(ablated.index) == sorted(genes)
    assert (ablated.loc[trained, "config_source"] == "full_model_run").all()
    assert (ablated.loc[trained, "epochs"] == 3).all() and (ablated.loc[trained, "epochs_run"] == 3).all()
    assert (ablated.loc[trained, "n_tfs_zeroed"] == full.loc[trained, "n_tfs"]).all()
    ranks = read_table(storage, "gene_ranks").set_index("gene")
    correlation = read_table(storage, "gene_correlation").set_index("gene")
    assert sorted(ranks.index) == sorted(genes)
    np.testing.assert_allclose(ranks.loc[trained, "score_full"], correlation.loc[trained, "test_spearman"])
    np.testing.assert_allclose(ranks.loc[trained, "score_ablated"], ablated.loc[trained, "test_spearman"])
    # a model without TFs is a different model: its scores are not the full model's
    assert not np.allclose(ranks["score_full"], ranks["score_ablated"])
    assert sorted(ranks["rank_full"].dropna()) == pytest.approx(
        list(range(1, len(ranks["rank_full"].dropna()) + 1))
    )


def test_gene_programs_for_each_latent_and_enrichment_against_go(run):
    storage, _, metadata, _ = run
    latents = {"tf_activity", "kpnn_full", "kpnn_pruned"}
    imp = read_table(storage, "dim_importance")
    assert set(imp["latent"]) == latents
    for _, group in imp.groupby("latent"):
        assert group["importance"].sum() == pytest.approx(1.0)
        selected = group[group["selected"]]
        assert selected["cumulative"].iloc[-1] >= 0.6 - 1e-12
        assert len(selected) == 1 or selected["cumulative"].iloc[-2] < 0.6
    loadings = read_table(storage, "gene_loadings")
    assert set(loadings["latent"]) == latents and np.isfinite(loadings["loading"]).all()
    rank = read_table(storage, "latent_rank_report").set_index("latent")
    assert (rank["rank"] <= rank["n_dims"]).all()
    genes = read_table(storage, "gene_program_genes")
    assert set(genes["latent"]) == latents
    chosen = imp[imp["selected"]].assign(program=lambda d: d["latent"] + ":" + d["dim"])
    assert set(genes["program"]) <= set(chosen["program"])
    assert (genes.groupby("program").size() <= 20).all()

    enr = read_table(storage, "gene_program_enrichment")
    assert metadata["gene_program_enrichment"]["symbol_coverage"].value == 1.0  # real human symbols
    assert set(enr["program"]) >= set(genes["program"])
    assert {"shared", "unique_tf_activity", "unique_kpnn_full"} & set(enr["program"])
    tested = enr[enr["Term"].notna()]
    assert len(tested) and (tested["Gene_set"] == "GO_BP").all()
    assert (
        tested["P-value"].between(0, 1).all()
        and (tested["Adjusted P-value"] >= tested["P-value"] - 1e-12).all()
    )


def test_missing_representations_are_skipped_and_named(run, tmp_path):
    """Without attributions and KPNN, the reports still run on what exists and say what is missing."""
    storage, _, _, instance = run
    for name in ("dataset", "metacells", "multiome", "predictions", "objects"):
        src = storage / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name)
    result = materialize(
        ["embeddings", "clustering_scores"],
        tmp_path,
        instance,
        run_config=ops("embeddings", "clustering_scores"),
    )
    assert result.success
    meta = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert set(meta["embeddings"]["skipped"].value) == {"tf_activity", "kpnn_full", "kpnn_pruned"}
    assert set(read_table(tmp_path, "clustering_scores")["representation"]) == {
        "observed_pca",
        "predicted_pca",
    }


def test_history_allfolds_stacks_the_kpnn_folds_and_its_mean_matches(run):
    storage, *_ = run
    kpnn = read_table(storage, "kpnn_history")
    allfolds = read_table(storage, "history_allfolds")
    assert set(allfolds["model"]) == {"kpnn_full", "kpnn_pruned"} and len(allfolds) == len(kpnn)
    assert allfolds["fold"].nunique() == KPNN_FOLDS
    mean = read_table(storage, "mean_history_allfolds")
    expected = allfolds.groupby(["model", "epoch"])[["train_loss", "valid_loss", "valid_auc"]].mean()
    got = mean.set_index(["model", "epoch"]).loc[expected.index, expected.columns]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert (
        mean.set_index(["model", "epoch"]).loc[expected.index, "n_folds"]
        == allfolds.groupby(["model", "epoch"]).size()
    ).all()


def test_embedding_maps_cover_every_representation_and_fold(run):
    storage, _, metadata, _ = run
    table = read_table(storage, "embedding_maps")
    emb = read_table(storage, "embeddings")
    assert set(table["representation"]) == REPRESENTATIONS
    assert np.isfinite(table[["umap1", "umap2"]].to_numpy()).all()
    for (name, fold), rows in table.groupby(["representation", "fold"]):
        source = emb[(emb["representation"] == name) & (emb["fold"] == fold)]
        assert len(rows) == min(90, source["obs_name"].nunique()) and rows["cell"].is_unique
        assert set(rows["cell"]) <= set(source["obs_name"])
    assert table.groupby("representation")["fold"].nunique().to_dict() == {
        "observed_pca": N_FOLDS,
        "predicted_pca": N_FOLDS,
        "tf_activity": N_FOLDS,
        "kpnn_full": KPNN_FOLDS,
        "kpnn_pruned": KPNN_FOLDS,
    }
    assert (table.loc[table["representation"].str.startswith("kpnn"), "split"] == "test").all()
    assert table["cell_type"].notna().all() and table["batch"].notna().all()
    assert metadata["embedding_maps"]["skipped"].value == {}
