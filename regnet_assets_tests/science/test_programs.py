"""Gene ranks, standardised loadings, dim importance and program genes (InterScale definitions)."""

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from regnet_assets.science.reports.programs import (
    dim_importance,
    dim_uniqueness,
    expression_stats,
    gene_ranks,
    latent_rank_report,
    program_genes,
    shared_unique_programs,
    standardised_loadings,
)


# ----------------------------------------------------------------------------- gene ranks
def test_gene_ranks_orientation_and_columns():
    full = pd.Series({"a": 0.9, "b": 0.1, "c": 0.5})
    abl = pd.Series({"a": 0.2, "b": 0.3, "c": 0.4})
    df = gene_ranks(full, abl).set_index("gene")
    assert list(df.reset_index().columns) == [
        "gene",
        "score_full",
        "score_ablated",
        "rank_full",
        "rank_ablated",
        "rank_diff",
        "avg_rank",
    ]
    assert df.loc["a", "rank_full"] == 3 and df.loc["a", "rank_ablated"] == 1  # higher score -> higher rank
    assert df.loc["a", "rank_diff"] == 2  # positive: needs TFs
    assert df.loc["c", "avg_rank"] == 2.5


def test_gene_ranks_nan_does_not_poison_other_ranks():
    full = pd.Series({"a": 0.9, "b": np.nan, "c": 0.5, "d": 0.7, "e": 0.1})
    abl = pd.Series({"a": 0.2, "b": 0.3, "c": np.inf, "d": 0.6, "e": 0.1, "only_ablated": 0.5})
    df = gene_ranks(full, abl).set_index("gene")
    assert "only_ablated" not in df.index  # inner join
    assert df.loc[["b", "c"], ["rank_full", "rank_ablated", "rank_diff"]].isna().all().all()
    valid = df.loc[["a", "d", "e"]]
    assert sorted(valid["rank_full"]) == [1, 2, 3] and sorted(valid["rank_ablated"]) == [1, 2, 3]
    assert df.loc["b", "score_ablated"] == 0.3  # scores kept


def test_gene_ranks_ties_average():
    df = gene_ranks(pd.Series({"a": 1.0, "b": 1.0, "c": 0.0}), pd.Series({"a": 0.0, "b": 0.0, "c": 0.0}))
    assert list(df["rank_full"]) == [2.5, 2.5, 1.0] and list(df["rank_ablated"]) == [2.0, 2.0, 2.0]


# ----------------------------------------------------------------------------- loadings
def _linear_data(n=4000, k=3, g=12, seed=0, correlated=False):
    rng = np.random.default_rng(seed)
    sd_z = np.array([1.0, 3.0, 0.5])[:k]
    z = rng.normal(size=(n, k)) * sd_z
    if correlated:
        z[:, 1] += 0.8 * z[:, 0]
    w = rng.normal(size=(g, k))
    noise_sd = rng.uniform(0.2, 1.0, g)
    x = z @ w.T + rng.normal(size=g) + rng.normal(size=(n, g)) * noise_sd
    cov = np.cov(z, rowvar=False)
    true_sd_x = np.sqrt(np.einsum("gk,kl,gl->g", w, cov, w) + noise_sd**2)
    truth = w * np.sqrt(np.diag(cov))[None, :] / true_sd_x[:, None]
    return z, x, w, truth


def test_standardised_loadings_recover_known_decoder():
    z, x, w, truth = _linear_data(correlated=True)
    genes = [f"g{i}" for i in range(x.shape[1])]
    s = standardised_loadings(z, x, genes)
    assert list(s.index) == genes and list(s.columns) == [0, 1, 2]
    np.testing.assert_allclose(s.to_numpy(), truth, atol=0.03)
    # exact: with the true weights the only difference is sample vs population SDs
    s_w = standardised_loadings(z, x, genes, weights=w)
    expected = w * z.std(axis=0, ddof=1)[None, :] / x.std(axis=0, ddof=1)[:, None]
    np.testing.assert_allclose(s_w.to_numpy(), expected, rtol=1e-12)
    # sparse input gives the same fit
    s_sp = standardised_loadings(z, sparse.csr_matrix(x), genes)
    np.testing.assert_allclose(s_sp.to_numpy(), s.to_numpy(), rtol=1e-8, atol=1e-10)


def test_standardised_loadings_residualise_removes_batch():
    rng = np.random.default_rng(1)
    n = 3000
    batch = rng.choice(["b1", "b2"], n)
    shift = (batch == "b2").astype(float)
    z = np.column_stack([rng.normal(size=n), rng.normal(size=n) + 5 * shift])  # dim 1 = batch + noise
    x = np.column_stack([2 * z[:, 0] + rng.normal(size=n), 4 * shift + rng.normal(size=n)])
    raw = standardised_loadings(z, x, ["g0", "g1"])
    adj = standardised_loadings(z, x, ["g0", "g1"], residualise=batch)
    assert abs(raw.loc["g1", 1]) > 0.5  # batch-driven association
    assert abs(adj.loc["g1", 1]) < 0.05  # gone within batch
    assert adj.loc["g0", 0] == pytest.approx(2 / np.sqrt(5), abs=0.03)


def test_latent_rank_report_flags_collinear_dims():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 3))
    assert latent_rank_report(z) == {"n_obs": 50, "n_dims": 3, "rank": 3, "linearly_independent": True}
    z2 = np.column_stack([z, z[:, 0] + z[:, 1]])
    z2[0, 0] = np.nan
    rep = latent_rank_report(z2)
    assert rep["rank"] == 3 and rep["n_obs"] == 49 and not rep["linearly_independent"]
    u = dim_uniqueness(np.column_stack([z, z[:, 0] + 1e-3 * rng.normal(size=50)]))
    assert u[1] > 0.9 and u[3] < 0.01


