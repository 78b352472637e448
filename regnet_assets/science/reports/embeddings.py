"""Per-fold embeddings of each representation, in one long table (one row per observation ×
dimension, saying representation, fold and split).

The metacell folds (:func:`fold_assignment`) are a seeded K-fold of their own: they decide which
metacells a PCA is fitted on, and have nothing to do with the per-gene models' train/valid split.
The KPNN's representations keep the KPNN's own folds (held-out cells only).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["EMBEDDING_COLUMNS", "fold_assignment", "fold_embeddings"]

#: Columns of the long ``embeddings`` table.
EMBEDDING_COLUMNS = [
    "representation",
    "level",
    "fold",
    "split",
    "obs_name",
    "cell_type",
    "batch",
    "dim",
    "dim_index",
    "value",
]


def fold_assignment(n: int, n_folds: int, seed: int = 0, strata: Sequence | None = None) -> np.ndarray:
    """Fold id (0..n_folds-1) of each of ``n`` observations: a seeded shuffled K-fold, stratified
    by ``strata`` (e.g. cell type) when every stratum has at least ``n_folds`` members, so every
    test fold holds every cell type and silhouettes compare across folds."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if n < n_folds:
        raise ValueError(f"{n} observations cannot make {n_folds} folds")
    folds = np.full(n, -1, dtype=int)
    dummy = np.zeros((n, 1))
    if strata is not None and pd.Series(np.asarray(strata)).value_counts().min() >= n_folds:
        splits = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(dummy, np.asarray(strata))
    else:
        splits = KFold(n_folds, shuffle=True, random_state=seed).split(dummy)
    for k, (_, test) in enumerate(splits):
        folds[test] = k
    return folds


def _long(
    coords: np.ndarray, obs: pd.Index, dims: Sequence[str], labels: pd.DataFrame, **fixed
) -> pd.DataFrame:
    n, k = coords.shape
    frame = pd.DataFrame(
        {
            "obs_name": np.repeat(obs.to_numpy(dtype=object), k),
            "dim": np.tile(np.asarray(list(dims), dtype=object), n),
            "dim_index": np.tile(np.arange(k), n),
            "value": coords.reshape(-1),
        }
    )
    for col in ("cell_type", "batch"):
        values = labels[col].reindex(obs).to_numpy(dtype=object) if col in labels else np.full(n, None)
        frame[col] = np.repeat(values, k)
    for key, value in fixed.items():
        frame[key] = value
    return frame[EMBEDDING_COLUMNS]


def fold_embeddings(
    matrix: pd.DataFrame,
    folds: pd.Series,
    labels: pd.DataFrame,
    *,
    representation: str,
    level: str = "metacell",
    method: str = "pca",
    n_components: int = 10,
    include_train: bool = True,
) -> pd.DataFrame:
    """Long embedding rows of ``matrix`` (obs x features) for every fold in ``folds`` (obs -> fold).

    ``method="pca"``: PCA (centred, not scaled; full SVD, deterministic) fitted on the fold's train
    rows (all other folds) and applied to its train and test rows; ``n_components`` is capped by
    the train rows - 1 and the features. ``method="identity"``: the matrix as is (a profile or a
    latent whose dims already mean something). ``include_train=False`` writes test rows only.
    ``labels``: obs-indexed frame with optional ``cell_type`` and ``batch`` columns.
    """
    from sklearn.decomposition import PCA

    if method not in ("pca", "identity"):
        raise ValueError(f"method must be 'pca' or 'identity', got {method!r}")
    matrix = matrix.loc[matrix.index.intersection(folds.index, sort=False)]
    if matrix.empty:
        raise ValueError(f"{representation}: no observation has a fold")
    f = folds.reindex(matrix.index).astype(int).to_numpy()
    x = matrix.to_numpy(float)
    parts = []
    for fold in sorted(set(f)):
        test, train = f == fold, f != fold
        if method == "pca":
            k = int(min(n_components, train.sum() - 1, x.shape[1]))
            if k < 1:
                raise ValueError(f"{representation}: fold {fold} has too few train rows or features for PCA")
            pca = PCA(n_components=k, svd_solver="full").fit(x[train])
            coords, dims = pca.transform(x), [f"PC{i + 1}" for i in range(k)]
        else:
            coords, dims = x, list(matrix.columns)
        splits = (("train", train), ("test", test)) if include_train else (("test", test),)
        for split, mask in splits:
            if mask.any():
                parts.append(
                    _long(
                        coords[mask],
                        matrix.index[mask],
                        dims,
                        labels,
                        representation=representation,
                        level=level,
                        fold=int(fold),
                        split=split,
                    )
                )
    return pd.concat(parts, ignore_index=True)
