"""The reports stage: representations per fold and their clustering scores, gene programs and
their enrichment, training histories across folds, and 2-D maps.
"""

from regnet_assets.science.reports.clustering import clustering_scores, plot_scores, summarise_scores
from regnet_assets.science.reports.enrichment import enrich_programs, plot_top_terms
from regnet_assets.science.reports.histories import history_allfolds, mean_history, plot_mean_history
from regnet_assets.science.reports.maps import embedding_maps, plot_map

__all__ = [
    "clustering_scores",
    "embedding_maps",
    "enrich_programs",
    "history_allfolds",
    "mean_history",
    "plot_map",
    "plot_mean_history",
    "plot_scores",
    "plot_top_terms",
    "summarise_scores",
]
