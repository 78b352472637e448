"""UMAP maps: reproducible with the same seed, finite, one row per mapped observation with its
labels; a different seed gives a different layout; too few observations are skipped, not crashed."""

import numpy as np
import pandas as pd
import pytest

from regnet_assets.science.common.figures import png_bytes
from regnet_assets.science.reports import maps


def _embeddings(n_per_type=30, dims=4, folds=2, seed=0) -> pd.DataFrame:
    """Long embeddings of two well-separated cell types in two batches."""
    rng = np.random.default_rng(seed)
    rows = []
    for fold in range(folds):
        for i in range(2 * n_per_type):
            cell_type = "A" if i < n_per_type else "B"
            centre = 0.0 if cell_type == "A" else 8.0
            split = "test" if i % 5 == fold else "train"
            for d in range(dims):
                rows.append(
                    {
                        "representation": "rep",
                        "level": "metacell",
                        "fold": fold,
                        "split": split,
                        "obs_name": f"m{i}",
                        "cell_type": cell_type,
                        "batch": f"b{i % 2}",
                        "dim": f"PC{d + 1}",
                        "dim_index": d,
                        "value": centre + rng.normal(),
                    }
                )
    return pd.DataFrame(rows)


def test_umap_is_reproducible_with_the_same_seed_and_finite():
    x = np.random.default_rng(1).normal(size=(60, 5))
    a, b = maps.umap_coordinates(x, seed=7), maps.umap_coordinates(x, seed=7)
    assert a.shape == (60, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, maps.umap_coordinates(x, seed=8))


def test_embedding_maps_rows_labels_and_separation():
    emb = _embeddings()
    table, skipped = maps.embedding_maps(emb, seed=0, n_neighbors=10)
    assert skipped == {}
    assert list(table.columns) == maps.MAP_COLUMNS
    assert len(table) == 2 * 60 and np.isfinite(table[["umap1", "umap2"]].to_numpy()).all()
    # every observation once per fold, with its own labels and split
    labels = emb.drop_duplicates(["fold", "obs_name"]).set_index(["fold", "obs_name"])
    for col in ("cell_type", "batch", "split"):
        assert (
            table.set_index(["fold", "cell"])[col]
            == labels[col].reindex(table.set_index(["fold", "cell"]).index)
        ).all()
    # the two planted cell types stay apart in 2-D
    fold0 = table[table["fold"] == 0]
    centres = fold0.groupby("cell_type")[["umap1", "umap2"]].mean()
    spread = fold0.groupby("cell_type")[["umap1", "umap2"]].std().to_numpy().max()
    assert np.linalg.norm(centres.loc["A"] - centres.loc["B"]) > 2 * spread
    again, _ = maps.embedding_maps(emb, seed=0, n_neighbors=10)
    pd.testing.assert_frame_equal(table, again)


def test_subsample_split_choice_and_small_folds():
    emb = _embeddings()
    table, _ = maps.embedding_maps(emb, splits=["test"], max_obs=None, seed=0)
    assert set(table["split"]) == {"test"} and len(table) == 24  # 12 test observations per fold
    table, _ = maps.embedding_maps(emb, max_obs=25, seed=0)
    assert table.groupby("fold").size().tolist() == [25, 25]
    np.testing.assert_array_equal(maps.subsample(100, 10, 3), maps.subsample(100, 10, 3))
    tiny = emb[emb["obs_name"].isin(["m0", "m1", "m2"])]
    table, skipped = maps.embedding_maps(tiny)
    assert table.empty and set(skipped) == {"rep fold 0", "rep fold 1"}


def test_missing_coordinates_are_dropped_and_reported():
    emb = _embeddings()
    emb.loc[(emb["obs_name"] == "m3") & (emb["dim_index"] == 1), "value"] = np.nan
    table, skipped = maps.embedding_maps(emb, seed=0)
    assert "m3" not in set(table["cell"]) and len(table) == 2 * 59
    assert "rep fold 0 (rows)" in skipped


def test_umap_refuses_nan_and_too_few_points():
    with pytest.raises(ValueError, match="NaN"):
        maps.umap_coordinates(np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="at least"):
        maps.umap_coordinates(np.zeros((3, 2)))


def test_map_plot_renders():
    table, _ = maps.embedding_maps(_embeddings(), seed=0)
    for colour_by in ("cell_type", "batch"):
        assert png_bytes(maps.plot_map(table, "rep", colour_by))[:4] == b"\x89PNG"
