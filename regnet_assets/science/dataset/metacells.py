"""Metacells: sum raw counts over kNN neighbourhoods of spread-out seed cells (Cell2Net step 2).

Single-cell counts are too sparse to fit one model per gene; summing ~15 similar cells gives
Poisson-like counts with usable depth while keeping the RNA and ATAC of the *same* cells
together. Differences from the reference, on purpose: the seed is always one of its own
members, counts are exact sums through a sparse membership matrix, and the split can be
stratified by cell type.

The result is a MuData with modalities ``rna`` and ``atac`` (metacells × genes / peaks) and:

- global ``obs``: ``seed_cell``, ``n_cells``, the ``groupby`` label (and ``batch``/``condition``
  when the input has them) by majority of members, ``total_counts_{rna,atac}`` and their
  ``_log`` (log10) covariates, and ``split`` (train/valid);
- global ``obsm['members']``: CSR float32 (metacells × input cells), 1 where a cell belongs;
  its column order is ``uns['member_cells']`` (the input ``rna.obs_names``);
- modality ``layers`` (e.g. ``true_rate``) are summed like X; numeric modality ``obsm``
  (e.g. ``true_tf_activity``) is averaged over members;
- ``uns``: everything from the input's global ``uns`` (``peak_to_gene``, ``truth_*`` …) plus
  ``uns['metacells']``, the parameters used. Modality ``var``/``varm``/``uns`` (peak
  sequences, motif hits and names) are carried over unchanged.
"""

from __future__ import annotations

import copy

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors

from regnet_assets.science.common.obs import obs_column
from regnet_assets.science.dataset.reading import DatasetError, quiet_mudata

__all__ = ["make_metacells", "split_table", "pca_embedding", "spread_seeds"]

OPTIONAL_LABELS = ("batch", "condition")


# --------------------------------------------------------------------------------------------
# embedding and seeds


