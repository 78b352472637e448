"""Metacells: exact count sums, membership, labels, covariates, split, determinism, round-trip."""

from __future__ import annotations

from collections import Counter

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from regnet_assets.science.dataset.metacells import (
    _majority,
    make_metacells,
    split_cells,
    split_table,
    spread_seeds,
)
from regnet_assets.science.dataset.reading import DatasetError, quiet_mudata, read_multiome
from regnet_assets.science.dataset.validation import validate_multiome

N_CELLS, N_GENES, N_PEAKS = 90, 12, 20


def make_mdata(seed=0):
    """Three well-separated cell types; atac rows deliberately in a different order from rna."""
    rng = np.random.default_rng(seed)
    types = np.repeat(["T0", "T1", "T2"], N_CELLS // 3)
    profile = rng.gamma(2.0, 2.0, (3, N_GENES)) * np.eye(3).repeat(4, axis=1)[:, :N_GENES] + 0.5
    codes = pd.Categorical(types).codes
    rate = profile[codes] * rng.uniform(0.5, 1.5, (N_CELLS, 1))
    cells = [f"c{i:03d}" for i in range(N_CELLS)]
    rna = ad.AnnData(
        sp.csr_matrix(rng.poisson(rate).astype(np.float32)),
        obs=pd.DataFrame({"cell_type": types}, index=cells),
        var=pd.DataFrame(index=[f"G{i}" for i in range(N_GENES)]),
        layers={"true_rate": rate.astype(np.float32)},
        obsm={"true_tf_activity": pd.DataFrame(rate[:, :2], index=cells, columns=["G0", "G1"])},
    )
    order = rng.permutation(N_CELLS)
    atac_x = rng.poisson(1.0, (N_CELLS, N_PEAKS)).astype(np.int64)
    peaks = [f"chr1:{i * 100}-{i * 100 + 50}" for i in range(N_PEAKS)]
    atac = ad.AnnData(
        atac_x[order],
        obs=pd.DataFrame(index=np.asarray(cells)[order]),
        var=pd.DataFrame({"sequence": ["ACGT"] * N_PEAKS}, index=peaks),
    )
    atac.varm["motif_hits"] = sp.csr_matrix(rng.integers(0, 2, (N_PEAKS, 3)))
    atac.uns["motif_names"] = np.array(["G0", "G1", "G2"], dtype=object)
    with quiet_mudata():
        m = mudata.MuData({"rna": rna, "atac": atac})
    m.obs["batch"] = rng.choice(["d1", "d2"], N_CELLS)
    m.obs["condition"] = np.where(np.arange(N_CELLS) % 2 == 0, "ctrl", "stim")
    m.uns["peak_to_gene"] = pd.DataFrame({"gene": ["G0"] * 3, "peak": peaks[:3], "distance": [1, 2, 3]})
    m.uns["truth_edges"] = pd.DataFrame({"tf": ["G1"], "gene": ["G0"], "sign": [1]})
    return m, pd.DataFrame(atac_x, index=cells)


@pytest.fixture(scope="module")
def data():
    m, atac_by_cell = make_mdata()
    mc = make_metacells(m, n_metacells=25, k=7, n_pcs=5, seed=3, train_fraction=0.6, valid_fraction=0.2)
    return m, atac_by_cell, mc


def member_lists(mc):
    M = mc.obsm["members"].tocsr()
    return [M.indices[M.indptr[i] : M.indptr[i + 1]] for i in range(M.shape[0])]


def test_shape_names_and_membership(data):
    m, _, mc = data
    # 54 / 18 / 18 cells: round(25 · share) = 15 / 5 / 5 seeds
    assert mc.mod["rna"].shape == (25, N_GENES) and mc.mod["atac"].shape == (25, N_PEAKS)
    assert list(mc.obs_names[:2]) == ["mc0000", "mc0001"]
    M = mc.obsm["members"]
    assert sp.issparse(M) and M.shape == (25, N_CELLS) and set(np.unique(M.data)) == {1.0}
    assert list(mc.uns["member_cells"]) == list(m.mod["rna"].obs_names)
    cells = np.asarray(mc.uns["member_cells"])
    for i, members in enumerate(member_lists(mc)):
        assert len(members) >= 7 and len(members) == mc.obs["n_cells"].iloc[i]
        assert mc.obs["seed_cell"].iloc[i] in cells[members]  # the seed is always a member
    assert mc.obs["seed_cell"].is_unique


def test_counts_are_exact_sums_of_members(data):
    m, atac_by_cell, mc = data
    rna_x = m.mod["rna"].X.toarray()
    rate = m.mod["rna"].layers["true_rate"]
    cells = np.asarray(mc.uns["member_cells"])
    mc_rna = mc.mod["rna"].X.toarray()
    mc_atac = np.asarray(mc.mod["atac"].X.toarray() if sp.issparse(mc.mod["atac"].X) else mc.mod["atac"].X)
    assert mc_atac.dtype == np.int64 and mc_rna.dtype == np.float32
    for i, members in enumerate(member_lists(mc)):
        assert np.array_equal(mc_rna[i], rna_x[members].sum(axis=0))
        # atac rows were stored in another order: sums must follow cell names, not positions
        assert np.array_equal(mc_atac[i], atac_by_cell.loc[cells[members]].to_numpy().sum(axis=0))
        np.testing.assert_allclose(
            mc.mod["rna"].layers["true_rate"][i], rate[members].astype(np.float64).sum(axis=0), rtol=1e-6
        )
        np.testing.assert_allclose(
            mc.mod["rna"].obsm["true_tf_activity"].iloc[i], rate[members, :2].astype(np.float64).mean(axis=0)
        )
    assert list(mc.mod["rna"].obsm["true_tf_activity"].columns) == ["G0", "G1"]
    assert mc.obs["total_counts_rna"].tolist() == mc_rna.sum(axis=1).tolist()
    assert mc.obs["total_counts_atac"].tolist() == mc_atac.sum(axis=1).tolist()


def test_log_covariates_are_log10(data):
    _, _, mc = data
    for mod in ("rna", "atac"):
        np.testing.assert_allclose(
            mc.obs[f"total_counts_{mod}_log"], np.log10(mc.obs[f"total_counts_{mod}"]), rtol=1e-12
        )


def test_labels_by_majority(data):
    m, _, mc = data
    cells = np.asarray(mc.uns["member_cells"])
    sources = {
        "cell_type": m.mod["rna"].obs["cell_type"],
        "batch": m.obs["batch"],
        "condition": m.obs["condition"],
    }
    for col, source in sources.items():
        source = source.reindex(cells).to_numpy()
        for i, members in enumerate(member_lists(mc)):
            counts = Counter(source[members])
            top = max(counts.values())
            got = mc.obs[col].iloc[i]
            assert counts[got] == top
            seed_label = source[list(cells).index(mc.obs["seed_cell"].iloc[i])]
            if counts[seed_label] == top:
                assert got == seed_label  # ties go to the seed's own label


def test_majority_tie_breaking_by_hand():
    # 5 cells; metacell rows: {0,1,2}, {2,3}, {3,4}; seeds 0, 3, 4
    M = sp.csr_matrix(np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]], dtype=float))
    labels = pd.Series(["b", "a", "a", "b", np.nan])
    got = _majority(M, labels, np.array([0, 3, 4]))
    # row 0: a=2 beats seed's b; row 1: a/b tie → seed (cell 3) 'b';
    # row 2: only 'b' labelled (seed has no label) → 'b'
    assert list(got) == ["a", "b", "b"]
    got = _majority(M, labels, np.array([0, 2, 4]))
    assert list(got) == ["a", "a", "b"]  # row 1 tie, seed 2 is 'a'


