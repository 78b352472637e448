"""The dataset stage: read and validate the ``.h5mu`` contract (or simulate one with a known
truth), then derive peak→gene links, motif hits, metacells and each gene's candidate TFs.
"""

from regnet_assets.science.dataset.candidates import candidates_from_tables, gene_table, gene_tf_candidates
from regnet_assets.science.dataset.links import modelable_genes, peak_to_gene
from regnet_assets.science.dataset.metacells import make_metacells, split_table
from regnet_assets.science.dataset.motifs import dataset_motif_hits, motif_hit_table, scan_motifs
from regnet_assets.science.dataset.names import parse_peak_names
from regnet_assets.science.dataset.reading import DatasetError, quiet_mudata, read_multiome
from regnet_assets.science.dataset.reference_data import dorothea, go_bp_gene_sets, signalling_pkn
from regnet_assets.science.dataset.simulator import SimulationConfig, simulate, truth_table, write_simulated
from regnet_assets.science.dataset.validation import validate_multiome

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
    "motif_hit_table",
    "modelable_genes",
    "parse_peak_names",
    "peak_to_gene",
    "quiet_mudata",
    "read_multiome",
    "scan_motifs",
    "signalling_pkn",
    "simulate",
    "split_table",
    "truth_table",
    "validate_multiome",
    "write_simulated",
]
