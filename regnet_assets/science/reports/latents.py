"""Gene programs of a latent space, composed from :mod:`programs`: standardised loadings of the
log-normalised expression on the latent, its rank report, dimension importance with a cumulative
cutoff, the top genes of the selected dimensions, and the gene groups to enrich.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from regnet_assets.science.reports import programs

__all__ = ["latent_programs", "program_sets", "plot_dim_importance"]


def latent_programs(
    name: str,
    latent: pd.DataFrame,
    expression: pd.DataFrame,
    *,
    cutoff: float | None = 0.6,
    mode: str = "full",
    top_n: int = 20,
    min_frac: float = 0.05,
    min_sd: float | None = None,
    rank_by: str = "loading",
    residualize: bool = False,
    specificity_ratio: float | None = 1.5,
    covariate: pd.Series | None = None,
) -> dict[str, pd.DataFrame]:
    """Loadings, rank report, dimension importance and program genes of one latent space.

    ``latent`` (obs x dims, dims named) and ``expression`` (obs x genes, log-normalised) are
    aligned on their shared obs. Loadings: :func:`programs.standardised_loadings` with a fitted
    linear decoder (``covariate``, e.g. batch, regressed out first if given). Importance:
    :func:`programs.dim_importance` (``mode="full"`` uses Corr(z)). Programs: the selected dims'
    top genes (:func:`programs.program_genes`), ``residualize`` = InterScale's (scale each dim's
    score by its uniqueness sqrt(1 - R^2) on the other dims).

    Returns frames keyed ``gene_loadings`` (latent, gene, dim, loading), ``latent_rank_report``
    (one row), ``dim_importance`` (latent, rank, dim, score, importance, cumulative, selected, mode)
    and ``gene_program_genes`` (latent, program, dim, gene, ...).
    """
    if mode not in ("full", "diag"):
        raise ValueError(f"mode must be 'full' or 'diag', got {mode!r}")
    obs = latent.index.intersection(expression.index, sort=False)
    if len(obs) < 3:
        raise ValueError(f"{name}: {len(obs)} observations shared by latent and expression (need >= 3)")
    z = latent.loc[obs].to_numpy(float)
    x = expression.loc[obs]
    dims = [str(d) for d in latent.columns]
    genes = [str(g) for g in x.columns]
    cov = None if covariate is None else covariate.reindex(obs).to_numpy()
    loadings = programs.standardised_loadings(z, x.to_numpy(float), genes, residualise=cov)
    loadings.columns = dims

    rank = programs.latent_rank_report(z)
    rank_row = pd.DataFrame([{"latent": name, **rank, "dims": ";".join(dims)}])

    imp = programs.dim_importance(loadings, cutoff, latent=z if mode == "full" else None)
    imp.insert(0, "rank", np.arange(1, len(imp) + 1))
    imp.insert(0, "latent", name)

    stats = programs.expression_stats(x.to_numpy(float), genes)
    selected = imp.loc[imp["selected"], "dim"].tolist()
    uniq = None
    if residualize:
        uniq = programs.dim_uniqueness(z)
        uniq.index = dims
    prog = programs.program_genes(
        loadings,
        stats["sd"],
        selected,
        top_n=top_n,
        min_frac=min_frac,
        min_sd=min_sd,
        rank_by=rank_by,
        specificity_ratio=specificity_ratio,
        gene_frac=stats["frac"],
        uniqueness=uniq,
    )
    prog["program"] = [f"{name}:{d}" for d in prog["dim"]]
    prog.insert(0, "latent", name)
    prog["dim"] = prog["dim"].astype(str)
    prog["winner_dim"] = prog["winner_dim"].astype(str)

    long = (
        loadings.rename_axis("gene").reset_index().melt(id_vars="gene", var_name="dim", value_name="loading")
    )
    long.insert(0, "latent", name)
    return {
        "gene_loadings": long,
        "latent_rank_report": rank_row,
        "dim_importance": imp,
        "gene_program_genes": prog,
    }


def program_sets(program_genes: pd.DataFrame, compare: Sequence[str] = ()) -> pd.DataFrame:
    """The gene groups to enrich: one per (latent, selected dim), plus, when two latents are named
    in ``compare`` and both have programs, InterScale's ``shared`` / ``unique_<a>`` / ``unique_<b>``
    split of the union of their program genes. Long: program, kind (dim | comparison), gene."""
    dims = program_genes[["program", "gene"]].drop_duplicates().assign(kind="dim")
    parts = [dims[["program", "kind", "gene"]]]
    if len(compare) == 2:
        a, b = compare
        ga = program_genes.loc[program_genes["latent"] == a, "gene"]
        gb = program_genes.loc[program_genes["latent"] == b, "gene"]
        if len(ga) and len(gb):
            split = programs.shared_unique_programs(ga, gb, names=(a, b)).assign(kind="comparison")
            parts.append(split[["program", "kind", "gene"]])
    return pd.concat(parts, ignore_index=True)


def plot_dim_importance(importance: pd.DataFrame):
    """One elbow panel per latent: sorted importance ratios, the cutoff's dims highlighted."""
    from matplotlib.figure import Figure

    latents = list(pd.unique(importance["latent"]))
    fig = Figure(figsize=(4.2 * max(len(latents), 1), 3.4))
    for i, name in enumerate(latents):
        ax = fig.add_subplot(1, max(len(latents), 1), i + 1)
        sub = importance[importance["latent"] == name]
        x = np.arange(len(sub))
        colors = np.where(sub["selected"], "tab:red", "tab:grey")
        ax.bar(x, sub["importance"], color=colors)
        ax.plot(x, sub["cumulative"], color="black", marker="o", markersize=3, linewidth=1)
        ax.set_xticks(x)
        ax.set_xticklabels(sub["dim"].astype(str), rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("importance ratio (std-expr)", fontsize=8)
        ax.set_title(f"{name}: {int(sub['selected'].sum())} dims selected", fontsize=9)
    fig.tight_layout()
    return fig