def test_no_cell_is_in_metacells_of_two_splits_and_every_cell_is_used(data):
    _, _, mc = data
    M = mc.obsm["members"].tocsr()
    cell_split = np.asarray(mc.uns["member_split"])
    for name in ("train", "valid", "test"):
        rows = np.flatnonzero(mc.obs["split"].to_numpy() == name)
        used = np.unique(M[rows].indices)
        assert set(cell_split[used]) == {name}  # built only from the split's own cells
    assert np.unique(M.indices).size == N_CELLS  # every cell is in some metacell
    info = mc.uns["metacells"]
    assert info["n_cells_in_no_metacell"] == 0
    assert (info["n_cells_train"], info["n_cells_valid"], info["n_cells_test"]) == (54, 18, 18)
    assert mc.obs["split"].value_counts().to_dict() == {"train": 15, "valid": 5, "test": 5}


def test_split_cells_sizes_follow_the_fractions():
    for n, ft, fv, want in [(10, 0.7, 0.15, (7, 2, 1)), (7, 0.8, 0.2, (6, 1, 0)), (3, 1.0, 0.0, (3, 0, 0))]:
        labels = split_cells(n, ft, fv, None, seed=0)
        got = tuple(int((labels == s).sum()) for s in ("train", "valid", "test"))
        assert got == want, (n, ft, fv)


def test_split_cells_is_stratified_and_deterministic():
    strata = np.repeat([0, 1, 2], 20)
    labels = split_cells(60, 0.7, 0.15, strata, seed=1)
    for g in range(3):
        part = labels[strata == g]
        assert [(part == s).sum() for s in ("train", "valid", "test")] == [14, 3, 3]
    assert np.array_equal(labels, split_cells(60, 0.7, 0.15, strata, seed=1))
    assert not np.array_equal(labels, split_cells(60, 0.7, 0.15, strata, seed=2))
    # one tiny stratum: falls back to a plain split of the same sizes
    strata = np.array([0] * 30 + [1] * 28 + [2] * 2)
    labels = split_cells(60, 0.7, 0.15, strata, seed=1)
    assert [(labels == s).sum() for s in ("train", "valid", "test")] == [42, 9, 9]


