"""Peak → gene links: the user's ``uns['peak_to_gene']`` table, or derived from TSS distance.

The links decide which genes can be modelled (:func:`modelable_genes`) and which peaks each gene's
model sees, so a link to an unknown gene or peak is a contract violation, not a silent drop.
"""

from __future__ import annotations

from collections.abc import Sequence

import mudata
import numpy as np
import pandas as pd

from regnet_assets.science.dataset.names import canonical_peak_names, parse_peak_names
from regnet_assets.science.dataset.reading import DatasetError, require_modality

__all__ = ["P2G_FIELD", "peak_to_gene", "modelable_genes"]

P2G_FIELD = "uns['peak_to_gene']"
P2G_COLUMNS = ("gene", "peak", "distance")


def _normalise_p2g(table, genes: pd.Index, peaks: pd.Index) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        try:
            table = pd.DataFrame(dict(table))
        except Exception as exc:  # noqa: BLE001
            raise DatasetError(P2G_FIELD, expected="a DataFrame", found=type(table).__name__) from exc
    missing = [c for c in P2G_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(
            P2G_FIELD,
            expected=f"columns {list(P2G_COLUMNS)}",
            found=f"columns {list(map(str, table.columns))} (missing {missing})",
        )
    gene = table["gene"].astype(str).to_numpy(dtype=object)
    peak = table["peak"].astype(str).to_numpy(dtype=object)
    unknown_g = ~pd.Index(gene).isin(genes)
    if unknown_g.any():
        raise DatasetError(
            f"{P2G_FIELD}.gene",
            expected="genes present in mod['rna'].var_names",
            found=f"{int(unknown_g.sum())} rows with unknown genes, first {gene[unknown_g][0]!r}",
        )
    unknown_p = ~pd.Index(peak).isin(peaks)
    if unknown_p.any():
        peak, unknown_p = _respell_peaks(peak, unknown_p, peaks)
    if unknown_p.any():
        raise DatasetError(
            f"{P2G_FIELD}.peak",
            expected="peaks present in mod['atac'].var_names",
            found=f"{int(unknown_p.sum())} rows with unknown peaks, first {peak[unknown_p][0]!r}",
        )
    raw = table["distance"]
    numeric = pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw)
    if not numeric and raw.dtype == object:  # e.g. mixed ints/floats read back from uns
        numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in raw)
    if not numeric:
        raise DatasetError(f"{P2G_FIELD}.distance", expected="numeric distances", found=f"dtype {raw.dtype}")
    distance = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(distance)
    if bad.any():
        first = raw.to_numpy()[bad][0]
        raise DatasetError(
            f"{P2G_FIELD}.distance",
            expected="finite numbers (bp to TSS; negative = upstream is fine)",
            found=f"{int(bad.sum())} bad values, first {first!r}",
        )
    out = pd.DataFrame({"gene": gene, "peak": peak, "distance": distance})
    return _sort_p2g(out)


