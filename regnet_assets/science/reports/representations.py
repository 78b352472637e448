"""Inputs of the evaluation reports: per-fold embeddings, latent spaces and their gene programs,
and the TF-ablated model inputs.

Representations (one long table, one row per observation x dimension, saying representation,
fold and split):

- ``observed_pca``: log1p counts per 10k of the metacells' RNA, PCA fitted on the fold's train
  metacells and applied to all of them (``split`` train / test);
- ``predicted_pca``: the same for the per-gene models' predicted counts (log1p CP10k with the
  metacell's observed RNA total, so both live on one scale);
- ``tf_activity``: per metacell and TF, the sign-aligned mean Integrated-Gradients attribution over
  the TF's target genes (:func:`tf_activity`); no fitting, so train and test rows are the profile;
- ``kpnn_<network>``: the KPNN's hidden-node activations of the cells each fold held out (the
  KPNN's own folds; split ``test`` only, since only held-out activations are stored).

The metacell folds (:func:`fold_assignment`) are a seeded K-fold of their own: they decide which
metacells a PCA is fitted on, and have nothing to do with the per-gene models' train/valid split.

Gene programs (:func:`latent_programs`) compose ``programs``: standardised loadings of the
log-normalised expression on a latent, its rank report, dimension importance with a cumulative
cutoff, and the top genes of the selected dimensions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from regnet_assets.science.attribution.grn import attribution_view
from regnet_assets.science.common.normalise import log_cp10k
from regnet_assets.science.common.tables import LongTable, connect
from regnet_assets.science.reports import clustering, programs

__all__ = [
    "EMBEDDING_COLUMNS",
    "fold_assignment",
    "fold_embeddings",
    "predicted_expression",
    "tf_activity",
    "kpnn_latent",
    "score_embeddings",
    "summarise_by_split",
    "latent_programs",
    "program_sets",
    "symbol_coverage",
    "without_tf_branch",
    "plot_gene_ranks",
    "plot_dim_importance",
]

#: Columns of the long ``embeddings`` table.
EMBEDDING_COLUMNS = [
    "representation",
    "level",
    "fold",
    "split",
    "obs_name",
    "cell_type",
    "batch",
    "dim",
    "dim_index",
    "value",
]


# --------------------------------------------------------------------------------------------
# Expression matrices
# --------------------------------------------------------------------------------------------
def predicted_expression(predictions: pd.DataFrame, totals: pd.Series) -> pd.DataFrame:
    """Metacells x modelled genes: ``log1p(predicted / observed RNA total * 1e4)``.

    ``predictions``: columns metacell, gene, predicted (count scale, the models' Poisson rate).
    The observed total puts predictions on the scale of :func:`expression_frame`. Genes without a
    prediction for every metacell are dropped (a partially written gene would bias the PCA).
    """
    wide = predictions.pivot_table(index="metacell", columns="gene", values="predicted", aggfunc="first")
    wide = wide.dropna(axis=1, how="any")
    wide.index = wide.index.astype(str)
    tot = totals.astype(float).reindex(wide.index)
    if tot.isna().any():
        raise ValueError(f"no RNA total for metacells {list(tot.index[tot.isna()][:5])}")
    out = log_cp10k(wide.to_numpy(float), tot.to_numpy())
    return pd.DataFrame(out, index=wide.index, columns=wide.columns.astype(str))


def tf_activity(attributions: LongTable) -> pd.DataFrame:
    """Metacells x TFs: the sign-aligned mean attribution of each TF over its target genes.

    ``attributions``: long (gene, metacell, tf, attribution), Integrated Gradients of each gene's
    predicted log-rate w.r.t. the TF's expression, as a DataFrame or its Parquet files. Each
    (gene, TF) edge is multiplied by the sign of its mean attribution over metacells, so an
    activator and a repressor both count positively when the TF is doing more of what it does to
    that gene; a plain signed mean would let the two cancel, and a mean of |attribution| would lose
    the per-metacell direction. An edge whose mean is exactly 0 contributes 0. The result is the
    TF's regulatory activity in the models' log-rate units.
    """
    with connect(attr=attributions) as con:
        attribution_view(con, "attributions")
        long = con.sql("""
            WITH edge AS (SELECT gene, tf, sign(avg(attribution)) AS s FROM a GROUP BY ALL)
            SELECT metacell, tf, avg(edge.s * a.attribution) AS activity
            FROM a JOIN edge USING (gene, tf) GROUP BY ALL""").df()
    wide = long.pivot(index="metacell", columns="tf", values="activity")
    wide.index = wide.index.astype(str).rename("metacell")
    wide.columns = wide.columns.astype(str).rename("tf")
    return wide.sort_index().sort_index(axis=1)


def kpnn_latent(activations: pd.DataFrame, network: str) -> tuple[pd.DataFrame, pd.Series]:
    """(cells x hidden nodes, the fold each cell was held out in) for one KPNN network.

    ``activations``: long (network, fold, cell, node, activation) of held-out cells. Each cell is
    held out exactly once, so the pooled matrix has one row per cell (from its own fold's model).
    """
    sub = activations[activations["network"] == network]
    if sub.empty:
        raise ValueError(f"no activations for KPNN network {network!r}")
    wide = sub.pivot_table(index=["cell", "fold"], columns="node", values="activation", aggfunc="first")
    wide = wide.reset_index(level="fold")
    folds = wide.pop("fold").astype(int)
    if not wide.index.is_unique:
        raise ValueError(f"KPNN network {network!r}: a cell is held out in more than one fold")
    wide.index = wide.index.astype(str)
    wide.columns = wide.columns.astype(str)
    folds.index = wide.index
    return wide, folds


# --------------------------------------------------------------------------------------------
# Folds and embeddings
# --------------------------------------------------------------------------------------------
def fold_assignment(n: int, n_folds: int, seed: int = 0, strata: Sequence | None = None) -> np.ndarray:
    """Fold id (0..n_folds-1) of each of ``n`` observations: a seeded shuffled K-fold, stratified
    by ``strata`` (e.g. cell type) when every stratum has at least ``n_folds`` members, so every
    test fold holds every cell type and silhouettes compare across folds."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if n < n_folds:
        raise ValueError(f"{n} observations cannot make {n_folds} folds")
    folds = np.full(n, -1, dtype=int)
    dummy = np.zeros((n, 1))
    if strata is not None and pd.Series(np.asarray(strata)).value_counts().min() >= n_folds:
        splits = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(dummy, np.asarray(strata))
    else:
        splits = KFold(n_folds, shuffle=True, random_state=seed).split(dummy)
    for k, (_, test) in enumerate(splits):
        folds[test] = k
    return folds


def _long(
    coords: np.ndarray, obs: pd.Index, dims: Sequence[str], labels: pd.DataFrame, **fixed
) -> pd.DataFrame:
    n, k = coords.shape
    frame = pd.DataFrame(
        {
            "obs_name": np.repeat(obs.to_numpy(dtype=object), k),
            "dim": np.tile(np.asarray(list(dims), dtype=object), n),
            "dim_index": np.tile(np.arange(k), n),
            "value": coords.reshape(-1),
        }
    )
    for col in ("cell_type", "batch"):
        values = labels[col].reindex(obs).to_numpy(dtype=object) if col in labels else np.full(n, None)
        frame[col] = np.repeat(values, k)
    for key, value in fixed.items():
        frame[key] = value
    return frame[EMBEDDING_COLUMNS]


def fold_embeddings(
    matrix: pd.DataFrame,
    folds: pd.Series,
    labels: pd.DataFrame,
    *,
    representation: str,
    level: str = "metacell",
    method: str = "pca",
    n_components: int = 10,
    include_train: bool = True,
) -> pd.DataFrame:
    """Long embedding rows of ``matrix`` (obs x features) for every fold in ``folds`` (obs -> fold).

    ``method="pca"``: PCA (centred, not scaled; full SVD, deterministic) fitted on the fold's train
    rows (all other folds) and applied to its train and test rows; ``n_components`` is capped by
    the train rows - 1 and the features. ``method="identity"``: the matrix as is (a profile or a
    latent whose dims already mean something). ``include_train=False`` writes test rows only.
    ``labels``: obs-indexed frame with optional ``cell_type`` and ``batch`` columns.
    """
    from sklearn.decomposition import PCA

    if method not in ("pca", "identity"):
        raise ValueError(f"method must be 'pca' or 'identity', got {method!r}")
    matrix = matrix.loc[matrix.index.intersection(folds.index, sort=False)]
    if matrix.empty:
        raise ValueError(f"{representation}: no observation has a fold")
    f = folds.reindex(matrix.index).astype(int).to_numpy()
    x = matrix.to_numpy(float)
    parts = []
    for fold in sorted(set(f)):
        test, train = f == fold, f != fold
        if method == "pca":
            k = int(min(n_components, train.sum() - 1, x.shape[1]))
            if k < 1:
                raise ValueError(f"{representation}: fold {fold} has too few train rows or features for PCA")
            pca = PCA(n_components=k, svd_solver="full").fit(x[train])
            coords, dims = pca.transform(x), [f"PC{i + 1}" for i in range(k)]
        else:
            coords, dims = x, list(matrix.columns)
        splits = (("train", train), ("test", test)) if include_train else (("test", test),)
        for split, mask in splits:
            if mask.any():
                parts.append(
                    _long(
                        coords[mask],
                        matrix.index[mask],
                        dims,
                        labels,
                        representation=representation,
                        level=level,
                        fold=int(fold),
                        split=split,
                    )
                )
    return pd.concat(parts, ignore_index=True)


def score_embeddings(
    embeddings: pd.DataFrame,
    *,
    splits: Sequence[str] = ("test",),
    sample_size: int | None = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`clustering.clustering_scores` of every (representation, fold, split) of the long
    ``embeddings`` table against ``cell_type`` (bio) and ``batch`` (technical), where present.

    Columns: representation, level, fold, split, label, label_role, then clustering's columns.
    The same seeded subsample serves every label of one embedding (clustering's rule).
    """
    rows = []
    sel = embeddings[embeddings["split"].isin(list(splits))]
    for (rep, level, fold, split), part in sel.groupby(
        ["representation", "level", "fold", "split"], sort=True
    ):
        wide = part.pivot_table(index="obs_name", columns="dim_index", values="value", aggfunc="first")
        meta = part.drop_duplicates("obs_name").set_index("obs_name").reindex(wide.index)
        labels = {
            col: meta[col].to_numpy(dtype=object) for col in ("cell_type", "batch") if meta[col].notna().any()
        }
        if not labels:
            continue
        s = clustering.clustering_scores(
            wide.to_numpy(float),
            labels,
            sample_size=sample_size or None,
            seed=seed,
            batch_key="batch",
            cell_type_key="cell_type",
        )
        s.insert(0, "split", split)
        s.insert(0, "fold", int(fold))
        s.insert(0, "level", level)
        s.insert(0, "representation", rep)
        s.insert(
            s.columns.get_loc("label") + 1, "label_role", np.where(s["label"] == "batch", "batch", "bio")
        )
        rows.append(s)
    if not rows:
        return pd.DataFrame(
            columns=[
                "representation",
                "level",
                "fold",
                "split",
                "label",
                "label_role",
                "n_cells",
                "n_classes",
                *clustering.SCORE_COLUMNS,
                "note",
            ]
        )
    return pd.concat(rows, ignore_index=True)


def summarise_by_split(scores: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """:func:`clustering.summarise_scores` per split (t CI with n_folds - 1 df), with a split column."""
    parts = []
    for split, sub in scores.groupby("split", sort=True):
        out = clustering.summarise_scores(sub, batch_label="batch", confidence=confidence)
        out.insert(1, "split", split)
        parts.append(out)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


# --------------------------------------------------------------------------------------------
# Gene programs of a latent space
# --------------------------------------------------------------------------------------------
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


def symbol_coverage(genes: Sequence[str], gene_sets: Mapping[str, Sequence[str]]) -> float:
    """Share of ``genes`` found (case-insensitively) in any gene set: does the dataset use the gene
    sets' naming (human symbols)? Near 0 means enrichment would test nothing meaningful."""
    universe = {str(g).upper() for members in gene_sets.values() for g in members}
    genes = [str(g).upper() for g in genes]
    return float(np.mean([g in universe for g in genes])) if genes else 0.0


# --------------------------------------------------------------------------------------------
# TF ablation
# --------------------------------------------------------------------------------------------
def without_tf_branch(inputs):
    """The same :class:`training.GeneInputs` with every TF expression set to 0 (chromatin only).

    Equivalent to a model without the TF branch: TF expression enters the model only as inputs of
    the head's first Linear layer (before its ReLU). With zero inputs those columns contribute
    nothing to the output and receive an exactly zero loss gradient, so every other parameter sees
    the gradients of a chromatin-only model; Adam is element-wise (no gradient clipping), so the
    weight-decay updates of the dead TF columns never touch another parameter. The only trace of
    the TF columns is the head's initialisation scale, whose fan-in still counts them. Keeping the
    shapes lets the ablated genes train in the same batched computation and with the same
    per-gene seeds as the full models.
    """
    return [replace(x, tf_exp=np.zeros_like(x.tf_exp)) for x in inputs]


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------
def plot_gene_ranks(ranks: pd.DataFrame, top_n: int = 5):
    """Rank with TFs (x) against rank without (y), the y = x line, and the genes that gain most
    from the TFs labelled (InterScale's ``pl.gene_ranks``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.8, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    r = ranks.dropna(subset=["rank_full", "rank_ablated"])
    ax.scatter(r["rank_full"], r["rank_ablated"], s=14, color="tab:blue", alpha=0.8)
    hi = float(max(r["rank_full"].max(), r["rank_ablated"].max())) if len(r) else 1.0
    ax.plot([0, hi + 1], [0, hi + 1], color="grey", linestyle="--", linewidth=1)
    for _, row in r.nlargest(top_n, "rank_diff").iterrows():
        ax.annotate(
            str(row["gene"]),
            (row["rank_full"], row["rank_ablated"]),
            fontsize=7,
            xytext=(3, -8),
            textcoords="offset points",
            color="tab:red",
        )
    ax.set_xlabel("rank, full model (higher = better)")
    ax.set_ylabel("rank, chromatin only (no TF branch)")
    ax.set_title("Gene ranks by valid Spearman (red: most TF-dependent)", fontsize=9)
    fig.tight_layout()
    return fig


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
