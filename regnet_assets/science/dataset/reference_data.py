"""Real human reference data shipped inside the package, so nothing is downloaded at run time.

Provenance, checksums and licences of each file are in ``regnet_assets/data/PROVENANCE.md``.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import pandas as pd

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


@lru_cache(maxsize=1)
def dorothea() -> pd.DataFrame:
    """DoRothEA human regulons: columns ``tf, confidence, target, mor`` (mor = +1/-1)."""
    return pd.read_csv(DATA_DIR / "dorothea_hs.tsv.gz", sep="\t")


@lru_cache(maxsize=1)
def signalling_pkn() -> pd.DataFrame:
    """Signed human signalling network: columns ``source, interaction, target`` (duplicates kept)."""
    return pd.read_csv(DATA_DIR / "signalling_pkn.tsv.gz", sep="\t")


@lru_cache(maxsize=1)
def go_bp_gene_sets() -> dict[str, list[str]]:
    """GO Biological Process gene sets (human symbols) as ``{term name: genes}``.

    A dict, not a path: gseapy treats a string that is not a ``.gmt`` path as an Enrichr
    library name and would try to download it.
    """
    with gzip.open(DATA_DIR / "go_bp_human.gmt.gz", "rt") as handle:
        fields = (line.rstrip("\n").split("\t") for line in handle)
        return {f[0]: f[2:] for f in fields}
