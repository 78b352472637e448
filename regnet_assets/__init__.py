"""regnet: gene-regulation models for single-cell multiome data, as Dagster assets.

``regnet_assets.science`` holds the methods (no Dagster), ``regnet_assets.storage`` the
Parquet/DuckDB results, ``regnet_assets.defs`` the assets; ``load_gene_model`` reloads a
trained per-gene model from the storage folder.
"""

from regnet_assets.storage.models import load_gene_model

__all__ = ["load_gene_model"]
