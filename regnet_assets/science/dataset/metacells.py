"""Metacells: sum raw counts over kNN neighbourhoods of spread-out seed cells (Cell2Net step 2).

Single-cell counts are too sparse to fit one model per gene; summing ~15 similar cells gives
Poisson-like counts with usable depth while keeping the RNA and ATAC of the *same* cells
together. Differences from the reference, on purpose:

- **the split is of cells, before aggregation** (the reference splits metacells after building
  them from overlapping kNN groups, so most cells of a valid metacell were also in a train
  metacell and the valid figures leak). Cells are split train / valid / test, stratified by
  ``groupby`` × ``batch``, and each split's metacells are built only from its own cells (seeds
  and kNN within the split). The PCA that decides who neighbours whom is fitted on train cells;
- **every cell is used**: a cell in no seed's kNN group joins the metacell of its nearest seed
  (within its split), so no cell is lost (the reference drops ~45 % of cells at its defaults);
- the seed is always one of its own members, and counts are exact sums through a sparse
  membership matrix.

The result is a MuData with modalities ``rna`` and ``atac`` (metacells × genes / peaks) and:

- global ``obs``: ``seed_cell``, ``n_cells``, the ``groupby`` label (and ``batch``/``condition``
  when the input has them) by majority of members, ``total_counts_{rna,atac}`` and their
  ``_log`` (log10) covariates, and ``split`` (train/valid/test);
- global ``obsm['members']``: CSR float32 (metacells × input cells), 1 where a cell belongs;
  its column order is ``uns['member_cells']`` (the input ``rna.obs_names``), whose split is
  ``uns['member_split']``;
- modality ``layers`` (e.g. ``true_rate``) are summed like X; numeric modality ``obsm``
  (e.g. ``true_tf_activity``) is averaged over members;
- ``uns``: everything from the input's global ``uns`` (``peak_to_gene``, ``truth_*`` …) plus
  ``uns['metacells']``, the parameters used and the cell counts per split
  (``n_cells_in_no_metacell`` is 0 by construction; ``n_cells_joined_nearest_seed`` says how
  many cells the kNN groups alone left out). Modality ``var``/``varm``/``uns`` (peak
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

__all__ = [
    "SPLITS",
    "default_metacell_count",
    "make_metacells",
    "split_cells",
    "split_table",
    "pca_embedding",
    "spread_seeds",
]

OPTIONAL_LABELS = ("batch", "condition")
SPLITS = ("train", "valid", "test")


# --------------------------------------------------------------------------------------------
# embedding and seeds


def pca_embedding(
    X, n_pcs: int = 30, n_top_genes: int = 2000, seed: int = 0, fit_rows: np.ndarray | None = None
) -> np.ndarray:
    """normalize_total(1e4) → log1p → top-variance genes → PCA on raw counts (cells × genes).

    Only used to decide who neighbours whom; the metacell counts themselves stay raw. The genes
    and components are chosen on ``fit_rows`` (default all cells; the train cells for a split
    that must not see its test cells) and every cell is projected.
    """
    X = X.tocsr() if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    n_cells, n_genes = X.shape
    lib = np.asarray(X.sum(axis=1, dtype=np.float64)).ravel()
    scale = np.divide(1e4, lib, out=np.zeros_like(lib), where=lib > 0)
    fit_rows = np.arange(n_cells) if fit_rows is None else np.asarray(fit_rows)
    if sp.issparse(X):
        # new value arrays on X's own index arrays: the only copies of a 10^8-entry matrix
        def with_values(values):
            return sp.csr_matrix((values, X.indices, X.indptr), shape=X.shape, copy=False)

        Xn = with_values(np.log1p(X.data * np.repeat(scale, np.diff(X.indptr))))
        weights = np.zeros(n_cells)
        weights[fit_rows] = 1.0 / len(fit_rows)
        mean = Xn.T @ weights
        var = with_values(Xn.data**2).T @ weights - mean**2
    else:
        Xn = np.log1p(X * scale[:, None])
        var = Xn[fit_rows].var(axis=0)
    top = np.sort(np.argsort(-var, kind="stable")[: min(n_top_genes, n_genes)])
    sub = Xn[:, top]
    sub = sub.toarray() if sp.issparse(sub) else np.asarray(sub)
    n_comp = min(n_pcs, len(fit_rows) - 1, sub.shape[1])
    if n_comp < 1 or not np.any(var[top] > 0):
        return sub.astype(np.float64)
    # Few genes: the exact covariance eigendecomposition is both faster and seed-free.
    solver = "covariance_eigh" if sub.shape[1] <= 1000 else "randomized"
    pca = PCA(n_components=n_comp, svd_solver=solver, random_state=seed).fit(sub[fit_rows])
    return pca.transform(sub)


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


def _groups(emb: np.ndarray, n_seeds: int, k: int, seed: int) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Metacell member lists (positions in ``emb``), their seeds, and how many cells joined late.

    Each seed takes its ``k`` nearest cells; a cell in no group then joins the group of its
    nearest seed, so every cell is used (the groups may overlap, and a joined group is larger).
    """
    seeds = spread_seeds(emb, n_seeds, seed=seed)
    idx = _members(emb, seeds, k)
    covered = np.zeros(len(emb), dtype=bool)
    covered[idx.ravel()] = True
    lonely = np.flatnonzero(~covered)
    groups = [list(row) for row in idx]
    if lonely.size:
        nearest = (
            NearestNeighbors(n_neighbors=1).fit(emb[seeds]).kneighbors(emb[lonely], return_distance=False)
        )
        for cell, g in zip(lonely, nearest[:, 0]):
            groups[g].append(cell)
    return [np.sort(np.asarray(g, dtype=np.int64)) for g in groups], seeds, int(lonely.size)


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


