"""The models stage: one Cell2Net-style network per gene (peaks, sequences, TF expression,
covariates → the gene's counts), trained many genes at a time in one batched computation.
"""

from regnet_assets.science.models.module import BatchedGeneModel, ModelSpec
from regnet_assets.science.models.quality import performance_summary, plot_train_vs_valid
from regnet_assets.science.models.trainer import (
    GeneInputs,
    GeneResult,
    TrainConfig,
    build_gene_inputs,
    correlation_row,
    load_gene_model_file,
    predict,
    save_gene_model,
    train_genes,
)

__all__ = [
    "BatchedGeneModel",
    "GeneInputs",
    "GeneResult",
    "ModelSpec",
    "TrainConfig",
    "build_gene_inputs",
    "correlation_row",
    "load_gene_model_file",
    "performance_summary",
    "plot_train_vs_valid",
    "predict",
    "save_gene_model",
    "train_genes",
]
