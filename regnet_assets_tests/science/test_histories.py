"""Fold histories: the all-folds table keeps every row, the mean is the per-epoch mean over the
folds that reached the epoch, and the plots render."""

import numpy as np
import pandas as pd
import pytest

from regnet_assets.science.common.figures import png_bytes
from regnet_assets.science.reports import histories


def _fold_history(rng, folds_epochs: dict[int, int]) -> pd.DataFrame:
    rows = [
        {
            "fold": f,
            "epoch": e,
            "train_loss": rng.random(),
            "valid_loss": rng.random(),
            "valid_auc": rng.random(),
        }
        for f, n in folds_epochs.items()
        for e in range(1, n + 1)
    ]
    return pd.DataFrame(rows)


@pytest.fixture
def allfolds():
    rng = np.random.default_rng(3)
    # early stopping: folds end at different epochs
    return histories.history_allfolds(
        {
            "kpnn_full": _fold_history(rng, {0: 6, 1: 4, 2: 6}),
            "kpnn_pruned": _fold_history(rng, {0: 3, 1: 5, 2: 2}),
        }
    )


def test_history_allfolds_keeps_every_row_with_its_model(allfolds):
    assert list(allfolds.columns[:3]) == ["model", "fold", "epoch"]
    assert (allfolds["model"] == "kpnn_full").sum() == 16 and (allfolds["model"] == "kpnn_pruned").sum() == 10
    assert not allfolds.duplicated(["model", "fold", "epoch"]).any()


def test_mean_history_allfolds_equals_the_per_epoch_mean_over_folds(allfolds):
    mean = histories.mean_history(allfolds)
    for (model, epoch), rows in allfolds.groupby(["model", "epoch"]):  # the mean, computed by hand
        got = mean[(mean["model"] == model) & (mean["epoch"] == epoch)].iloc[0]
        assert got["n_folds"] == len(rows)
        for metric in ("train_loss", "valid_loss", "valid_auc"):
            values = rows[metric].to_numpy()
            assert got[metric] == pytest.approx(sum(values) / len(values), rel=1e-12)
            assert got[f"{metric}_min"] == values.min() and got[f"{metric}_max"] == values.max()
    assert len(mean) == allfolds.groupby(["model", "epoch"]).ngroups
    full = mean[mean["model"] == "kpnn_full"].set_index("epoch")["n_folds"]
    assert full.loc[4] == 3 and full.loc[5] == 2  # fold 1 stopped after epoch 4


def test_history_without_folds_is_refused():
    with pytest.raises(ValueError, match="fold"):
        histories.history_allfolds({"m": pd.DataFrame({"epoch": [1], "loss": [0.1]})})
    with pytest.raises(ValueError, match="no fold-wise"):
        histories.history_allfolds({})


def test_best_epoch_summary_counts_genes_that_peaked_at_the_last_epoch():
    models = pd.DataFrame(
        {"gene": list("abcd"), "best_epoch": [40, 12, 40, np.nan], "epochs_run": [40, 40, 40, np.nan]}
    )
    assert histories.best_epoch_summary(models) == {"best_epoch_median": 40.0, "n_best_at_last_epoch": 2}


def test_plots_render(allfolds):
    mean = histories.mean_history(allfolds)
    assert png_bytes(histories.plot_mean_history(mean))[:4] == b"\x89PNG"
    curve = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "train_loss": [3, 2, 1.5],
            "valid_loss": [3.1, 2.4, 2.5],
            "valid_spearman": [0.1, 0.5, 0.45],
        }
    )
    assert png_bytes(histories.plot_gene_history(curve, "G1", 2))[:4] == b"\x89PNG"
    models = pd.DataFrame({"best_epoch": [3, 1, 3], "epochs_run": [3, 3, 3]})
    assert png_bytes(histories.plot_best_epochs(models))[:4] == b"\x89PNG"