def split_cells(
    n: int, train_fraction: float, valid_fraction: float, strata: np.ndarray | None, seed: int
) -> np.ndarray:
    """Labels train / valid / test for ``n`` cells: exactly round(fraction·n) train and valid,
    the rest test; stratified by ``strata`` when every stratum has ≥ 3 members (else plain)."""
    n_train = int(np.floor(train_fraction * n + 0.5))
    n_valid = min(int(np.floor(valid_fraction * n + 0.5)), n - n_train)
    labels = np.full(n, "test", dtype=object)
    idx = np.arange(n)
    use_strata = strata is not None and np.unique(strata, return_counts=True)[1].min() >= 3

    def take(pool, size, offset):
        if size <= 0:
            return pool[:0], pool
        if size >= len(pool):
            return pool, pool[:0]
        sub = strata[pool] if use_strata else None
        try:
            return tuple(train_test_split(pool, train_size=size, random_state=seed + offset, stratify=sub))
        except ValueError:  # a stratum too small for this split size: a plain split of that size
            return tuple(train_test_split(pool, train_size=size, random_state=seed + offset))

    train, rest = take(idx, n_train, 0)
    valid, _ = take(np.sort(rest), n_valid, 1)
    labels[train] = "train"
    labels[valid] = "valid"
    return labels


def _strata(mdata: mudata.MuData, cells: pd.Index, groupby: str | None) -> np.ndarray | None:
    """One code per cell for ``groupby`` × ``batch`` (whichever exist), the split's strata."""
    cols = [c for c in ([groupby] if groupby else []) + ["batch"] if c]
    keys = [obs_column(mdata, c) for c in dict.fromkeys(cols)]
    keys = [k.reindex(cells).astype(str).to_numpy() for k in keys if k is not None]
    if not keys:
        return None
    joined = pd.Series(["|".join(parts) for parts in zip(*keys)])
    return pd.factorize(joined)[0]


def default_metacell_count(n_cells: int) -> int:
    """One metacell per ~50 cells, at least 200: 200 for the default's 3,000 cells (Cell2Net's
    tutorial size), ~1,000 for a 50,000-cell 10x run, so metacells keep ~50 cells each."""
    return max(200, int(round(n_cells / 50)))


