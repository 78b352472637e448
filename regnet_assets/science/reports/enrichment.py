"""Offline over-representation analysis of gene programs with gseapy, and a diverging bar plot.

Offline by construction: gseapy only goes to the network when a gene-set entry is a string that is
not an existing ``.gmt`` path (Enrichr library name) or the background is a string (BioMart dataset).
Here gene sets are always handed over as a dict and the background as a list, and anything else is
rejected before gseapy is called.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control

__all__ = ["GSEAPY_COLUMNS", "enrich_programs", "plot_top_terms", "load_gmt", "symbol_coverage"]

#: Columns of ``gseapy.enrich(...).results`` in local (offline) mode, in gseapy's order.
GSEAPY_COLUMNS = [
    "Gene_set",
    "Term",
    "Overlap",
    "P-value",
    "Adjusted P-value",
    "Odds Ratio",
    "Combined Score",
    "Genes",
]
_EXTRA = ["n_genes", "n_in_background", "background_size", "n_terms_tested", "padj_all_terms", "note"]


def load_gmt(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a (optionally gzipped) GMT file into ``{term: genes}`` without gseapy."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as handle:
        fields = (line.rstrip("\n").split("\t") for line in handle)
        return {f[0]: [g for g in f[2:] if g] for f in fields if len(f) >= 3}


def _as_gene_sets(gene_sets) -> dict[str, list[str]]:
    if gene_sets is None:
        from regnet_assets.science.dataset.reference_data import go_bp_gene_sets

        return go_bp_gene_sets()
    if isinstance(gene_sets, Mapping):
        return {str(k): list(v) for k, v in gene_sets.items()}
    if isinstance(gene_sets, (str, os.PathLike)) and os.path.isfile(gene_sets):
        return load_gmt(gene_sets)
    raise ValueError(
        "gene_sets must be a dict or an existing .gmt file; a library name would make gseapy download it"
    )


def enrich_programs(
    programs: pd.DataFrame,
    background: Iterable[str],
    gene_sets: Mapping[str, Iterable[str]] | str | None = None,
    cutoff: float | None = None,
    *,
    min_genes: int = 3,
    gene_set_name: str | None = None,
    program_col: str = "program",
    gene_col: str = "gene",
) -> pd.DataFrame:
    """Hypergeometric enrichment of each program's genes against ``gene_sets`` (default: shipped GO BP),
    with ``gseapy.enrich(..., background=list, outdir=None, no_plot=True)`` — always offline.

    Returns gseapy's columns (:data:`GSEAPY_COLUMNS`) plus ``program`` and:
    ``n_genes`` (program size), ``n_in_background`` (genes gseapy actually tests: only background genes
    count), ``background_size``, ``n_terms_tested`` (terms with >=1 background gene) and
    ``padj_all_terms``: BH over *all* those terms. Why: gseapy (like Enrichr) drops terms with no hit
    before BH, which makes its ``Adjusted P-value`` anti-conservative when the query is small.
    ``cutoff`` (optional) keeps terms with gseapy ``Adjusted P-value <= cutoff``.

    A program with fewer than ``min_genes`` background genes, or with no hit, gives one row with NaN
    statistics and a ``note`` (so the report shows why), never an error.

    Symbols are matched case-insensitively (all upper-cased, mapped back for ``Genes``): gseapy
    upper-cases the query on its own when it is <90% upper-case, which would silently lose mixed-case
    symbols such as ``C1orf112``; doing it consistently ourselves avoids that.
    """
    import gseapy

    if isinstance(background, (str, bytes)) or not isinstance(background, Iterable):
        raise ValueError("background must be a list of genes (a string is a BioMart dataset to gseapy)")
    sets = _as_gene_sets(gene_sets)
    if gene_set_name is None:
        gene_set_name = "GO_BP" if gene_sets is None else "custom"

    original: dict[str, str] = {}
    for g in list(background) + programs[gene_col].astype(str).tolist():
        original.setdefault(str(g).upper(), str(g))
    bg = sorted({str(g).upper() for g in background})
    bg_set = set(bg)
    # Terms restricted to the background: identical statistics (gseapy intersects with the background
    # too), but it tells us how many terms were testable.
    testable = {}
    for term, genes in sets.items():
        hits = sorted({str(g).upper() for g in genes} & bg_set)
        if hits:
            testable[term] = hits
    n_terms = len(testable)

    frames = []
    for prog, sub in programs.groupby(program_col, sort=False):
        genes = list(pd.unique(sub[gene_col].astype(str)))
        query = [g for g in pd.unique(pd.Series([g.upper() for g in genes])) if g in bg_set]
        info = {
            "program": prog,
            "n_genes": len(genes),
            "n_in_background": len(query),
            "background_size": len(bg),
            "n_terms_tested": n_terms,
        }
        if len(query) < min_genes:
            frames.append(
                pd.DataFrame(
                    [{**info, "note": f"only {len(query)} genes in background (min_genes={min_genes})"}]
                )
            )
            continue
        if not testable:
            frames.append(pd.DataFrame([{**info, "note": "no gene set overlaps the background"}]))
            continue
        enr = gseapy.enrich(
            gene_list=query, gene_sets=testable, background=bg, outdir=None, no_plot=True, verbose=False
        )
        res = getattr(enr, "results", None)
        if not isinstance(res, pd.DataFrame) or res.empty:
            frames.append(pd.DataFrame([{**info, "note": "no term overlaps the program"}]))
            continue
        res = res.copy()
        res["Gene_set"] = gene_set_name
        res["Genes"] = res["Genes"].map(lambda s: ";".join(original.get(g, g) for g in str(s).split(";")))
        padded = np.ones(n_terms)
        padded[: len(res)] = res["P-value"].to_numpy(float)
        res["padj_all_terms"] = false_discovery_control(padded, method="bh")[: len(res)]
        for k, v in info.items():
            res[k] = v
        res["note"] = ""
        if cutoff is not None:
            res = res[res["Adjusted P-value"] <= cutoff]
            if res.empty:
                frames.append(pd.DataFrame([{**info, "note": f"no term with Adjusted P-value <= {cutoff}"}]))
                continue
        frames.append(res.sort_values("P-value", kind="stable"))
    cols = ["program", *GSEAPY_COLUMNS, *_EXTRA]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True).reindex(columns=cols)


def plot_top_terms(
    enrichment: pd.DataFrame,
    top_n: int = 10,
    *,
    group_col: str = "program",
    groups: tuple[str, str] | None = None,
    padj_col: str = "Adjusted P-value",
    ratio_clip: float | None = None,
):
    """Top ``top_n`` terms per group by adjusted p: bar length -log10(padj), colour = gene ratio
    (overlap / term size within the background, from gseapy's ``Overlap``; InterScale's definition).

    Two groups: diverging bars, the first to the left, as in the InterScale notebook (local vs global).
    One or more than two groups: one-sided bars labelled ``[group] term``, since a diverging axis only
    has two sides. ``ratio_clip`` caps the colour scale (InterScale used 0.05 for genome-wide sets;
    with a panel background ratios are much larger, so no cap by default).
    """
    import matplotlib
    from matplotlib.figure import Figure

    df = enrichment[enrichment["Term"].notna()].copy()
    if groups is None:
        groups = tuple(pd.unique(df[group_col]))
    df = df[df[group_col].isin(groups)]
    top = df.sort_values(padj_col, kind="stable").groupby(group_col, sort=False).head(top_n).copy()
    fig = Figure(figsize=(8, max(2.5, 0.32 * len(top) + 1.2)))
    ax = fig.add_subplot(1, 1, 1)
    if top.empty:
        ax.text(0.5, 0.5, "no enriched terms", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    top["neglog10_padj"] = -np.log10(top[padj_col].astype(float).clip(lower=1e-300))
    parts = top["Overlap"].astype(str).str.split("/", expand=True).astype(float)
    top["gene_ratio"] = parts[0] / parts[1]
    shown = top["gene_ratio"].clip(upper=ratio_clip) if ratio_clip else top["gene_ratio"]
    diverging = len(groups) == 2
    sign = np.where(top[group_col] == groups[0], -1.0, 1.0) if diverging else np.ones(len(top))
    top["signed"] = top["neglog10_padj"] * sign
    top["label"] = top["Term"] if diverging else "[" + top[group_col].astype(str) + "] " + top["Term"]
    order = np.argsort(np.abs(top["signed"].to_numpy()), kind="stable")
    top, shown = top.iloc[order], shown.iloc[order]

    cmap = matplotlib.colormaps["viridis"]
    lo, hi = float(shown.min()), float(shown.max())
    norm = matplotlib.colors.Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1e-9)
    y = np.arange(len(top))
    ax.barh(y, top["signed"], color=cmap(norm(shown.to_numpy())), height=0.7)
    ax.set_yticks(y)
    ax.set_yticklabels([t if len(t) <= 60 else t[:57] + "..." for t in top["label"]], fontsize=8)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_xlabel("-log10(adjusted p-value)")
    m = float(top["neglog10_padj"].max()) or 1.0
    if diverging:
        ax.set_xlim(-m * 1.1, m * 1.1)
        ax.set_xticks(ax.get_xticks())
        ax.set_xticklabels([f"{abs(t):g}" for t in ax.get_xticks()])
        ax.text(0.02, 1.01, str(groups[0]), transform=ax.transAxes, ha="left", va="bottom", fontsize=9)
        ax.text(0.98, 1.01, str(groups[1]), transform=ax.transAxes, ha="right", va="bottom", fontsize=9)
    sm = matplotlib.cm.ScalarMappable(cmap=cmap, norm=norm)
    sm.set_array([])
    fig.colorbar(sm, ax=ax, pad=0.02).set_label("Gene ratio (overlap / term size)")
    fig.tight_layout()
    return fig


def symbol_coverage(genes: Sequence[str], gene_sets: Mapping[str, Sequence[str]]) -> float:
    """Share of ``genes`` found (case-insensitively) in any gene set: does the dataset use the gene
    sets' naming (human symbols)? Near 0 means enrichment would test nothing meaningful."""
    universe = {str(g).upper() for members in gene_sets.values() for g in members}
    genes = [str(g).upper() for g in genes]
    return float(np.mean([g in universe for g in genes])) if genes else 0.0