# ----------------------------------------------------------------------------- dim importance
def test_dim_importance_sums_to_one_and_selects_by_cutoff():
    loadings = pd.DataFrame({0: [0.1, 0.1], 1: [0.8, 0.6], 2: [0.3, 0.4]}, index=["g0", "g1"])
    imp = dim_importance(loadings, cutoff=0.6)
    assert imp["importance"].sum() == pytest.approx(1.0)
    assert list(imp["dim"]) == [1, 2, 0] and (imp["mode"] == "diag").all()
    # diag scores: dim1 = 1.0, dim2 = 0.25, dim0 = 0.02 -> 1.0/1.27 = 0.787 >= 0.6 -> one dim
    assert list(imp["selected"]) == [True, False, False]
    assert list(dim_importance(loadings, cutoff=0.95)["selected"]) == [True, True, False]
    assert dim_importance(loadings, cutoff=None)["selected"].all()


def test_dim_importance_full_mode_shares_explained_variance():
    z, x, _, _ = _linear_data(correlated=True)
    s = standardised_loadings(z, x, [f"g{i}" for i in range(x.shape[1])])
    imp = dim_importance(s, latent=z)
    assert (imp["mode"] == "full").all() and imp["importance"].sum() == pytest.approx(1.0)
    # full-mode total = sum of per-gene R^2 of the fitted linear decoder
    xc, zc = x - x.mean(0), np.column_stack([np.ones(len(z)), z])
    resid = xc - zc @ np.linalg.lstsq(zc, xc, rcond=None)[0]
    r2 = 1 - (resid**2).sum(0) / (xc**2).sum(0)
    assert imp["score"].sum() == pytest.approx(r2.sum(), rel=1e-8)
    zero = dim_importance(s * 0.0, latent=z)
    assert (zero["importance"] == 0).all()


# ----------------------------------------------------------------------------- program genes
def _program_inputs():
    genes = ["A", "B", "C", "D", "E", "F"]
    loadings = pd.DataFrame(
        {0: [0.9, -0.8, 0.5, 0.1, 0.7, 0.05], 1: [0.1, 0.2, 0.45, -0.9, 0.1, 0.6], 2: [0.0] * 6},
        index=genes,
    )
    sd = pd.Series([1.0, 1.0, 1.0, 1.0, 0.1, 3.0], index=genes)
    frac = pd.Series([0.5, 0.5, 0.5, 0.5, 0.5, 0.01], index=genes)
    return loadings, sd, frac


def test_program_genes_filters_and_specificity():
    loadings, sd, frac = _program_inputs()
    out = program_genes(loadings, sd, [0, 1], top_n=2, min_frac=0.05, gene_frac=frac)
    by = {p: list(g) for p, g in out.groupby("program", sort=False)["gene"]}
    # F fails min_frac; C fails specificity (0.5 / 0.45 < 1.5); top 2 by |loading| per dim
    # dim_1: B (|0.2|, specific since 0.8/0.2 = 4) beats A and E (|0.1|)
    assert by == {"dim_0": ["A", "B"], "dim_1": ["D", "B"]}
    row = out.set_index(["program", "gene"]).loc[("dim_0", "B")]
    assert row["loading"] == -0.8 and row["sign"] == -1 and row["rank"] == 2 and row["winner_dim"] == 0
    # no specificity: C is allowed back in
    loose = program_genes(
        loadings, sd, [0, 1], top_n=3, min_frac=0.05, gene_frac=frac, specificity_ratio=None
    )
    assert "C" in set(loose["gene"])


def test_program_genes_rank_by_loading_x_sd_and_min_sd():
    loadings, sd, frac = _program_inputs()
    by_load = program_genes(loadings, sd, [0], top_n=3, min_frac=0, rank_by="loading")
    assert list(by_load["gene"]) == ["A", "B", "E"]  # single dim: specificity not applied
    by_sd = program_genes(loadings, sd, [0], top_n=3, min_frac=0, rank_by="loading_x_sd")
    assert list(by_sd["gene"]) == ["A", "B", "C"]  # E: 0.7 x 0.1 drops out
    assert by_sd.set_index("gene").loc["B", "score"] == pytest.approx(-0.8)
    assert "B" not in set(program_genes(loadings, sd.drop("B"), [0], top_n=6, min_frac=0)["gene"])
    assert set(program_genes(loadings, sd, [0], top_n=6, min_frac=0, min_sd=0.5)["gene"]) == {
        "A",
        "B",
        "C",
        "D",
        "F",
    }
    with pytest.raises(ValueError, match="gene_frac"):
        program_genes(loadings, sd, [0])
    with pytest.raises(ValueError, match="not columns"):
        program_genes(loadings, sd, [7], min_frac=0)


def test_expression_stats_and_shared_unique():
    x = np.array([[0, 1.0], [2, 0], [0, 3], [0, 0]])
    st = expression_stats(x, ["a", "b"])
    assert list(st["frac"]) == [0.25, 0.5]
    np.testing.assert_allclose(st["sd"], x.std(0, ddof=1))
    pd.testing.assert_frame_equal(expression_stats(sparse.csr_matrix(x), ["a", "b"]), st)
    groups = shared_unique_programs(["A", "B", "C"], ["C", "D"], names=("full", "ablated"))
    assert groups.groupby("program")["gene"].apply(list).to_dict() == {
        "shared": ["C"],
        "unique_full": ["A", "B"],
        "unique_ablated": ["D"],
    }