def make_metacells(
    mdata: mudata.MuData,
    n_metacells: int | None = None,
    k: int = 15,
    n_pcs: int = 30,
    groupby: str | None = "cell_type",
    seed: int = 0,
    train_fraction: float = 0.7,
    valid_fraction: float = 0.15,
    n_top_genes: int = 2000,
) -> mudata.MuData:
    """Split the cells, then aggregate each split's cells into its own metacells of ≥ ``k`` cells.

    Each split gets ``round(n_metacells · its share of the cells)`` seeds (at least one, at most
    its cell count); the test split is what is left after train and valid. Metacells are built
    over all cell types of a split at once, so one straddling two types gets the majority label;
    see the module docstring for the output layout.
    """
    if n_metacells is None:
        n_metacells = default_metacell_count(mdata.n_obs)
    if n_metacells < 1 or k < 1:
        raise ValueError(f"n_metacells and k must be >= 1, got {n_metacells} and {k}")
    for name, value in (("train_fraction", train_fraction), ("valid_fraction", valid_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if train_fraction + valid_fraction > 1.0 + 1e-12:
        raise ValueError(
            f"train_fraction + valid_fraction must be <= 1, got {train_fraction} + {valid_fraction}"
        )
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
    if groupby and obs_column(mdata, groupby) is None:
        raise DatasetError(
            f"obs['{groupby}']",
            expected=f"a '{groupby}' column",
            found="no such column in global or per-modality obs",
        )
    identity = np.array_equal(atac_rows, np.arange(atac.n_obs))

    def atac_matrix(X):
        return X if identity else X[atac_rows]

    n = len(cells)
    cell_split = split_cells(n, train_fraction, valid_fraction, _strata(mdata, cells, groupby), seed)
    fit_rows = np.flatnonzero(cell_split == "train")
    emb = pca_embedding(
        rna.X,
        n_pcs=n_pcs,
        n_top_genes=n_top_genes,
        seed=seed,
        fit_rows=fit_rows if fit_rows.size > 1 else None,
    )
    groups, seeds, mc_split, counts = [], [], [], {}
    n_joined = 0
    for i, name in enumerate(SPLITS):
        rows = np.flatnonzero(cell_split == name)
        counts[f"n_cells_{name}"] = int(rows.size)
        if rows.size == 0:
            continue
        n_seeds = min(rows.size, max(1, int(np.floor(n_metacells * rows.size / n + 0.5))))
        local, local_seeds, joined = _groups(emb[rows], n_seeds, k, seed + i)
        groups += [rows[g] for g in local]
        seeds.append(rows[local_seeds])
        mc_split += [name] * len(local)
        n_joined += joined
    seeds = np.concatenate(seeds)
    n_mc = len(groups)
    lengths = np.array([len(g) for g in groups])
    M = sp.csr_matrix(
        (np.ones(lengths.sum(), dtype=np.float32), np.concatenate(groups), np.r_[0, np.cumsum(lengths)]),
        shape=(n_mc, n),
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
    label_cols = ([groupby] if groupby else []) + [c for c in OPTIONAL_LABELS if c != groupby]
    for col in label_cols:
        values = obs_column(mdata, col)
        if values is not None:
            obs[col] = _majority(M, values.reindex(cells), seeds)
    for mod, adata in (("rna", rna_mc), ("atac", atac_mc)):
        total = np.asarray(adata.X.sum(axis=1), dtype=np.float64).ravel()
        obs[f"total_counts_{mod}"] = total
        # log10 as in Cell2Net; an empty metacell gets 0 rather than -inf so models stay finite.
        obs[f"total_counts_{mod}_log"] = np.log10(np.maximum(total, 1.0))
    obs["split"] = pd.Categorical(mc_split, categories=list(SPLITS))

    with quiet_mudata():
        out = mudata.MuData({"rna": rna_mc, "atac": atac_mc})
    for col in obs.columns:
        out.obs[col] = obs[col].values  # Categorical stays categorical
    out.obsm["members"] = M
    out.uns.update(copy.deepcopy(dict(mdata.uns)))
    out.uns["member_cells"] = np.asarray(cells, dtype=object)
    out.uns["member_split"] = np.asarray(cell_split, dtype=object)
    out.uns["metacells"] = {
        "n_metacells": int(n_mc),
        "k": int(min(k, n)),
        "n_pcs": int(n_pcs),
        "seed": int(seed),
        "groupby": groupby or "",
        "train_fraction": float(train_fraction),
        "valid_fraction": float(valid_fraction),
        "n_cells": int(n),
        **counts,
        "n_cells_in_no_metacell": int(n - np.unique(M.indices).size),
        "n_cells_joined_nearest_seed": int(n_joined),
        "seeding": "kmeans++ (D2) on PCA (fitted on train cells) of log-normalised RNA, per split",
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