def _respell_peaks(peak: np.ndarray, unknown: np.ndarray, peaks: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Map links whose peak is spelled differently from ``var_names`` (``chr1-100-200`` for
    ``chr1:100-200``) to the dataset's spelling by coordinates; what matches nothing stays unknown."""
    canon = pd.Series(peaks.to_numpy(dtype=object), index=canonical_peak_names(peaks))
    canon = canon[canon.index.notna() & ~canon.index.duplicated()]
    wanted = canonical_peak_names(peak[unknown])
    found = canon.reindex(wanted).to_numpy(dtype=object)
    peak = peak.copy()
    hit = pd.notna(found)
    peak[np.flatnonzero(unknown)[hit]] = found[hit]
    return peak, ~pd.Index(peak).isin(peaks)


def _sort_p2g(out: pd.DataFrame) -> pd.DataFrame:
    """Sorted by gene then |distance|; a pair listed twice keeps its shortest |distance| (as in
    Cell2Net). Signed distances (negative upstream, as ArchR/Signac tables give them) keep their
    sign: the model only ever uses |d|."""
    out = out.assign(_abs=out["distance"].abs())
    out = out.sort_values(["gene", "_abs", "peak"], kind="mergesort")
    out = out.drop_duplicates(["gene", "peak"], keep="first")
    return out.drop(columns="_abs").reset_index(drop=True)


def _derive_p2g(rna_var: pd.DataFrame, peaks: pd.DataFrame, window: int) -> pd.DataFrame:
    """Link a peak to a gene when the peak midpoint is within ±window bp of the TSS."""
    field = "mod['rna'].var['tss']"
    tss = pd.to_numeric(rna_var["tss"], errors="coerce")
    nonnum = tss.isna() & rna_var["tss"].notna()
    if nonnum.any():
        raise DatasetError(
            field,
            expected="numeric TSS positions",
            found=f"{int(nonnum.sum())} non-numeric, first {rna_var['tss'][nonnum].iloc[0]!r}",
        )
    keep = tss.notna().to_numpy() & rna_var["chrom"].notna().to_numpy()
    if (tss[keep] < 0).any():
        raise DatasetError(field, expected="non-negative TSS positions", found="negative values")
    genes = rna_var.index[keep]
    g_chrom = rna_var["chrom"][keep].astype(str).to_numpy()
    g_tss = tss[keep].to_numpy(dtype=np.int64)
    mid = ((peaks["start"].to_numpy() + peaks["end"].to_numpy()) // 2).astype(np.int64)
    p_chrom = peaks["chrom"].to_numpy().astype(str)
    rows_g, rows_p, rows_d = [], [], []
    for chrom in np.intersect1d(np.unique(g_chrom), np.unique(p_chrom)):
        p_idx = np.flatnonzero(p_chrom == chrom)
        order = p_idx[np.argsort(mid[p_idx], kind="stable")]
        sorted_mid = mid[order]
        g_idx = np.flatnonzero(g_chrom == chrom)
        lo = np.searchsorted(sorted_mid, g_tss[g_idx] - window, side="left")
        hi = np.searchsorted(sorted_mid, g_tss[g_idx] + window, side="right")
        counts = hi - lo
        if counts.sum() == 0:
            continue
        # Expand [lo, hi) ranges without a Python loop over genes.
        rep_g = np.repeat(g_idx, counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        pos = np.repeat(lo, counts) + offsets
        p_sel = order[pos]
        rows_g.append(rep_g)
        rows_p.append(p_sel)
        rows_d.append(np.abs(mid[p_sel] - g_tss[rep_g]))
    if rows_g:
        gi, pi, d = (np.concatenate(x) for x in (rows_g, rows_p, rows_d))
    else:
        gi = pi = np.zeros(0, dtype=np.int64)
        d = np.zeros(0)
    out = pd.DataFrame(
        {
            "gene": genes.to_numpy(dtype=object)[gi],
            "peak": peaks.index.to_numpy(dtype=object)[pi],
            "distance": d.astype(np.float64),
        }
    )
    return _sort_p2g(out)


def peak_to_gene(mdata: mudata.MuData, window: int = 500_000) -> pd.DataFrame:
    """The gene–peak link table (gene, peak, distance), sorted by gene then distance.

    Uses ``uns['peak_to_gene']`` when the user supplied one (their links win), else derives
    distance-only links from ``rna.var[['chrom','tss']]`` as Cell2Net does (no correlation test).
    """
    rna, atac = require_modality(mdata, "rna"), require_modality(mdata, "atac")
    if "peak_to_gene" in mdata.uns:
        return _normalise_p2g(mdata.uns["peak_to_gene"], rna.var_names, atac.var_names)
    if {"chrom", "tss"} <= set(rna.var.columns):
        peaks = parse_peak_names(atac.var_names)
        return _derive_p2g(rna.var, peaks, int(window))
    raise DatasetError(
        f"{P2G_FIELD} or mod['rna'].var[['chrom','tss']]",
        expected="a peak_to_gene table, or gene TSS coordinates to derive it",
        found="neither",
    )


def modelable_genes(
    peak_to_gene: pd.DataFrame, min_peaks: int = 3, gene_order: Sequence[str] | None = None
) -> list[str]:
    """Genes with at least ``min_peaks`` linked peaks: these become the gene partitions.

    Order is stable: ``gene_order`` (pass ``rna.var_names``) when given, else first appearance
    in the table, so partition lists do not reshuffle between runs.
    """
    counts = peak_to_gene.groupby("gene", sort=False)["peak"].nunique()
    keep = counts.index[counts.to_numpy() >= min_peaks]
    if gene_order is None:
        return [str(g) for g in keep]
    wanted = set(keep)
    return [str(g) for g in pd.Index(gene_order).unique() if g in wanted]
