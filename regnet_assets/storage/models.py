"""Per-gene model checkpoints: ``<storage>/models/gene=<key>/model.pt`` beside ``gene_models``."""

from __future__ import annotations

from pathlib import Path

from regnet_assets.storage.parquet import PARTITION_COLUMN, storage_root, validate_key


def model_path(root: Path, gene: str) -> Path:
    """Where a gene's checkpoint lives under the storage root (the key is validated)."""
    return Path(root) / "models" / f"{PARTITION_COLUMN}={validate_key(gene, 'gene')}" / "model.pt"


def read_checkpoint(root: Path, gene: str):
    """The :class:`~regnet_assets.science.models.GeneCheckpoint` of ``gene`` under the storage root."""
    from regnet_assets.science.models.checkpoint import GeneCheckpoint

    path = model_path(root, gene)
    if not path.exists():
        raise FileNotFoundError(f"no trained model for gene {gene!r} at {path}")
    return GeneCheckpoint.load(path)


def load_gene_model(gene: str, storage: str | Path | None = None):
    """The trained model of ``gene`` (eval mode) and its metadata, from the storage folder."""
    checkpoint = read_checkpoint(storage_root(storage), gene)
    return checkpoint.module(), checkpoint.metadata()
