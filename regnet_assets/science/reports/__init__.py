"""The reports stage: each representation as a matrix, its per-fold embeddings and their clustering
scores, gene programs of the latent spaces and their enrichment, the TF ablation, training histories
across folds, and 2-D maps.
"""

from regnet_assets.science.reports.ablation import plot_gene_ranks, tf_dependence, without_tf_branch
from regnet_assets.science.reports.clustering import clustering_scores, plot_scores, summarise_scores
from regnet_assets.science.reports.embedding_scores import score_embeddings, summarise_by_split
from regnet_assets.science.reports.embeddings import EMBEDDING_COLUMNS, fold_assignment, fold_embeddings
from regnet_assets.science.reports.enrichment import enrich_programs, plot_top_terms, symbol_coverage
from regnet_assets.science.reports.histories import history_allfolds, mean_history, plot_mean_history
from regnet_assets.science.reports.latents import latent_programs, plot_dim_importance, program_sets
from regnet_assets.science.reports.maps import embedding_maps, plot_map
from regnet_assets.science.reports.matrices import (
    cell_labels,
    kpnn_latent,
    predicted_expression,
    role_labels,
    tf_activity,
)

__all__ = [
    "EMBEDDING_COLUMNS",
    "cell_labels",
    "clustering_scores",
    "embedding_maps",
    "enrich_programs",
    "fold_assignment",
    "fold_embeddings",
    "history_allfolds",
    "kpnn_latent",
    "latent_programs",
    "mean_history",
    "plot_dim_importance",
    "plot_gene_ranks",
    "plot_map",
    "plot_mean_history",
    "plot_scores",
    "plot_top_terms",
    "predicted_expression",
    "program_sets",
    "role_labels",
    "score_embeddings",
    "summarise_by_split",
    "summarise_scores",
    "symbol_coverage",
    "tf_activity",
    "tf_dependence",
    "without_tf_branch",
]