def test_split_is_stratified_by_cell_type_and_batch(data):
    m, _, mc = data
    cell_split = pd.Series(np.asarray(mc.uns["member_split"]), index=m.mod["rna"].obs_names)
    key = (
        m.mod["rna"].obs["cell_type"].astype(str) + "/" + m.obs["batch"].reindex(cell_split.index).astype(str)
    )
    shares = pd.crosstab(key, cell_split, normalize="index")
    np.testing.assert_allclose(shares["train"], 0.6, atol=0.08)


def test_bad_fractions_raise():
    m, _ = make_mdata()
    with pytest.raises(ValueError, match="train_fraction \\+ valid_fraction"):
        make_metacells(m, n_metacells=5, train_fraction=0.9, valid_fraction=0.2)


def test_same_seed_same_result_other_seed_differs(data):
    m, _, mc = data
    again = make_metacells(m, n_metacells=25, k=7, n_pcs=5, seed=3, train_fraction=0.6, valid_fraction=0.2)
    pd.testing.assert_frame_equal(again.obs, mc.obs)
    assert (again.obsm["members"] != mc.obsm["members"]).nnz == 0
    other = make_metacells(m, n_metacells=25, k=7, n_pcs=5, seed=4, train_fraction=0.6, valid_fraction=0.2)
    assert set(other.obs["seed_cell"]) != set(mc.obs["seed_cell"])


def test_carries_uns_sequences_and_motifs(data):
    m, _, mc = data
    pd.testing.assert_frame_equal(mc.uns["peak_to_gene"], m.uns["peak_to_gene"])
    pd.testing.assert_frame_equal(mc.uns["truth_edges"], m.uns["truth_edges"])
    assert list(mc.mod["atac"].var["sequence"]) == ["ACGT"] * N_PEAKS
    assert (mc.mod["atac"].varm["motif_hits"] != m.mod["atac"].varm["motif_hits"]).nnz == 0
    assert list(mc.mod["atac"].uns["motif_names"]) == ["G0", "G1", "G2"]
    assert mc.uns["metacells"]["k"] == 7


def test_h5mu_round_trip(tmp_path, data):
    _, _, mc = data
    path = tmp_path / "metacells.h5mu"
    mc.write(path)
    back = read_multiome(path)
    validate_multiome(back)  # metacells still satisfy the dataset contract
    assert sp.issparse(back.obsm["members"])
    assert (back.obsm["members"] != mc.obsm["members"]).nnz == 0
    assert list(back.uns["member_cells"]) == list(mc.uns["member_cells"])
    pd.testing.assert_frame_equal(back.uns["peak_to_gene"], mc.uns["peak_to_gene"])
    table, table_back = split_table(mc), split_table(back)
    pd.testing.assert_frame_equal(table_back[table.columns], table)  # global obs not prefixed
    assert back.mod["rna"].layers["true_rate"].shape == (25, N_GENES)


def test_split_table(data):
    _, _, mc = data
    table = split_table(mc)
    assert list(table.columns[:3]) == ["metacell", "seed_cell", "n_cells"]
    assert table["metacell"].tolist() == list(mc.obs_names)
    assert set(table["split"]) == {"train", "valid", "test"} and table["split"].dtype == object
    for col in ("cell_type", "batch", "condition", "total_counts_rna_log", "total_counts_atac_log"):
        assert col in table.columns


def test_clipping_and_identical_cells():
    m, _ = make_mdata()
    small = make_metacells(
        m, n_metacells=500, k=200, n_pcs=50, seed=0, train_fraction=1.0, valid_fraction=0.0
    )
    assert small.n_obs == N_CELLS and set(small.obs["n_cells"]) == {N_CELLS}
    # identical cells: seeds must still be distinct and each metacell must contain its seed
    X = np.ones((10, 4), dtype=np.float32)
    cells = [f"c{i}" for i in range(10)]
    rna = ad.AnnData(X, obs=pd.DataFrame({"cell_type": ["A"] * 10}, index=cells))
    atac = ad.AnnData(
        X.copy(),
        obs=pd.DataFrame(index=cells),
        var=pd.DataFrame(index=[f"chr1:{i}-{i + 1}" for i in range(4)]),
    )
    with quiet_mudata():
        twin = mudata.MuData({"rna": rna, "atac": atac})
    out = make_metacells(twin, n_metacells=10, k=3, seed=0, train_fraction=1.0, valid_fraction=0.0)
    assert out.obs["seed_cell"].is_unique
    for i, members in enumerate(member_lists(out)):
        assert out.obs["seed_cell"].iloc[i] in np.asarray(cells)[members]


def test_spread_seeds_distinct_and_deterministic():
    emb = np.random.default_rng(0).normal(size=(200, 3))
    a, b = spread_seeds(emb, 50, seed=1), spread_seeds(emb, 50, seed=1)
    assert np.array_equal(a, b) and len(set(a)) == 50


def test_missing_groupby_raises():
    m, _ = make_mdata()
    with pytest.raises(DatasetError) as info:
        make_metacells(m, n_metacells=5, groupby="celltype")
    assert info.value.field == "obs['celltype']"
    out = make_metacells(m, n_metacells=5, groupby=None)  # no labels needed without groupby
    assert "cell_type" not in out.obs.columns and (out.obs["split"] == "train").sum() == 4  # round(5·0.7)