def pca_embedding(X, n_pcs: int = 30, n_top_genes: int = 2000, seed: int = 0) -> np.ndarray:
    """normalize_total(1e4) → log1p → top-variance genes → PCA on raw counts (cells × genes).

    Only used to decide who neighbours whom; the metacell counts themselves stay raw.
    """
    X = X.tocsr().astype(np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    n_cells, n_genes = X.shape
    lib = np.asarray(X.sum(axis=1)).ravel()
    scale = np.divide(1e4, lib, out=np.zeros_like(lib), where=lib > 0)
    if sp.issparse(X):
        Xn = sp.diags(scale) @ X
        Xn.data = np.log1p(Xn.data)
        mean = np.asarray(Xn.mean(axis=0)).ravel()
        var = np.asarray(Xn.multiply(Xn).mean(axis=0)).ravel() - mean**2
    else:
        Xn = np.log1p(X * scale[:, None])
        var = Xn.var(axis=0)
    top = np.sort(np.argsort(-var, kind="stable")[: min(n_top_genes, n_genes)])
    sub = Xn[:, top]
    sub = sub.toarray() if sp.issparse(sub) else np.asarray(sub)
    n_comp = min(n_pcs, n_cells - 1, sub.shape[1])
    if n_comp < 1 or not np.any(var[top] > 0):
        return sub.astype(np.float64)
    # Few genes: the exact covariance eigendecomposition is both faster and seed-free.
    solver = "covariance_eigh" if sub.shape[1] <= 1000 else "randomized"
    return PCA(n_components=n_comp, svd_solver=solver, random_state=seed).fit_transform(sub)


def spread_seeds(emb: np.ndarray, n_seeds: int, seed: int = 0) -> np.ndarray:
    """Pick ``n_seeds`` distinct cells by k-means++ (D²) sampling, seeded.

    Why D² rather than random or strict farthest-point: random seeds follow density, so rare
    cell types get few metacells; farthest-point covers the space (geosketch's aim, used by
    Cell2Net) but picks outliers first, whose neighbourhoods are poor. D² sampling favours
    uncovered regions while still tracking density, and is cheap: O(n_seeds · n_cells · d).
    """
    rng = np.random.default_rng(seed)
    n = emb.shape[0]
    n_seeds = min(int(n_seeds), n)
    chosen = np.empty(n_seeds, dtype=np.int64)
    taken = np.zeros(n, dtype=bool)
    d2 = np.full(n, np.inf)
    for i in range(n_seeds):
        if i == 0:
            pick = int(rng.integers(n))
        else:
            weights = np.where(taken, 0.0, d2)
            cum = np.cumsum(weights)
            if cum[-1] > 0:
                pick = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
            else:  # every remaining cell duplicates a seed: fall back to uniform
                pick = int(rng.choice(np.flatnonzero(~taken)))
        chosen[i] = pick
        taken[pick] = True
        diff = emb - emb[pick]
        d2 = np.minimum(d2, np.einsum("ij,ij->i", diff, diff))
    return chosen


def _members(emb: np.ndarray, seeds: np.ndarray, k: int) -> np.ndarray:
    """Indices (n_seeds × k) of each seed's k nearest cells, the seed itself always included."""
    k = min(int(k), emb.shape[0])
    idx = NearestNeighbors(n_neighbors=k).fit(emb).kneighbors(emb[seeds], return_distance=False)
    # With duplicate cells the seed can tie with others and be left out; force it in.
    missing = ~(idx == seeds[:, None]).any(axis=1)
    idx[missing, -1] = seeds[missing]
    return idx


# --------------------------------------------------------------------------------------------
# aggregation


def _aggregate(M: sp.csr_matrix, X):
    """M @ X in a dtype that keeps count sums exact: int64 for ints, the input float otherwise."""
    if sp.issparse(X):
        X = X.tocsr()
    dtype = np.dtype(X.dtype)
    out_dtype = np.int64 if dtype.kind in "iub" else dtype
    out = M.astype(out_dtype) @ (X.astype(out_dtype) if dtype.kind == "b" else X)
    if sp.issparse(out):
        out = out.tocsr()
        out.sort_indices()
    return out


def _mean_obsm(M: sp.csr_matrix, obsm, rows_of, names: pd.Index) -> dict:
    """Numeric per-cell embeddings/activities (e.g. the simulator's ``true_tf_activity``) become
    member means: they are rates, not counts, so summing would scale them with ``k``.
    Non-numeric entries are dropped."""
    share = sp.diags(1.0 / np.maximum(M.getnnz(axis=1), 1)) @ M.astype(np.float64)
    out = {}
    for key, val in obsm.items():
        if isinstance(val, pd.DataFrame):
            if all(pd.api.types.is_numeric_dtype(t) for t in val.dtypes):
                values = share @ rows_of(val.to_numpy(dtype=np.float64))
                out[key] = pd.DataFrame(values, index=names.copy(), columns=val.columns)
        elif sp.issparse(val) or (isinstance(val, np.ndarray) and val.dtype.kind in "biuf"):
            values = share @ rows_of(val.astype(np.float64))
            out[key] = np.asarray(values.toarray() if sp.issparse(values) else values)
    return out


def _majority(M: sp.csr_matrix, labels: pd.Series, seeds: np.ndarray) -> pd.Categorical:
    """Most frequent member label; ties go to the seed's label, else to the first category."""
    cat = labels if isinstance(labels.dtype, pd.CategoricalDtype) else labels.astype("category")
    codes = cat.cat.codes.to_numpy()
    categories = cat.cat.categories
    n = codes.size
    valid = codes >= 0
    onehot = sp.csr_matrix(
        (np.ones(valid.sum()), (np.flatnonzero(valid), codes[valid])),
        shape=(n, len(categories)),
    )
    counts = (M @ onehot).toarray()
    if counts.shape[1] == 0:
        return pd.Categorical.from_codes(np.full(M.shape[0], -1), categories)
    best = counts.max(axis=1)
    winner = counts.argmax(axis=1)
    seed_code = codes[seeds]
    rows = np.arange(M.shape[0])
    seed_wins = (seed_code >= 0) & (counts[rows, np.maximum(seed_code, 0)] == best)
    winner = np.where(seed_wins, seed_code, winner)
    winner = np.where(best > 0, winner, -1)
    return pd.Categorical.from_codes(winner, categories)


def _split(n: int, train_fraction: float, strata: np.ndarray | None, seed: int) -> np.ndarray:
    """Exactly round(train_fraction·n) 'train'; stratified when every group has ≥ 2 members."""
    n_train = int(np.floor(train_fraction * n + 0.5))
    labels = np.full(n, "valid", dtype=object)
    if n_train >= n:
        labels[:] = "train"
        return labels
    if n_train <= 0:
        return labels
    idx = np.arange(n)
    use_strata = strata is not None and np.unique(strata, return_counts=True)[1].min() >= 2
    try:
        if not use_strata:
            raise ValueError("plain split")
        train, _ = train_test_split(idx, train_size=n_train, random_state=seed, stratify=strata)
    except ValueError:  # too few per group for this split size: fall back to a plain split
        train, _ = train_test_split(idx, train_size=n_train, random_state=seed)
    labels[train] = "train"
    return labels


def make_metacells(
    mdata: mudata.MuData,
    n_metacells: int = 500,
    k: int = 15,
    n_pcs: int = 30,
    groupby: str | None = "cell_type",
    seed: int = 0,
    train_fraction: float = 0.8,
    n_top_genes: int = 2000,
) -> mudata.MuData:
    """Aggregate cells into ``min(n_metacells, n_cells)`` overlapping metacells of ``k`` cells.

    Metacells are computed over all cells at once (not per group), so a metacell straddling two
    cell types gets the majority label; see the module docstring for the output layout.
    """
    if n_metacells < 1 or k < 1:
        raise ValueError(f"n_metacells and k must be >= 1, got {n_metacells} and {k}")
    if not 0.0 <= train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in [0, 1], got {train_fraction}")
    for name in ("rna", "atac"):
        if name not in mdata.mod:
            raise DatasetError(
                f"mod['{name}']", expected=f"a '{name}' modality", found=f"modalities {sorted(mdata.mod)}"
            )
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    cells = rna.obs_names
    if rna.n_obs == 0:
        raise DatasetError("mod['rna']", expected="at least one cell", found="0 cells")
    atac_rows = atac.obs_names.get_indexer(cells)
    if (atac_rows < 0).any() or atac.n_obs != rna.n_obs:
        raise DatasetError(
            "mod['atac'].obs_names",
            expected="the same cells as mod['rna']",
            found=f"{int((atac_rows < 0).sum())} rna cells missing from atac",
        )
    identity = np.array_equal(atac_rows, np.arange(atac.n_obs))

    def atac_matrix(X):
        return X if identity else X[atac_rows]

    emb = pca_embedding(rna.X, n_pcs=n_pcs, n_top_genes=n_top_genes, seed=seed)
    seeds = spread_seeds(emb, n_metacells, seed=seed)
    idx = _members(emb, seeds, k)
    n_mc, k_eff = idx.shape
    M = sp.csr_matrix(
        (np.ones(idx.size, dtype=np.float32), idx.ravel(), np.arange(0, idx.size + 1, k_eff)),
        shape=(n_mc, len(cells)),
    )
    M.sort_indices()

    width = max(4, len(str(n_mc - 1)))
    names = pd.Index([f"mc{i:0{width}d}" for i in range(n_mc)])

    def build(adata, rows_of):
        return ad.AnnData(
            X=_aggregate(M, rows_of(adata.X)),
            obs=pd.DataFrame(index=names.copy()),
            var=adata.var.copy(),
            layers={key: _aggregate(M, rows_of(val)) for key, val in adata.layers.items()},
            obsm=_mean_obsm(M, adata.obsm, rows_of, names),
            varm={key: copy.deepcopy(val) for key, val in adata.varm.items()},
            uns=copy.deepcopy(dict(adata.uns)),
        )

    rna_mc = build(rna, lambda X: X)
    atac_mc = build(atac, atac_matrix)

    obs = pd.DataFrame(index=names.copy())
    obs["seed_cell"] = np.asarray(cells[seeds], dtype=object)
    obs["n_cells"] = np.asarray(M.getnnz(axis=1), dtype=np.int64)
    strata = None
    label_cols = ([groupby] if groupby else []) + [c for c in OPTIONAL_LABELS if c != groupby]
    for col in label_cols:
        values = obs_column(mdata, col)
        if values is None:
            if col == groupby:
                raise DatasetError(
                    f"obs['{groupby}']",
                    expected=f"a '{groupby}' column",
                    found="no such column in global or per-modality obs",
                )
            continue
        obs[col] = _majority(M, values.reindex(cells), seeds)
        if col == groupby:
            strata = np.asarray(obs[col].cat.codes)
    for mod, adata in (("rna", rna_mc), ("atac", atac_mc)):
        total = np.asarray(adata.X.sum(axis=1), dtype=np.float64).ravel()
        obs[f"total_counts_{mod}"] = total
        # log10 as in Cell2Net; an empty metacell gets 0 rather than -inf so models stay finite.
        obs[f"total_counts_{mod}_log"] = np.log10(np.maximum(total, 1.0))
    obs["split"] = pd.Categorical(_split(n_mc, train_fraction, strata, seed), categories=["train", "valid"])

    with quiet_mudata():
        out = mudata.MuData({"rna": rna_mc, "atac": atac_mc})
    for col in obs.columns:
        out.obs[col] = obs[col].values  # Categorical stays categorical
    out.obsm["members"] = M
    out.uns.update(copy.deepcopy(dict(mdata.uns)))
    out.uns["member_cells"] = np.asarray(cells, dtype=object)
    out.uns["metacells"] = {
        "n_metacells": int(n_mc),
        "k": int(k_eff),
        "n_pcs": int(n_pcs),
        "seed": int(seed),
        "groupby": groupby or "",
        "train_fraction": float(train_fraction),
        "seeding": "kmeans++ (D2) on PCA of log-normalised RNA",
    }
    return out


def split_table(metacells_mdata: mudata.MuData) -> pd.DataFrame:
    """The metacell obs as a flat table with a ``metacell`` column (the ``metacells`` Parquet).

    Categoricals become plain strings so the Parquet schema does not depend on which labels
    happened to occur.
    """
    table = metacells_mdata.obs.copy()
    for col in table.columns:
        if isinstance(table[col].dtype, pd.CategoricalDtype):
            table[col] = table[col].astype(object).where(table[col].notna(), None)
    table.insert(0, "metacell", table.index.astype(str).to_numpy(dtype=object))
    return table.reset_index(drop=True)
