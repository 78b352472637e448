"""The models stage: one Cell2Net-style network per gene (peaks, sequences, TF expression,
covariates → the gene's counts), trained many genes at a time in one batched computation.
"""

from regnet_assets.science.models.checkpoint import GeneCheckpoint, load_gene_model_file
from regnet_assets.science.models.config import TrainConfig
from regnet_assets.science.models.inference import predict
from regnet_assets.science.models.inputs import GeneInputs, build_gene_inputs
from regnet_assets.science.models.module import BatchedGeneModel, ModelSpec
from regnet_assets.science.models.quality import correlation_row, performance_summary, plot_train_vs_valid
from regnet_assets.science.models.trainer import GeneResult, train_genes

__all__ = [
    "BatchedGeneModel",
    "GeneCheckpoint",
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
    "train_genes",
]
