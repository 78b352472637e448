"""Clustering scores equal scikit-learn / scIB definitions; fold summaries use a t CI with n-1 df."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from regnet_assets.science.common.figures import png_bytes
from regnet_assets.science.reports.clustering import (
    clustering_scores,
    plot_scores,
    scib_batch_asw,
    summarise_scores,
)


def _toy(n=240, seed=1):
    rng = np.random.default_rng(seed)
    cell_type = rng.choice(["T", "B", "NK"], n)
    batch = rng.choice(["b1", "b2"], n)
    emb = rng.normal(size=(n, 4)) + 3.0 * (cell_type == "T")[:, None] + 0.5 * (batch == "b2")[:, None]
    return emb, cell_type, batch


def test_scores_equal_sklearn_on_full_data():
    emb, ct, batch = _toy()
    df = clustering_scores(emb, {"cell_type": ct, "batch": batch}, sample_size=None).set_index("label")
    for name, y in (("cell_type", ct), ("batch", batch)):
        assert df.loc[name, "silhouette"] == pytest.approx(silhouette_score(emb, y), rel=1e-12)
        assert df.loc[name, "davies_bouldin"] == pytest.approx(davies_bouldin_score(emb, y), rel=1e-12)
        assert df.loc[name, "calinski_harabasz"] == pytest.approx(calinski_harabasz_score(emb, y), rel=1e-12)
        assert df.loc[name, "inv_davies_bouldin"] == pytest.approx(1 / davies_bouldin_score(emb, y))
    assert df.loc["cell_type", "asw_label_scib"] == pytest.approx((silhouette_score(emb, ct) + 1) / 2)
    assert np.isnan(df.loc["batch", "asw_label_scib"]) and np.isnan(df.loc["cell_type", "asw_batch_scib"])
    assert df.loc["batch", "asw_batch_scib"] == pytest.approx(scib_batch_asw(emb, batch, ct)[0])


def test_subsample_is_seeded_and_shared_across_labels():
    emb, ct, batch = _toy(n=300)
    a = clustering_scores(emb, {"cell_type": ct, "batch": batch}, sample_size=100, seed=7)
    b = clustering_scores(emb, {"cell_type": ct, "batch": batch}, sample_size=100, seed=7)
    pd.testing.assert_frame_equal(a, b)
    idx = np.sort(np.random.default_rng(7).choice(np.arange(300), size=100, replace=False))
    row = a.set_index("label").loc["cell_type"]
    assert row["n_cells"] == 100
    assert row["silhouette"] == pytest.approx(silhouette_score(emb[idx], ct[idx]))
    assert a.set_index("label").loc["batch", "calinski_harabasz"] == pytest.approx(
        calinski_harabasz_score(emb[idx], batch[idx])
    )


def test_single_class_label_gives_nan_with_reason():
    emb, ct, _ = _toy(n=60)
    df = clustering_scores(emb, {"cell_type": ct, "batch": np.array(["b1"] * 60)}, sample_size=None)
    row = df.set_index("label").loc["batch"]
    assert np.isnan(row["silhouette"]) and np.isnan(row["asw_batch_scib"])
    assert "class" in row["note"]


def test_batch_asw_hand_computed():
    # 1-D points. Type A: b1 {0,2}, b2 {1,3}: s = 0, -.5, -.5, 0 -> mean(1-|s|) = 0.75.
    # Type B: b1 {10,11}, b2 {20,21}: s = 9.5/10.5, 8.5/9.5 (x2 each) -> mean(1-|s|) = (1/10.5 + 1/9.5)/2.
    # Type C has one batch and type D one cell per batch: both skipped (scIB rule).
    x = np.array([0, 2, 1, 3, 10, 11, 20, 21, 50, 51, 70, 71], float)[:, None]
    batch = np.array(["b1", "b1", "b2", "b2", "b1", "b1", "b2", "b2", "b1", "b1", "b1", "b2"])
    ct = np.array(["A"] * 4 + ["B"] * 4 + ["C"] * 2 + ["D"] * 2)
    expected = (0.75 + (1 / 10.5 + 1 / 9.5) / 2) / 2
    value, note = scib_batch_asw(x, batch, ct)
    assert value == pytest.approx(expected, rel=1e-12) and note == ""
    nan_value, why = scib_batch_asw(x[8:], batch[8:], ct[8:])
    assert np.isnan(nan_value) and why


def test_batch_asw_matches_recorded_scib_metrics_value():
    # scib_metrics 0.5.10 silhouette_batch(X, ct, batch, rescale=True) on this data gave 0.9050537347793579
    # (float32 jax; run in a scratch venv, not installed here because it pulls jax/numba/scanpy).
    rng = np.random.default_rng(3)
    n = 300
    ct = rng.choice(["T", "B", "NK", "Mono"], n)
    batch = rng.choice(["b1", "b2", "b3"], n)
    ct[:1] = "solo"
    batch[1:3] = "b4"
    x = rng.normal(size=(n, 5)) + (ct == "T")[:, None] * 2 + (batch == "b2")[:, None] * 0.7
    assert scib_batch_asw(x, batch, ct)[0] == pytest.approx(0.9050537347793579, abs=1e-6)


def test_batch_asw_equals_scib_metrics_if_installed():
    scib_metrics = pytest.importorskip("scib_metrics")
    emb, ct, batch = _toy(n=120)
    ref = float(scib_metrics.silhouette_batch(emb, ct, batch, rescale=True))
    assert scib_batch_asw(emb, batch, ct)[0] == pytest.approx(ref, abs=1e-5)


def _fold_scores(n_folds):
    rng = np.random.default_rng(n_folds)
    rows = []
    for rep in ("latent", "pca"):
        for fold in range(1, n_folds + 1):
            for label in ("batch", "cell_type"):
                rows.append(
                    {
                        "representation": rep,
                        "fold": fold,
                        "label": label,
                        "silhouette": rng.normal(),
                        "davies_bouldin": rng.uniform(1, 3),
                    }
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n_folds", [3, 5])
def test_summary_ci_is_t_interval_with_n_minus_1_df(n_folds):
    scores = _fold_scores(n_folds)
    summ = summarise_scores(scores).set_index(["representation", "label", "metric"])
    vals = scores.query("representation == 'pca' and label == 'cell_type'")["silhouette"].to_numpy()
    row = summ.loc[("pca", "cell_type", "silhouette")]
    sem = vals.std(ddof=1) / np.sqrt(n_folds)
    lo, hi = stats.t.interval(0.95, df=n_folds - 1, loc=vals.mean(), scale=sem)
    assert row["n_folds"] == n_folds and row["ci_df"] == n_folds - 1
    assert row["mean"] == pytest.approx(vals.mean()) and row["std"] == pytest.approx(vals.std(ddof=1))
    assert row["sem"] == pytest.approx(sem)
    assert (row["ci_lower"], row["ci_upper"]) == pytest.approx((lo, hi), rel=1e-10)
    batch = scores.query("representation == 'pca' and label == 'batch'")
    assert row["fold_min_batch_silhouette"] == batch.loc[batch["silhouette"].idxmin(), "fold"]
    assert row["fold_max_batch_silhouette"] == batch.loc[batch["silhouette"].idxmax(), "fold"]


def test_summary_single_fold_has_nan_ci_and_plot_renders():
    summ = summarise_scores(_fold_scores(1))
    assert summ["ci_lower"].isna().all() and (summ["n_folds"] == 1).all()
    fig = plot_scores(summarise_scores(_fold_scores(3)))
    png = png_bytes(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
