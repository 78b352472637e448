"""The simulator: determinism, file round-trip, the DESIGN §2 contract and its ground truth."""

from __future__ import annotations

import json
import re

import h5py
import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from regnet_assets.science.dataset import motifs as M
from regnet_assets.science.dataset.reference_data import dorothea, signalling_pkn
from regnet_assets.science.dataset.simulator import SimulationConfig, simulate, write_simulated

CONFIG = SimulationConfig.small()


@pytest.fixture(scope="module")
def sim():
    return simulate(CONFIG)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    first = write_simulated(folder / "a.h5mu", CONFIG)
    second = write_simulated(folder / "b.h5mu", CONFIG)
    return folder, first, second


def tables(m) -> dict[str, object]:
    """Everything a consumer reads, as comparable objects."""
    out = {
        "rna_X": m["rna"].X.toarray(),
        "atac_X": m["atac"].X.toarray(),
        "true_rate": np.asarray(m["rna"].layers["true_rate"]),
        "obs": m.obs[["cell_type", "batch", "condition"]].astype(str),
        "rna_var": m["rna"].var[["chrom", "tss"]],
        "atac_var": m["atac"].var[["sequence"]],
        "activity": m["rna"].obsm["true_tf_activity"],
    }
    for key in ("peak_to_gene", "truth_tf_gene", "truth_signalling", "truth_peaks"):
        out[key] = m.uns[key].reset_index(drop=True)
    return out


def assert_same(a, b):
    for key in a:
        if isinstance(a[key], pd.DataFrame):
            pd.testing.assert_frame_equal(a[key], b[key], check_dtype=False, check_categorical=False)
        else:
            np.testing.assert_array_equal(a[key], b[key])


# ---------------------------------------------------------------------------------------------
# determinism and files
# ---------------------------------------------------------------------------------------------
def test_same_seed_same_data_different_seed_differs(sim):
    assert_same(tables(sim), tables(simulate(CONFIG)))
    other = simulate(SimulationConfig.small(seed=1))
    x, y = sim["rna"].X.toarray(), other["rna"].X.toarray()
    assert x.shape != y.shape or not np.array_equal(x, y)
    assert not sim.uns["truth_tf_gene"].equals(other.uns["truth_tf_gene"])
    assert list(sim["atac"].var["sequence"]) != list(other["atac"].var["sequence"])


