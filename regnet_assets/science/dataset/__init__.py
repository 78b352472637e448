"""The dataset stage: read and validate the ``.h5mu`` contract (or simulate one with a known
truth), then derive peak→gene links, motif hits, metacells and each gene's candidate TFs.
"""

from regnet_assets.science.dataset.candidates import candidates_from_tables, gene_table, gene_tf_candidates
from regnet_assets.science.dataset.contract import (
    DatasetError,
    peak_to_gene,
    quiet_mudata,
    read_multiome,
    validate_multiome,
)
from regnet_assets.science.dataset.metacells import make_metacells, split_table
from regnet_assets.science.dataset.motifs import dataset_motif_hits, scan_motifs
from regnet_assets.science.dataset.reference_data import dorothea, go_bp_gene_sets, signalling_pkn
from regnet_assets.science.dataset.simulate import SimulationConfig, simulate, write_simulated

__all__ = [
    "DatasetError",
    "SimulationConfig",
    "candidates_from_tables",
    "dataset_motif_hits",
    "dorothea",
    "gene_table",
    "gene_tf_candidates",
    "go_bp_gene_sets",
    "make_metacells",
    "peak_to_gene",
    "quiet_mudata",
    "read_multiome",
    "scan_motifs",
    "signalling_pkn",
    "simulate",
    "split_table",
    "validate_multiome",
    "write_simulated",
]
