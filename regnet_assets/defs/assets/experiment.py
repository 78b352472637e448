"""scMEDAL-style experiment outputs (group ``reports``): training histories across folds and
2-D maps of every representation, with their plots in the UI and beside the tables."""

import dagster as dg
import pandas as pd
from pydantic import Field

from regnet_assets.defs.metadata import column_schema, figure_metadata, markdown
from regnet_assets.defs.resources import StorageResource
from regnet_assets.science.common.figures import png_bytes
from regnet_assets.science.reports import histories, maps

GROUP = "reports"


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("history_allfolds"))
def history_allfolds(kpnn_history: pd.DataFrame) -> pd.DataFrame:
    """Every fold's training history of every fold-wise training (the KPNN on each network)."""
    return histories.history_allfolds(
        {
            f"kpnn_{net}": frame.drop(columns="network")
            for net, frame in kpnn_history.groupby("network", sort=True)
        }
    )


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("mean_history_allfolds"))
def mean_history_allfolds(
    context: dg.AssetExecutionContext, history_allfolds: pd.DataFrame, storage: StorageResource
) -> pd.DataFrame:
    """Per model and epoch: each metric's mean, range and SD over folds; the loss-curve plot."""
    mean = histories.mean_history(history_allfolds)
    last = mean.groupby("model").tail(1)[["model", "epoch", "n_folds", "train_loss", "valid_loss"]]
    context.add_output_metadata(
        {
            **figure_metadata(storage, "mean_history_allfolds", png_bytes(histories.plot_mean_history(mean))),
            "last_epoch": markdown(last),
        }
    )
    return mean


class EmbeddingMapConfig(dg.Config):
    """UMAP of every representation and fold."""

    splits: list[str] = Field(
        default=["train", "test"],
        description="Rows of each fold mapped together (the KPNN representations have test rows only).",
    )
    max_obs: int = Field(
        default=2000, ge=0, description="Seeded subsample per representation and fold (0 = all)."
    )
    seed: int = Field(default=0, description="Seed of the subsample and of UMAP.")
    n_neighbors: int = Field(default=15, ge=2, description="UMAP neighbours (capped at observations − 1).")
    min_dist: float = Field(default=0.5, ge=0, description="UMAP min_dist.")


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("embedding_maps"))
def embedding_maps(
    context: dg.AssetExecutionContext,
    config: EmbeddingMapConfig,
    embeddings: pd.DataFrame,
    storage: StorageResource,
) -> pd.DataFrame:
    """UMAP coordinates of every representation per fold; two maps per representation (cell type, batch)."""
    bad = set(config.splits) - {"train", "test"}
    if bad or not config.splits:
        raise dg.Failure(f"EmbeddingMapConfig.splits must be train and/or test, got {config.splits}")
    table, skipped = maps.embedding_maps(
        embeddings,
        splits=config.splits,
        max_obs=config.max_obs or None,
        seed=config.seed,
        n_neighbors=config.n_neighbors,
        min_dist=config.min_dist,
    )
    for where, reason in skipped.items():
        context.log.warning(f"embedding map {where}: {reason}")
    metadata = {}
    for name in dict.fromkeys(table["representation"]):
        for colour_by in ("cell_type", "batch"):
            if table.loc[table["representation"] == name, colour_by].notna().any():
                fig = maps.plot_map(table, name, colour_by)
                metadata.update(figure_metadata(storage, f"umap_{name}_{colour_by}", png_bytes(fig)))
    context.add_output_metadata(
        {
            **metadata,
            "skipped": dg.MetadataValue.json(skipped),
            "maps": markdown(
                table.groupby("representation")
                .agg(folds=("fold", "nunique"), points=("cell", "size"))
                .reset_index()
            ),
        }
    )
    return table


EXPERIMENT_ASSETS = [history_allfolds, mean_history_allfolds, embedding_maps]
