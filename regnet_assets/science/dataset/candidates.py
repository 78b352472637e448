"""Gene → candidate TF table (Cell2Net step 9, in long form).

A TF can only explain a gene through a motif in one of the gene's linked peaks, and only if
the TF is itself expressed (its RNA is the model's TF-activity input). Restricting each
gene's model to these candidates is what keeps the per-gene models small and interpretable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from regnet_assets.science.dataset.reading import DatasetError

__all__ = ["gene_tf_candidates", "candidates_from_tables", "gene_table", "expressed_fraction"]


def expressed_fraction(counts) -> np.ndarray:
    """Per column, the fraction of rows (cells or metacells) with a count > 0."""
    n = counts.shape[0]
    if n == 0:
        return np.zeros(counts.shape[1])
    if sp.issparse(counts):
        nonzero = np.asarray((counts.tocsc() > 0).sum(axis=0)).ravel()
    else:
        nonzero = (np.asarray(counts) > 0).sum(axis=0)
    return nonzero / n


def gene_tf_candidates(
    peak_to_gene: pd.DataFrame,
    motif_hits,
    peak_names: Sequence[str],
    tf_names: Sequence[str],
    rna_counts,
    gene_names: Sequence[str],
    min_expr_fraction: float = 0.05,
) -> pd.DataFrame:
    """Rows (gene, tf, n_peaks_hit): TF motif hits ≥ 1 peak linked to the gene, TF expressed.

    ``n_peaks_hit`` counts distinct linked peaks hit by the TF. A TF is expressed when it is a
    gene of ``rna_counts`` (obs × ``gene_names``) with nonzero counts in at least
    ``min_expr_fraction`` of the rows (and in at least one, even at threshold 0); a TF absent
    from the RNA never qualifies. A gene is never its own candidate. Names match exactly
    (case-sensitive). Several motif columns with the same TF name are merged. Sorted by gene,
    then tf.
    """
    peak_index = pd.Index(peak_names)
    tf_names = pd.Index([str(t) for t in tf_names])
    if motif_hits.shape != (len(peak_index), len(tf_names)):
        raise DatasetError(
            "motif_hits",
            expected=f"shape ({len(peak_index)} peaks, {len(tf_names)} TFs)",
            found=f"shape {tuple(motif_hits.shape)}",
        )
    gene_names = pd.Index([str(g) for g in gene_names])
    if rna_counts.shape[1] != len(gene_names):
        raise DatasetError(
            "rna_counts",
            expected=f"{len(gene_names)} columns (one per gene name)",
            found=f"shape {tuple(rna_counts.shape)}",
        )
    empty = pd.DataFrame(
        {
            "gene": pd.Series([], dtype=object),
            "tf": pd.Series([], dtype=object),
            "n_peaks_hit": pd.Series([], dtype=np.int64),
        }
    )

    links = peak_to_gene[["gene", "peak"]].astype(str)
    p_idx = peak_index.get_indexer(links["peak"])
    if (p_idx < 0).any():
        raise DatasetError(
            "peak_to_gene.peak",
            expected="peaks listed in peak_names",
            found=f"{int((p_idx < 0).sum())} unknown, first {links['peak'][p_idx < 0].iloc[0]!r}",
        )
    genes, g_idx = np.unique(links["gene"].to_numpy(dtype=str), return_inverse=True)
    if genes.size == 0 or tf_names.size == 0:
        return empty
    L = sp.csr_matrix((np.ones(len(p_idx)), (g_idx, p_idx)), shape=(genes.size, len(peak_index)))
    L.data[:] = 1.0  # a pair listed twice is still one peak

    # Merge motif columns by TF name, then keep expressed TFs only.
    tfs, t_idx = np.unique(tf_names.to_numpy(dtype=str), return_inverse=True)
    T = sp.csr_matrix((np.ones(len(t_idx)), (np.arange(len(t_idx)), t_idx)), shape=(len(t_idx), tfs.size))
    H = (
        sp.csr_matrix(motif_hits, dtype=np.float64)
        if not sp.issparse(motif_hits)
        else motif_hits.tocsr().astype(np.float64)
    )
    H = ((H != 0).astype(np.float64) @ T) > 0

    frac = expressed_fraction(rna_counts)
    pos = gene_names.get_indexer(tfs)
    tf_frac = frac[np.maximum(pos, 0)]
    expressed = (pos >= 0) & (tf_frac > 0) & (tf_frac >= min_expr_fraction)
    H = H.astype(np.float64) @ sp.diags(expressed.astype(np.float64))

    hits = (L @ H).tocoo()
    keep = hits.data > 0
    rows, cols, n_hit = hits.row[keep], hits.col[keep], hits.data[keep]
    not_self = genes[rows] != tfs[cols]
    out = pd.DataFrame(
        {
            "gene": genes[rows[not_self]].astype(object),
            "tf": tfs[cols[not_self]].astype(object),
            "n_peaks_hit": np.rint(n_hit[not_self]).astype(np.int64),
        }
    )
    if out.empty:
        return empty
    return out.sort_values(["gene", "tf"], kind="mergesort").reset_index(drop=True)


def candidates_from_tables(
    peak_to_gene: pd.DataFrame, motif_hits: pd.DataFrame, rna, min_expr_fraction: float = 0.05
) -> pd.DataFrame:
    """:func:`gene_tf_candidates` from the long ``motif_hits`` table (peak, tf) and an RNA AnnData.

    Convenience for the orchestration, which stores hits as Parquet rather than a matrix;
    ``rna`` is usually the metacell RNA, so expression is judged where the models train.
    """
    peaks = pd.Index(pd.unique(pd.concat([peak_to_gene["peak"], motif_hits["peak"]]).astype(str)))
    tfs = pd.Index(pd.unique(motif_hits["tf"].astype(str)))
    rows = peaks.get_indexer(motif_hits["peak"].astype(str))
    cols = tfs.get_indexer(motif_hits["tf"].astype(str))
    hits = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(peaks), len(tfs)))
    return gene_tf_candidates(
        peak_to_gene, hits, peaks, tfs, rna.X, rna.var_names, min_expr_fraction=min_expr_fraction
    )


def gene_table(
    peak_to_gene: pd.DataFrame,
    candidates: pd.DataFrame,
    min_peaks: int = 3,
    min_tfs: int = 1,
    gene_order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per linked gene: ``gene, n_peaks, n_candidate_tfs, modelable``.

    ``modelable`` (≥ ``min_peaks`` distinct linked peaks and ≥ ``min_tfs`` candidate TFs) marks
    the genes that become partitions: a model without peaks or TFs has nothing to learn from.
    Row order is ``gene_order`` (pass ``rna.var_names``) when given, else first appearance in
    ``peak_to_gene``, so the partition list is stable between runs.
    """
    n_peaks = peak_to_gene.groupby("gene", sort=False)["peak"].nunique()
    n_tfs = candidates.groupby("gene", sort=False)["tf"].nunique()
    genes = pd.Index(n_peaks.index.astype(str))
    if gene_order is not None:
        order = pd.Index(gene_order).astype(str)
        genes = order[order.isin(genes)].unique().append(genes[~genes.isin(order)])
    table = pd.DataFrame(
        {
            "gene": genes.to_numpy(dtype=object),
            "n_peaks": n_peaks.reindex(genes).fillna(0).to_numpy(dtype=np.int64),
            "n_candidate_tfs": n_tfs.reindex(genes).fillna(0).to_numpy(dtype=np.int64),
        }
    )
    table["modelable"] = (table["n_peaks"] >= min_peaks) & (table["n_candidate_tfs"] >= min_tfs)
    return table