@pytest.mark.filterwarnings("ignore:From 0.4 .update():FutureWarning")  # mudata's own read
def test_file_round_trip_and_identical_h5_content(sim, written):
    folder, first, second = written
    back = mudata.read_h5mu(first)
    assert_same(tables(sim), tables(back))
    assert isinstance(back.uns["peak_to_gene"], pd.DataFrame)
    assert json.loads(back.uns["simulation_config"])["seed"] == CONFIG.seed

    # the two files written from the same config hold identical datasets
    def datasets(path):
        found = {}
        with h5py.File(path, "r") as handle:
            handle.visititems(
                lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        return found

    a, b = datasets(first), datasets(second)
    assert a.keys() == b.keys() and len(a) > 20
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # atomic write leaves no temporary files behind
    assert sorted(p.name for p in folder.iterdir()) == ["a.h5mu", "b.h5mu"]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(mudata.MuData, "write_h5mu", boom)
    with pytest.raises(RuntimeError):
        write_simulated(tmp_path / "x.h5mu", CONFIG)
    assert list(tmp_path.iterdir()) == []


def test_config_validation():
    with pytest.raises(ValueError, match="n_regulators"):
        SimulationConfig(n_tfs=4, n_regulators=8)
    with pytest.raises(ValueError, match="hierarchy"):
        SimulationConfig(n_regulators=2)
    # changing only n_tfs keeps a valid config (regulators follow the fraction)
    assert (
        SimulationConfig(n_tfs=20).regulators == 8 and SimulationConfig().regulators == 24
    )  # ceil(0.4 × 60 TFs)
    with pytest.raises(ValueError, match="peaks_per_gene"):
        SimulationConfig(peaks_per_gene=(2, 3))


# ---------------------------------------------------------------------------------------------
# the dataset contract (DESIGN §2)
# ---------------------------------------------------------------------------------------------
def test_contract_structure(sim):
    rna, atac = sim["rna"], sim["atac"]
    for X in (rna.X, atac.X):
        assert sp.issparse(X) and X.format == "csr"
        data = X.data
        assert np.all(np.isfinite(data)) and data.min() >= 0 and np.all(data == np.round(data))
    assert rna.var_names.is_unique and atac.var_names.is_unique
    roles = sim.uns["truth_gene_roles"]["role"].value_counts()
    assert roles["target"] == CONFIG.n_target_genes
    assert roles["tf_regulator"] == CONFIG.regulators
    assert roles["tf_regulator"] + roles["tf_decoy"] == CONFIG.n_tfs
    assert roles[["receptor", "kinase", "decoy_kinase"]].sum() >= 3
    assert list(sim.uns["truth_gene_roles"]["gene"]) == list(rna.var_names)
    assert list(rna.obs_names) == list(atac.obs_names) == list(sim.obs_names)
    assert sim.obs_names.is_unique and sim.n_obs == CONFIG.n_cells
    assert {"cell_type", "batch", "condition"} <= set(sim.obs.columns)
    assert sim.obs["cell_type"].nunique() == CONFIG.n_cell_types
    assert sim.obs["batch"].nunique() == CONFIG.n_batches
    assert sorted(sim.obs["condition"].unique()) == ["control", "stimulated"]
    pattern = re.compile(r"^(chr\w+):(\d+)-(\d+)$")
    for name in atac.var_names:
        chrom, start, end = pattern.match(name).groups()
        assert int(end) - int(start) == CONFIG.peak_length
    seqs = atac.var["sequence"]
    assert all(len(s) == CONFIG.peak_length and set(s) <= set("ACGT") for s in seqs)
    assert rna.var["tss"].dtype.kind == "i" and rna.var["chrom"].str.startswith("chr").all()
    assert "motif_hits" not in atac.varm  # the platform scans them itself
    # true rates: positive, and counts scatter around them
    rate = np.asarray(rna.layers["true_rate"])
    assert rate.shape == rna.shape and (rate > 0).all()
    ratio = rna.X.toarray().sum(axis=0) / rate.sum(axis=0)
    assert np.all(np.abs(ratio - 1) < 0.25)


def test_peak_to_gene_consistent_with_coordinates(sim):
    p2g = sim.uns["peak_to_gene"]
    assert list(p2g.columns) == ["gene", "peak", "distance"]
    assert p2g["distance"].dtype.kind == "i"
    sorted_p2g = p2g.sort_values(["gene", "distance"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(p2g[["gene", "distance"]], sorted_p2g[["gene", "distance"]])
    per_gene = p2g.groupby("gene").size()
    targets = sim.uns["truth_tf_gene"]["gene"].unique()
    assert set(per_gene.index) == set(targets) and len(targets) == CONFIG.n_target_genes
    assert per_gene.between(*CONFIG.peaks_per_gene).all()
    var = sim["rna"].var
    chrom = p2g["peak"].str.split(":").str[0]
    start = p2g["peak"].str.extract(r":(\d+)-")[0].astype(int)
    summit = start + CONFIG.peak_length // 2
    assert (chrom.to_numpy() == var.loc[p2g["gene"], "chrom"].to_numpy()).all()
    np.testing.assert_array_equal(np.abs(summit - var.loc[p2g["gene"], "tss"].to_numpy()), p2g["distance"])
    assert (p2g["distance"] <= CONFIG.window).all()
    # recomputing the links from coordinates (the contract's fallback) gives the same table
    peaks = pd.DataFrame({"peak": sim["atac"].var_names})
    peaks["chrom"] = peaks["peak"].str.split(":").str[0]
    peaks["summit"] = peaks["peak"].str.extract(r":(\d+)-")[0].astype(int) + CONFIG.peak_length // 2
    links = set()
    for gene, row in var.iterrows():
        near = peaks[(peaks.chrom == row.chrom) & ((peaks.summit - row.tss).abs() <= CONFIG.window)]
        links |= {(gene, p) for p in near["peak"]}
    assert links == set(zip(p2g["gene"], p2g["peak"]))


def test_truth_tables_real_and_well_formed(sim):
    edges = sim.uns["truth_tf_gene"]
    assert list(edges.columns) == ["tf", "gene", "sign", "weight", "cell_types"]
    assert set(edges["sign"]) <= {1, -1} and (edges["weight"] > 0).all()
    assert not edges.duplicated(["tf", "gene"]).any()
    n_reg = edges.groupby("gene").size()
    assert n_reg.between(*CONFIG.regulators_per_gene).all()
    types = set(sim.obs["cell_type"].astype(str))
    for value in edges["cell_types"]:
        assert value == "all" or (set(value.split(";")) <= types and value.split(";"))
    # real biology: TFs have JASPAR motifs, edges and signs come from DoRothEA (A-C)
    tfs = list(sim["rna"].obsm["true_tf_activity"].columns)
    assert len(tfs) == CONFIG.n_tfs and set(tfs) <= set(sim["rna"].var_names)
    assert set(M.load_jaspar_pfms(tfs)) == set(tfs)
    d = dorothea()
    d = d[d["confidence"].isin(["A", "B", "C"])]
    mor = d.groupby(["tf", "target"])["mor"].first()
    for row in edges.itertuples():
        assert mor.get((row.tf, row.gene)) == row.sign, (row.tf, row.gene)
    # signalling hierarchy: real signed PKN edges, ending on TFs that regulate targets
    sig = sim.uns["truth_signalling"]
    assert list(sig.columns) == ["source", "target", "sign", "level"]
    pkn = set(zip(signalling_pkn()["source"], signalling_pkn()["target"], signalling_pkn()["interaction"]))
    for row in sig.itertuples():
        assert (row.source, row.target, row.sign) in pkn
        assert row.source in sim["rna"].var_names and row.target in sim["rna"].var_names
    pathway_tfs = set(sig.loc[sig["level"] == "kinase->tf", "target"])
    assert pathway_tfs and pathway_tfs <= set(edges["tf"])


# ---------------------------------------------------------------------------------------------
# the ground truth is actually in the data
# ---------------------------------------------------------------------------------------------
def test_planted_motifs_found_by_scanner(sim):
    atac = sim["atac"]
    tfs = list(sim["rna"].obsm["true_tf_activity"].columns)
    scan = M.scan_motifs(atac.var["sequence"].to_numpy(), M.load_jaspar_pfms(tfs))
    hits = pd.DataFrame(scan.hits.toarray(), index=atac.var_names, columns=scan.names)
    p2g = sim.uns["peak_to_gene"]
    for row in sim.uns["truth_tf_gene"].itertuples():
        linked = p2g.loc[p2g["gene"] == row.gene, "peak"]
        assert hits.loc[linked, row.tf].any(), (row.tf, row.gene)
    # every planted site (functional or decoy) is detected in its own peak
    planted = sim.uns["truth_peaks"]
    planted = planted[planted["role"] != "background"]
    assert (planted["role"] == "functional").sum() >= len(sim.uns["truth_tf_gene"])
    assert (planted["role"] == "decoy_motif").any()
    assert all(hits.at[p, tf] for p, tf in zip(planted["peak"], planted["tf"]))
    # decoy motifs belong to TFs that do not regulate that gene
    regs = set(zip(sim.uns["truth_tf_gene"]["tf"], sim.uns["truth_tf_gene"]["gene"]))
    decoys = planted[planted["role"] == "decoy_motif"]
    assert not any((tf, g) in regs for tf, g in zip(decoys["tf"], decoys["gene"]))


def _within_type_correlations(m) -> pd.DataFrame:
    """Correlation of TF and target (log of library-normalised true rate) over the cells of
    one cell type and one batch, for each true edge in each type where it acts."""
    rate = np.asarray(m["rna"].layers["true_rate"], dtype=np.float64)
    logn = np.log(rate / rate.sum(axis=1, keepdims=True))
    col = {g: i for i, g in enumerate(m["rna"].var_names)}
    obs = m.obs
    rows = []
    for edge in m.uns["truth_tf_gene"].itertuples():
        types = obs["cell_type"].cat.categories if edge.cell_types == "all" else edge.cell_types.split(";")
        for t in types:
            for b in obs["batch"].cat.categories:
                sel = ((obs["cell_type"] == t) & (obs["batch"] == b)).to_numpy()
                r = np.corrcoef(logn[sel, col[edge.tf]], logn[sel, col[edge.gene]])[0, 1]
                rows.append((edge.tf, edge.gene, edge.sign, edge.weight, r))
    return pd.DataFrame(rows, columns=["tf", "gene", "sign", "weight", "r"])


def test_regulators_correlate_with_targets_within_type(sim):
    c = _within_type_correlations(sim)
    act, rep = c[c["sign"] > 0], c[c["sign"] < 0]
    assert len(act) and len(rep)
    assert (act["r"] > 0).mean() > 0.8 and act["r"].median() > 0.2
    assert (rep["r"] < 0).mean() > 0.8 and rep["r"].median() < -0.2
    strong = c[c["weight"] >= 0.4]
    assert (strong["sign"] * strong["r"]).median() > 0.3


def test_observed_counts_carry_the_signal(sim):
    """On metacell-like pools (sums of 15 cells of one type/batch/condition, ordered by the
    TF's expression) the TF's normalised counts track its targets' with the edge's sign."""
    X = sim["rna"].X.toarray()
    logn = np.log1p(X / X.sum(axis=1, keepdims=True) * 1e4)
    col = {g: i for i, g in enumerate(sim["rna"].var_names)}
    groups = sim.obs.groupby(["cell_type", "batch", "condition"], observed=True).indices
    agree = []
    strong = sim.uns["truth_tf_gene"].query("cell_types == 'all' and weight >= 0.4")
    for edge in strong.itertuples():
        tf_pool, gene_pool = [], []
        for idx in groups.values():
            idx = idx[np.argsort(logn[idx, col[edge.tf]])]
            for chunk in np.array_split(idx, max(1, len(idx) // 15)):
                tf_pool.append(logn[chunk, col[edge.tf]].mean())
                gene_pool.append(logn[chunk, col[edge.gene]].mean())
        agree.append(edge.sign * np.corrcoef(tf_pool, gene_pool)[0, 1])
    assert len(agree) >= 5 and np.median(agree) > 0.3


def test_condition_drives_pathway_not_decoys(sim):
    rate = pd.DataFrame(np.log(np.asarray(sim["rna"].layers["true_rate"])), columns=sim["rna"].var_names)
    # remove library size with genes the condition cannot touch (non-regulating TFs)
    roles = sim.uns["truth_gene_roles"].set_index("gene")["role"]
    rate = rate.sub(rate[roles.index[roles == "tf_decoy"]].mean(axis=1), axis=0)
    stim = (sim.obs["condition"] == "stimulated").to_numpy()
    diff = rate[stim].mean() - rate[~stim].mean()
    sig = sim.uns["truth_signalling"]
    pathway = set(sig["source"]) | set(sig["target"])
    assert (diff[sorted(pathway)] > 0.3).all()
    assert (diff[list(CONFIG.decoy_kinases)].abs() < 0.15).all()
    activity = sim["rna"].obsm["true_signalling_activity"]
    assert (activity.to_numpy()[~stim] == 0).all() and (activity.to_numpy()[stim] > 0).all()


def test_cell_type_programmes_and_batch_shift(sim):
    act = sim["rna"].obsm["true_tf_activity"]
    means = act.groupby(sim.obs["cell_type"].to_numpy()).mean()
    assert (means.max() - means.min() > 0.5).mean() > 0.5  # most TFs differ between types
    libs = pd.Series(np.asarray(sim["rna"].X.sum(axis=1)).ravel())
    by_batch = libs.groupby(sim.obs["batch"].to_numpy()).median()
    assert by_batch.max() / by_batch.min() > 1.2
