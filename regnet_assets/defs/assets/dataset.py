"""The ``dataset`` group: the validated .h5mu, its metacells and the derived tables."""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from regnet_assets.atomic import write_atomic
from regnet_assets.defs.metadata import column_schema, figure_metadata, file_metadata
from regnet_assets.defs.resources import DatasetResource, StorageResource
from regnet_assets.science.common.figures import png_bytes
from regnet_assets.science.dataset import candidates, motifs
from regnet_assets.science.dataset import metacells as metacell_science
from regnet_assets.science.dataset.links import peak_to_gene
from regnet_assets.science.dataset.qc_figures import plot_dataset_qc
from regnet_assets.science.dataset.reading import quiet_mudata, read_multiome
from regnet_assets.science.dataset.simulator import truth_table
from regnet_assets.science.dataset.validation import validate_multiome
from regnet_assets.storage.tables import column_names

GROUP = "dataset"


@dataclass(frozen=True)
class H5muRef:
    """Where a validated .h5mu lives, and what it holds (what the pickle IO manager stores)."""

    path: str
    simulated: bool
    n_cells: int
    n_genes: int
    n_peaks: int


def _ref(path: Path, mdata, simulated: bool) -> H5muRef:
    return H5muRef(str(path), simulated, mdata.n_obs, mdata["rna"].n_vars, mdata["atac"].n_vars)


def _read(ref: H5muRef, backed: bool = False):
    """The dataset; ``backed`` for steps that need no count matrix (they stay on disk)."""
    return read_multiome(ref.path, backed=backed)


@dg.asset(group_name=GROUP, io_manager_key="object_io_manager", kinds={"h5mu"})
def multiome(
    context: dg.AssetExecutionContext, dataset_config: DatasetResource, storage: StorageResource
) -> H5muRef:
    """The multiome dataset: the user's .h5mu, validated, or the simulated default with truth."""
    if dataset_config.simulated:
        from regnet_assets.science.dataset.simulator import simulate

        mdata = simulate(dataset_config.simulation_config())
        validate_multiome(mdata, groupby=dataset_config.groupby)
        path = storage.path / "dataset" / "simulated.h5mu"
        with quiet_mudata():
            write_atomic(path, lambda tmp: mdata.write(str(tmp)))
    else:
        path = Path(dataset_config.path).resolve()
        mdata = read_multiome(path)
        validate_multiome(mdata, groupby=dataset_config.groupby)
    ref = _ref(path, mdata, dataset_config.simulated)
    context.add_output_metadata(
        {
            **file_metadata(storage.path, ref.path),
            "cells": ref.n_cells,
            "genes": ref.n_genes,
            "peaks": ref.n_peaks,
            "simulated": ref.simulated,
            "dataset_config": dg.MetadataValue.json(dataset_config.model_dump()),
        }
    )
    return ref


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("peak_gene_links"))
def peak_gene_links(multiome: H5muRef) -> pd.DataFrame:
    """Peak → gene links with the distance to the TSS (given, or derived within ±500 kb)."""
    return peak_to_gene(_read(multiome, backed=True))


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("motif_hits"))
def motif_hits(context: dg.AssetExecutionContext, multiome: H5muRef) -> pd.DataFrame:
    """TF motif hits per peak (long form): given in the file, or scanned with JASPAR2024 PWMs."""
    table, tfs, source = motifs.motif_hit_table(_read(multiome, backed=True))
    context.add_output_metadata({"source": source, "tfs": len(tfs)})
    return table


class MetacellConfig(dg.Config):
    """Cell2Net aggregation: kNN groups of raw counts around seeds spread over PCA space, built
    per split after the *cells* are split train / valid / test (no cell in two splits)."""

    n_metacells: int = Field(default=0, description="0 = one per ~50 cells, at least 200.")
    k: int = 15
    seed: int = 0
    train_fraction: float = 0.7
    valid_fraction: float = Field(
        default=0.15, description="Share of cells for early stopping; the rest (0.15) is the test split."
    )


@dg.asset(group_name=GROUP, io_manager_key="object_io_manager", kinds={"h5mu"})
def metacell_multiome(
    context: dg.AssetExecutionContext,
    config: MetacellConfig,
    multiome: H5muRef,
    dataset_config: DatasetResource,
    storage: StorageResource,
) -> H5muRef:
    """Metacells: summed raw counts of each seed's kNN group, with covariates and the split;
    plot: the dataset's QC (counts per cell and peak, cells per type × batch, metacell sizes)."""
    cells = _read(multiome)
    mc = metacell_science.make_metacells(
        cells,
        n_metacells=config.n_metacells or None,
        k=config.k,
        groupby=dataset_config.groupby,
        seed=config.seed,
        train_fraction=config.train_fraction,
        valid_fraction=config.valid_fraction,
    )
    path = storage.path / "dataset" / "metacells.h5mu"
    with quiet_mudata():
        write_atomic(path, lambda tmp: mc.write(str(tmp)))
    info = mc.uns["metacells"]
    context.add_output_metadata(
        {
            "metacells": int(mc.n_obs),
            **{f"metacells_{s}": int((mc.obs["split"] == s).sum()) for s in metacell_science.SPLITS},
            **{key: info[key] for key in info if key.startswith("n_cells")},
            **figure_metadata(
                storage, "dataset_qc", png_bytes(plot_dataset_qc(cells, mc, dataset_config.groupby))
            ),
        }
    )
    return _ref(path, mc, multiome.simulated)


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("metacells"))
def metacells(metacell_multiome: H5muRef) -> pd.DataFrame:
    """One row per metacell: label, batch, condition, covariates and train/valid/test split."""
    return metacell_science.split_table(_read(metacell_multiome))


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("gene_tf_candidates"))
def gene_tf_candidates(
    peak_gene_links: pd.DataFrame, motif_hits: pd.DataFrame, metacell_multiome: H5muRef
) -> pd.DataFrame:
    """Candidate regulators: expressed TFs whose motif hits a peak linked to the gene."""
    mc = _read(metacell_multiome)
    return candidates.candidates_from_tables(peak_gene_links, motif_hits, mc["rna"])


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("genes"))
def genes(peak_gene_links: pd.DataFrame, gene_tf_candidates: pd.DataFrame, multiome: H5muRef) -> pd.DataFrame:
    """Every linked gene with its peak and candidate-TF counts; `modelable` genes become partitions."""
    order = _read(multiome, backed=True)["rna"].var_names
    return candidates.gene_table(peak_gene_links, gene_tf_candidates, gene_order=order)


def _truth(multiome: H5muRef, key: str, columns: list[str]) -> pd.DataFrame:
    return truth_table(_read(multiome, backed=True) if multiome.simulated else None, key, columns)


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("truth_tf_gene"))
def truth_tf_gene(multiome: H5muRef) -> pd.DataFrame:
    """The simulator's signed TF → gene edges (empty for a user's dataset)."""
    return _truth(multiome, "truth_tf_gene", column_names("truth_tf_gene"))


@dg.asset(group_name=GROUP, kinds={"parquet"}, metadata=column_schema("truth_signalling"))
def truth_signalling(multiome: H5muRef) -> pd.DataFrame:
    """The simulator's receptor → kinase → TF hierarchy (empty for a user's dataset)."""
    return _truth(multiome, "truth_signalling", column_names("truth_signalling"))


DATASET_TABLES = [
    peak_gene_links,
    motif_hits,
    metacells,
    gene_tf_candidates,
    genes,
    truth_tf_gene,
    truth_signalling,
]
DATASET_ASSETS = [multiome, metacell_multiome, *DATASET_TABLES]
