"""The large preset's sparse, chunked sampler at a reduced size: contract, sizes, sparsity,
determinism, the same means as the dense sampler, and a dataset group that stays sparse."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from regnet_assets.science.dataset import metacells as metacell_lib
from regnet_assets.science.dataset.simulator import SimulationConfig, _poisson_sparse, simulate
from regnet_assets.science.dataset.validation import validate_multiome

# more background genes than DoRothEA has unused real names (~5,000), chunks that do not
# divide the cells
CONFIG = SimulationConfig.large(
    n_cells=700, n_target_genes=30, n_tfs=24, n_background_genes=5_500, chunk_cells=300
)


@pytest.fixture(scope="module")
def sim():
    return simulate(CONFIG)


def test_large_preset_sizes():
    large = SimulationConfig.preset("large")
    assert (large.n_cells, large.n_target_genes, large.n_tfs) == (50_000, 2_000, 200)
    n_genes = large.n_target_genes + large.n_tfs + 9 + large.n_background_genes  # 9 signalling
    assert n_genes == 20_000 and large.sparse_counts
    assert np.mean(large.peaks_per_gene) * large.n_target_genes == 100_000
    with pytest.raises(ValueError, match="preset must be one of"):
        SimulationConfig.preset("huge")


def test_contract_valid_and_sizes_follow_the_config(sim):
    validate_multiome(sim)
    rna, atac = sim["rna"], sim["atac"]
    roles = sim.uns["truth_gene_roles"]["role"].value_counts()
    assert sim.n_obs == CONFIG.n_cells
    assert roles["target"] == CONFIG.n_target_genes and roles["background"] == CONFIG.n_background_genes
    assert rna.n_vars == CONFIG.n_target_genes + CONFIG.n_tfs + 9 + CONFIG.n_background_genes
    lo, hi = CONFIG.peaks_per_gene
    per_gene = sim.uns["peak_to_gene"].groupby("gene").size()
    assert per_gene.between(lo, hi).all() and atac.n_vars == per_gene.sum()
    assert "SIMG00001" in rna.var_names and rna.var_names.is_unique


def test_counts_are_sparse_like_real_data(sim):
    rna, atac = sim["rna"], sim["atac"]
    for X in (rna.X, atac.X, rna.layers["true_rate"]):
        assert sp.issparse(X) and X.format == "csr" and X.dtype == np.float32
    assert atac.X.nnz / np.prod(atac.shape) < 0.10  # >= 90 % zeros, as in 10x ATAC
    assert rna.X.nnz / np.prod(rna.shape) < 0.20
    assert (atac.X.data == np.round(atac.X.data)).all() and atac.X.data.min() > 0
    # true rates exist for the modelled genes and nowhere else
    roles = sim.uns["truth_gene_roles"].set_index("gene")["role"]
    background = (roles.reindex(rna.var_names) == "background").to_numpy()
    rate = rna.layers["true_rate"]
    assert rate[:, background].nnz == 0 and rate[:, ~background].nnz == sim.n_obs * (~background).sum()


def test_same_seed_same_file_other_seed_differs(sim):
    again = simulate(CONFIG)
    for mod in ("rna", "atac"):
        a, b = sim[mod].X, again[mod].X
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.data, b.data)
    other = simulate(replace(CONFIG, seed=1))
    assert not other.uns["truth_tf_gene"].equals(sim.uns["truth_tf_gene"])


def test_poisson_sparse_has_the_poisson_distribution():
    rng = np.random.default_rng(0)
    rates = np.array([[0.02, 0.2, 1.0, 3.0], [0.5, 0.05, 0.0, 1.5]])
    group = np.repeat([0, 1], 20_000)
    scale = np.exp(rng.normal(0, 0.3, group.size))
    X = _poisson_sparse(rng, group, scale, rates).toarray()
    mean = scale[:, None] * rates[group]
    for g in (0, 1):
        sel = group == g
        expected = mean[sel].mean(axis=0)
        observed = X[sel].mean(axis=0)
        se = np.sqrt(expected / sel.sum()) + 1e-12
        assert np.all(np.abs(observed - expected) < 5 * se)
        # Poisson given the mean: P(0) = mean over cells of exp(-mean)
        np.testing.assert_allclose((X[sel] == 0).mean(axis=0), np.exp(-mean[sel]).mean(axis=0), atol=0.01)
    assert X[group == 1, 2].sum() == 0  # a zero rate never draws


def test_sparse_mode_has_the_dense_modes_means():
    """Same config but for the sampler: per-feature means agree (dense features are the same
    model; the sparse remainder's Poisson means match the dense NB / lognormal means)."""
    config = replace(CONFIG, n_cells=1500, n_background_genes=300)
    sparse, dense = simulate(config), simulate(replace(config, sparse_counts=False))
    peak_roles = sparse.uns["truth_peaks"]["role"].to_numpy()
    gene_roles = sparse.uns["truth_gene_roles"]["role"].to_numpy()
    for mod, subset in (
        ("atac", peak_roles == "background"),  # the sparse remainder
        ("atac", peak_roles != "background"),
        ("rna", gene_roles == "background"),  # the sparse remainder
        ("rna", gene_roles == "target"),
    ):
        a = np.asarray(sparse[mod].X.mean(axis=0)).ravel()[subset]
        b = np.asarray(dense[mod].X.mean(axis=0)).ravel()[subset]
        assert abs(np.median(a / np.maximum(b, 1e-3)) - 1) < 0.1, mod
        assert abs(a.sum() / b.sum() - 1) < 0.1, mod
        assert np.corrcoef(np.log1p(a), np.log1p(b))[0, 1] > 0.9, mod


def test_regulation_survives_chunking(sim):
    """Within a cell type, a regulator's true rate tracks its targets' with the edge's sign,
    across chunk boundaries."""
    rate = sim["rna"].layers["true_rate"].toarray().astype(np.float64)
    col = {g: i for i, g in enumerate(sim["rna"].var_names)}
    ctype = sim.obs["cell_type"].to_numpy()
    agree = []
    for edge in sim.uns["truth_tf_gene"].query("cell_types == 'all' and weight >= 0.4").itertuples():
        for t in np.unique(ctype):
            sel = ctype == t
            if sel.sum() > 30:
                r = np.corrcoef(np.log(rate[sel, col[edge.tf]]), np.log(rate[sel, col[edge.gene]]))[0, 1]
                agree.append(edge.sign * r)
    assert len(agree) >= 10 and np.median(agree) > 0.2


def test_atac_reaching_metacells_stays_sparse(sim, monkeypatch):
    seen = []
    aggregate = metacell_lib._aggregate

    def spy(M, X):
        seen.append(sp.issparse(X))
        return aggregate(M, X)

    monkeypatch.setattr(metacell_lib, "_aggregate", spy)
    mc = metacell_lib.make_metacells(sim, n_metacells=20)
    assert seen and all(seen)
    assert sp.issparse(mc["atac"].X) and mc["atac"].n_vars == sim["atac"].n_vars
