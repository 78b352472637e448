"""Per-gene model checkpoints: ``<storage>/models/gene=<key>/model.pt`` beside ``gene_models``."""

from __future__ import annotations

from pathlib import Path

from regnet_assets.storage.parquet import PARTITION_COLUMN, storage_root, validate_key


def model_path(root: Path, gene: str) -> Path:
    """Where a gene's checkpoint lives under the storage root (the key is validated)."""
    return Path(root) / "models" / f"{PARTITION_COLUMN}={validate_key(gene, 'gene')}" / "model.pt"


def load_gene_model(gene: str, storage: str | Path | None = None):
    """The trained model of ``gene`` (eval mode) and its metadata, from the storage folder."""
    from regnet_assets.science.models.trainer import load_gene_model_file

    path = model_path(storage_root(storage), gene)
    if not path.exists():
        raise FileNotFoundError(f"no trained model for gene {gene!r} at {path}")
    return load_gene_model_file(path)
