"""Gene → candidate TF table: hand-built case, exclusions, agreement with a brute-force loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from regnet_assets.science.dataset.candidates import (
    candidates_from_tables,
    expressed_fraction,
    gene_table,
    gene_tf_candidates,
)
from regnet_assets.science.dataset.reading import DatasetError

PEAKS = [f"chr1:{i * 100}-{i * 100 + 50}" for i in range(5)]  # p0..p4
TFS = ["TF1", "TF2", "TF3", "GB", "TF1", "NOTINRNA"]  # TF1 has two motifs
GENES = ["GA", "GB", "TF1", "TF2", "TF3"]
HITS = np.array(
    [
        # TF1 TF2 TF3 GB TF1' NOTINRNA
        [1, 0, 1, 0, 1, 1],  # p0
        [1, 0, 0, 1, 0, 1],  # p1
        [0, 0, 0, 0, 1, 1],  # p2
        [0, 1, 0, 0, 0, 1],  # p3
        [1, 1, 0, 0, 0, 1],  # p4
    ]
)
LINKS = pd.DataFrame(
    {
        "gene": ["GA", "GA", "GB", "GB", "GB", "TF1", "GA"],
        "peak": [PEAKS[0], PEAKS[1], PEAKS[1], PEAKS[2], PEAKS[3], PEAKS[4], PEAKS[0]],  # GA-p0 twice
        "distance": [10.0, 20.0, 5.0, 6.0, 7.0, 8.0, 30.0],
    }
)


def rna_counts():
    """10 observations: TF3 never expressed, TF2 in 1 of 10, the rest everywhere."""
    counts = np.ones((10, len(GENES)))
    counts[:, GENES.index("TF3")] = 0
    counts[1:, GENES.index("TF2")] = 0
    return counts


EXPECTED = [
    ("GA", "GB", 1),  # GB's motif hits p1, linked to GA
    ("GA", "TF1", 2),  # p0 and p1 (p0 hit by both TF1 motifs and listed twice: still 1 peak)
    ("GB", "TF1", 2),  # p1 (first motif) and p2 (second motif); GB itself excluded
    ("GB", "TF2", 1),  # p3
    ("TF1", "TF2", 1),  # p4; TF1's own motif on p4 is self-regulation, excluded
]


@pytest.mark.parametrize("sparse_hits", [False, True])
@pytest.mark.parametrize("sparse_rna", [False, True])
def test_hand_built_case(sparse_hits, sparse_rna):
    hits = sp.csr_matrix(HITS) if sparse_hits else HITS
    counts = sp.csr_matrix(rna_counts()) if sparse_rna else rna_counts()
    table = gene_tf_candidates(LINKS, hits, PEAKS, TFS, counts, GENES, min_expr_fraction=0.05)
    assert list(table.columns) == ["gene", "tf", "n_peaks_hit"]
    assert table["n_peaks_hit"].dtype == np.int64
    assert list(table.itertuples(index=False, name=None)) == EXPECTED


def test_expression_threshold_excludes_rarely_expressed_tf():
    table = gene_tf_candidates(LINKS, HITS, PEAKS, TFS, rna_counts(), GENES, min_expr_fraction=0.2)
    assert "TF2" not in set(table["tf"])
    assert list(table.itertuples(index=False, name=None)) == [r for r in EXPECTED if r[1] != "TF2"]
    # TF3 is never expressed (a constant-zero input) and NOTINRNA is not an RNA gene:
    # neither qualifies even at threshold 0, where every other hit does.
    table = gene_tf_candidates(LINKS, HITS, PEAKS, TFS, rna_counts(), GENES, min_expr_fraction=0.0)
    assert list(table.itertuples(index=False, name=None)) == EXPECTED


def test_agrees_with_brute_force():
    rng = np.random.default_rng(0)
    peaks = [f"chr2:{i}-{i + 1}" for i in range(40)]
    genes = [f"G{i}" for i in range(15)]
    tfs = [f"G{i}" for i in rng.integers(0, 20, 12)]  # some absent from RNA, some repeated
    hits = (rng.random((40, 12)) < 0.15).astype(int)
    counts = rng.poisson(0.3, (30, 15))
    links = pd.DataFrame({"gene": rng.choice(genes, 60), "peak": rng.choice(peaks, 60), "distance": 1.0})
    frac = (counts > 0).mean(axis=0)
    expected = []
    for gene in sorted(set(links["gene"])):
        linked = {peaks.index(p) for p in links.loc[links["gene"] == gene, "peak"]}
        for tf in sorted(set(tfs)):
            if tf == gene or tf not in genes or frac[genes.index(tf)] < 0.1:
                continue
            cols = [j for j, t in enumerate(tfs) if t == tf]
            n_hit = sum(1 for p in linked if hits[p, cols].any())
            if n_hit:
                expected.append((gene, tf, n_hit))
    table = gene_tf_candidates(links, hits, peaks, tfs, counts, genes, min_expr_fraction=0.1)
    assert list(table.itertuples(index=False, name=None)) == expected
    assert len(expected) > 5


def test_empty_and_bad_inputs():
    empty = gene_tf_candidates(LINKS.iloc[:0], HITS, PEAKS, TFS, rna_counts(), GENES)
    assert list(empty.columns) == ["gene", "tf", "n_peaks_hit"] and len(empty) == 0
    with pytest.raises(DatasetError) as info:
        gene_tf_candidates(LINKS.assign(peak="chrX:1-2"), HITS, PEAKS, TFS, rna_counts(), GENES)
    assert info.value.field == "peak_to_gene.peak" and "chrX:1-2" in str(info.value)
    with pytest.raises(DatasetError) as info:
        gene_tf_candidates(LINKS, HITS[:, :3], PEAKS, TFS, rna_counts(), GENES)
    assert info.value.field == "motif_hits"
    with pytest.raises(DatasetError):
        gene_tf_candidates(LINKS, HITS, PEAKS, TFS, rna_counts()[:, :3], GENES)


def test_expressed_fraction_dense_and_sparse_agree():
    counts = np.array([[0, 1, 2], [0, 0, 3], [0, 0, 0], [0, 5, 1]])
    assert expressed_fraction(counts).tolist() == [0.0, 0.5, 0.75]
    assert expressed_fraction(sp.csr_matrix(counts)).tolist() == [0.0, 0.5, 0.75]


def test_candidates_from_long_tables_match_matrix_form():
    import anndata as ad

    coo = sp.coo_matrix(HITS)
    long_hits = pd.DataFrame(
        {"peak": np.asarray(PEAKS)[coo.row], "tf": np.asarray(TFS)[coo.col]}
    ).drop_duplicates()
    rna = ad.AnnData(rna_counts().astype(np.float32), var=pd.DataFrame(index=GENES))
    table = candidates_from_tables(LINKS, long_hits, rna, min_expr_fraction=0.05)
    assert list(table.itertuples(index=False, name=None)) == EXPECTED


def test_gene_table_counts_and_modelable():
    cands = pd.DataFrame(EXPECTED, columns=["gene", "tf", "n_peaks_hit"])
    table = gene_table(LINKS, cands, min_peaks=2)
    assert table.values.tolist() == [
        ["GA", 2, 2, True],
        ["GB", 3, 2, True],
        ["TF1", 1, 1, False],
    ]
    ordered = gene_table(LINKS, cands.iloc[:2], min_peaks=2, gene_order=["TF1", "GB", "X", "GA"])
    assert ordered.values.tolist() == [
        ["TF1", 1, 0, False],
        ["GB", 3, 0, False],
        ["GA", 2, 2, True],
    ]
