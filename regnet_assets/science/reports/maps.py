"""2-D maps of every representation, as scMEDAL users look at their latent spaces.

Per representation and fold, a seeded subsample of the fold's observations (the splits asked
for) is mapped by UMAP (``umap-learn``, ``random_state`` = the seed, which also makes it run
single-threaded and so reproducible) and plotted coloured by cell type and by batch: a good
representation separates cell types and mixes batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from regnet_assets.science.common.figures import figure

MAP_COLUMNS = ["representation", "level", "fold", "split", "cell", "umap1", "umap2", "cell_type", "batch"]
MIN_OBSERVATIONS = 5  # UMAP needs a neighbour graph; fewer points give no meaningful map


def umap_coordinates(
    matrix: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.5
) -> np.ndarray:
    """(n, 2) UMAP of ``matrix`` (n x features); ``n_neighbors`` is capped at n − 1."""
    import umap

    x = np.asarray(matrix, dtype=np.float32)
    if x.ndim != 2 or len(x) < MIN_OBSERVATIONS:
        raise ValueError(f"UMAP needs at least {MIN_OBSERVATIONS} observations, got {len(x)}")
    if not np.isfinite(x).all():
        raise ValueError("UMAP input contains NaN or inf")
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=int(min(n_neighbors, len(x) - 1)),
        min_dist=min_dist,
        random_state=seed,
        n_jobs=1,
    )
    return reducer.fit_transform(x).astype(float)


def subsample(n: int, max_obs: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subsample of ``max_obs`` of ``n`` (all when ``max_obs`` is None or ≥ n)."""
    if max_obs is None or n <= max_obs:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_obs, replace=False))


def embedding_maps(
    embeddings: pd.DataFrame,
    *,
    splits: Sequence[str] = ("train", "test"),
    max_obs: int | None = 2000,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.5,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """UMAP of each (representation, fold) of the long ``embeddings`` table; and what was skipped, why.

    Observations with a missing coordinate are dropped (counted in the skip notes).
    """
    rows, skipped = [], {}
    chosen = embeddings[embeddings["split"].isin(list(splits))]
    for (name, fold), sub in chosen.groupby(["representation", "fold"], sort=True):
        wide = sub.pivot(index=["obs_name", "split"], columns="dim_index", values="value")
        labels = sub.drop_duplicates("obs_name").set_index("obs_name")
        finite = np.isfinite(wide.to_numpy(float)).all(axis=1)
        where = f"{name} fold {fold}"
        if not finite.all():
            skipped[f"{where} (rows)"] = (
                f"{int((~finite).sum())} observation(s) with a missing coordinate dropped"
            )
        wide = wide[finite]
        if len(wide) < MIN_OBSERVATIONS:
            skipped[where] = f"{len(wide)} observation(s), UMAP needs {MIN_OBSERVATIONS}"
            continue
        wide = wide.iloc[subsample(len(wide), max_obs, seed)]
        xy = umap_coordinates(wide.to_numpy(float), seed=seed, n_neighbors=n_neighbors, min_dist=min_dist)
        cells = wide.index.get_level_values("obs_name")
        rows.append(
            pd.DataFrame(
                {
                    "representation": name,
                    "level": labels["level"].iloc[0],
                    "fold": int(fold),
                    "split": wide.index.get_level_values("split"),
                    "cell": cells,
                    "umap1": xy[:, 0],
                    "umap2": xy[:, 1],
                    "cell_type": labels["cell_type"].reindex(cells).to_numpy(dtype=object),
                    "batch": labels["batch"].reindex(cells).to_numpy(dtype=object),
                }
            )
        )
    maps = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame({c: [] for c in MAP_COLUMNS})
    return maps[MAP_COLUMNS], skipped


def plot_map(maps: pd.DataFrame, representation: str, colour_by: str):
    """One panel per fold of ``representation``'s map, points coloured by ``colour_by``."""
    import matplotlib

    sub = maps[maps["representation"] == representation]
    folds = sorted(sub["fold"].unique())
    fig, axes = figure(ncols=max(len(folds), 1), figsize=(3.0 * max(len(folds), 1) + 1.6, 3.2), squeeze=False)
    values = sub[colour_by].astype(object).where(sub[colour_by].notna(), "NA").astype(str)
    categories = sorted(values.unique())
    cmap = matplotlib.colormaps["tab10" if len(categories) <= 10 else "tab20"]
    colours = {c: cmap(i % cmap.N) for i, c in enumerate(categories)}
    for ax, fold in zip(axes[0], folds):
        mask = (sub["fold"] == fold).to_numpy()
        ax.scatter(
            sub.loc[mask, "umap1"],
            sub.loc[mask, "umap2"],
            s=6,
            linewidths=0,
            c=[colours[v] for v in values[mask]],
        )
        ax.set(title=f"fold {fold} ({int(mask.sum())})", xticks=[], yticks=[], xlabel="UMAP1", ylabel="UMAP2")
    handles = [
        matplotlib.lines.Line2D([], [], marker="o", linestyle="", color=colours[c], label=c)
        for c in categories
    ]
    fig.legend(
        handles=handles, title=colour_by, loc="center right", fontsize=7, title_fontsize=8, frameon=False
    )
    fig.suptitle(f"{representation}: UMAP coloured by {colour_by}", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1 - 1.5 / (3.0 * max(len(folds), 1) + 1.6), 1))
    return fig
