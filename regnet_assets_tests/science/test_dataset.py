"""Dataset contract: reading, validation errors that name their field, peak→gene links."""

from __future__ import annotations

import anndata as ad
import h5py
import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from regnet_assets.science.common.obs import obs_column
from regnet_assets.science.dataset.links import modelable_genes, peak_to_gene
from regnet_assets.science.dataset.names import parse_peak_names
from regnet_assets.science.dataset.reading import DatasetError, quiet_mudata, read_multiome
from regnet_assets.science.dataset.validation import validate_multiome

GENES = ["G0", "G1", "G2", "G3"]
# chr1 peaks at midpoints 1100, 2100, 3100, 50_100; chr2 peak at midpoint 1100.
PEAKS = ["chr1:1000-1200", "chr1:2000-2200", "chr1:3000-3200", "chr1:50000-50200", "chr2:1000-1200"]
CELLS = [f"cell{i}" for i in range(6)]


def make_mdata(sparse_rna=True, with_p2g=True, labels_where="rna", sequence=False, motifs=False):
    rng = np.random.default_rng(0)
    rna_x = rng.poisson(3.0, (6, 4)).astype(np.float32)
    atac_x = rng.poisson(1.0, (6, 5)).astype(np.int32)
    obs = pd.DataFrame(index=CELLS)
    labels = ["A", "A", "A", "B", "B", "B"]
    rna = ad.AnnData(
        sp.csr_matrix(rna_x) if sparse_rna else rna_x,
        obs=obs.assign(cell_type=labels) if labels_where == "rna" else obs.copy(),
        var=pd.DataFrame(
            {"chrom": ["chr1", "chr1", "chr2", "chr3"], "tss": [2000, 40_000, 1000, 500]}, index=GENES
        ),
    )
    atac = ad.AnnData(atac_x, obs=obs.copy(), var=pd.DataFrame(index=PEAKS))
    if sequence:
        atac.var["sequence"] = ["ACGT", "acgn", "TTTT", "GGCC", "NNNN"]
    if motifs:
        atac.varm["motif_hits"] = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]]))
        atac.uns["motif_names"] = np.array(["G1", "G2"], dtype=object)
    with quiet_mudata():
        m = mudata.MuData({"rna": rna, "atac": atac})
    if labels_where == "global":
        m.obs["cell_type"] = labels
    if with_p2g:
        m.uns["peak_to_gene"] = pd.DataFrame(
            {
                "gene": ["G0", "G0", "G0", "G1"],
                "peak": ["chr1:3000-3200", "chr1:1000-1200", "chr1:2000-2200", "chr1:50000-50200"],
                "distance": [1100, 900, 100, 10_100],
            }
        )
    return m


def raises(fn, field, *fragments):
    with pytest.raises(DatasetError) as info:
        fn()
    assert info.value.field == field, str(info.value)
    text = str(info.value)
    assert text.startswith(field)
    for frag in fragments:
        assert frag in text, text
    return info.value


# ------------------------------------------------------------------------------------------
# happy paths


@pytest.mark.parametrize("sparse_rna", [True, False])
@pytest.mark.parametrize("labels_where", ["rna", "global"])
def test_valid_dataset_passes(sparse_rna, labels_where):
    m = make_mdata(sparse_rna=sparse_rna, labels_where=labels_where, sequence=True, motifs=True)
    validate_multiome(m)


def test_groupby_found_as_prefixed_global_column_after_update():
    m = make_mdata()
    with quiet_mudata():
        m.update()
    assert "rna:cell_type" in m.obs.columns and "cell_type" not in m.obs.columns
    del m.mod["rna"].obs["cell_type"]  # only the prefixed global copy is left
    col = obs_column(m, "cell_type")
    assert col.name == "cell_type"
    assert list(col.reindex(CELLS)) == ["A", "A", "A", "B", "B", "B"]
    validate_multiome(m)


def test_obs_column_prefers_global_then_rna_and_aligns_to_obs_names():
    m = make_mdata()
    m.mod["atac"].obs["cell_type"] = list("XXXXXX")
    assert list(obs_column(m, "cell_type")) == list("AAABBB")  # rna before atac
    m.obs["cell_type"] = list("ZZZZZZ")
    assert list(obs_column(m, "cell_type")) == list("ZZZZZZ")  # global wins
    assert obs_column(m, "nope") is None


def test_read_multiome_round_trip(tmp_path):
    m = make_mdata(sequence=True, motifs=True)
    path = tmp_path / "d.h5mu"
    m.write(path)
    back = read_multiome(path)
    validate_multiome(back)
    pd.testing.assert_frame_equal(peak_to_gene(back), peak_to_gene(m))


# ------------------------------------------------------------------------------------------
# reading errors


def test_read_missing_file(tmp_path):
    raises(lambda: read_multiome(tmp_path / "absent.h5mu"), "path", "no file at")


def test_read_not_hdf5(tmp_path):
    path = tmp_path / "text.h5mu"
    path.write_text("gene,count\n")
    raises(lambda: read_multiome(path), "path", "HDF5")


def test_read_hdf5_without_mod_group(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("numbers", data=np.arange(3))
    raises(lambda: read_multiome(path), "mod", "'mod' group", "numbers")


def test_read_anndata_file_gets_a_hint(tmp_path):
    path = tmp_path / "one.h5ad"
    ad.AnnData(np.ones((2, 2), dtype=np.float32)).write_h5ad(path)
    raises(lambda: read_multiome(path), "mod", "AnnData")


@pytest.mark.filterwarnings("ignore:The HDF5 file was not created")
def test_read_broken_mudata(tmp_path):
    path = tmp_path / "broken.h5mu"
    with h5py.File(path, "w") as f:
        f.create_group("mod").create_dataset("rna", data=np.arange(3))
    raises(lambda: read_multiome(path), "path", "mudata can read")


# ------------------------------------------------------------------------------------------
# validation errors


def test_error_message_names_field_expected_and_found():
    err = DatasetError("mod['rna'].X", expected="non-negative counts", found="2 negative values")
    assert str(err) == "mod['rna'].X: expected non-negative counts; found 2 negative values"
    assert isinstance(err, ValueError) and err.field == "mod['rna'].X"


def test_missing_modality():
    m = make_mdata()
    with quiet_mudata():
        m = mudata.MuData({"rna": m.mod["rna"]})
    raises(lambda: validate_multiome(m), "mod['atac']", "modalities ['rna']")


def test_cells_not_shared():
    m = make_mdata()
    m.mod["atac"].obs_names = CELLS[:4] + ["x1", "x2"]
    raises(
        lambda: validate_multiome(m),
        "mod['rna'].obs_names / mod['atac'].obs_names",
        "2 cells only in rna, 2 only in atac",
    )


def test_empty_modality():
    m = make_mdata()
    with quiet_mudata():
        m = mudata.MuData({"rna": m.mod["rna"], "atac": m.mod["atac"][:, []].copy()})
    raises(lambda: validate_multiome(m), "mod['atac']", "at least one cell")


@pytest.mark.parametrize("sparse_rna", [True, False])
@pytest.mark.parametrize(
    "value, fragment",
    [(-1.0, "negative"), (np.nan, "NaN/inf"), (np.inf, "NaN/inf"), (0.5, "non-integer")],
)
def test_bad_counts(sparse_rna, value, fragment):
    m = make_mdata(sparse_rna=sparse_rna)
    x = m.mod["rna"].X.toarray() if sparse_rna else m.mod["rna"].X.copy()
    x[2, 1] = x[2, 1] + 0.5 if value == 0.5 else value
    m.mod["rna"].X = sp.csr_matrix(x) if sparse_rna else x
    raises(lambda: validate_multiome(m), "mod['rna'].X", fragment)


def test_non_numeric_counts():
    m = make_mdata()
    m.mod["atac"].X = m.mod["atac"].X.astype(bool)
    raises(lambda: validate_multiome(m), "mod['atac'].X", "numeric")


@pytest.mark.parametrize(
    "mod, names, fragment",
    [
        ("rna", ["G0", "G1", "G1", "G3"], "unique"),
        ("rna", ["G0", "", "G2", "G3"], "empty"),
        ("rna", ["G0", "G1", "a/b", "G3"], "'a/b'"),
        ("rna", ["G0", "G1", "..", "G3"], "'..'"),
        ("rna", ["G0", "G1", "G2 ", "G3"], "whitespace"),
        ("atac", PEAKS[:4] + ["chr2:1000-1200\x00"], "control"),
        ("atac", PEAKS[:4] + ["chr2:1000-1200\n"], "control"),
    ],
)
def test_bad_names(mod, names, fragment):
    m = make_mdata(with_p2g=False)
    m.mod[mod].var_names = names
    raises(lambda: validate_multiome(m), f"mod['{mod}'].var_names", fragment)


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("chr1:100_200", "first 'chr1:100_200'"),
        ("chr1 100 200", "first 'chr1 100 200'"),
        ("chr1:300-200", "start < end"),
        ("chr1:1e3-2e3", "first 'chr1:1e3-2e3'"),
    ],
)
def test_unparseable_peak_names(bad, fragment):
    m = make_mdata(with_p2g=False)
    m.mod["atac"].var_names = PEAKS[:3] + [bad, "chrX:1-2"]
    raises(lambda: validate_multiome(m), "mod['atac'].var_names", fragment)


@pytest.mark.parametrize(
    "edit, field, fragment",
    [
        (lambda t: t.drop(columns="distance"), "uns['peak_to_gene']", "missing ['distance']"),
        (lambda t: t.assign(gene=["G0", "G0", "G0", "NOPE"]), "uns['peak_to_gene'].gene", "'NOPE'"),
        (
            lambda t: t.assign(peak=t.peak.str.replace("50000", "7")),
            "uns['peak_to_gene'].peak",
            "'chr1:7-50200'",
        ),
        (lambda t: t.assign(distance=[1, np.inf, 3, 4]), "uns['peak_to_gene'].distance", "inf"),
        (lambda t: t.assign(distance=[1, np.nan, 3, 4]), "uns['peak_to_gene'].distance", "1 bad"),
        (lambda t: t.assign(distance=["1", "a", "3", "4"]), "uns['peak_to_gene'].distance", "numeric"),
    ],
)
def test_bad_peak_to_gene(edit, field, fragment):
    m = make_mdata()
    m.uns["peak_to_gene"] = edit(m.uns["peak_to_gene"])
    raises(lambda: validate_multiome(m), field, fragment)


def test_no_gene_with_enough_peaks():
    m = make_mdata()
    validate_multiome(m, min_peaks=3)
    raises(lambda: validate_multiome(m, min_peaks=4), "uns['peak_to_gene']", ">= 4 linked peaks", "at most 3")


def test_missing_groupby_column():
    m = make_mdata()
    raises(lambda: validate_multiome(m, groupby="celltype"), "obs['celltype']", "cell_type")


def test_groupby_with_missing_labels():
    m = make_mdata()
    m.mod["rna"].obs.loc["cell2", "cell_type"] = np.nan
    raises(lambda: validate_multiome(m), "obs['cell_type']", "1 cells without a label")


@pytest.mark.parametrize(
    "seqs, fragment",
    [
        (["ACGT", "ACG", "TTTT", "GGCC", "NNNN"], "lengths from 3 to 4"),
        (["ACGT", "ACGU", "TTTT", "GGCC", "NNNN"], "'chr1:2000-2200' has 'U'"),
        (["ACGT", None, "TTTT", "GGCC", "NNNN"], "1 missing"),
    ],
)
def test_bad_sequences(seqs, fragment):
    m = make_mdata(sequence=True)
    m.mod["atac"].var["sequence"] = seqs
    raises(lambda: validate_multiome(m), "mod['atac'].var['sequence']", fragment)


def test_bad_motif_hits():
    m = make_mdata(motifs=True)
    m.mod["atac"].uns["motif_names"] = np.array(["G1", "G2", "G3"], dtype=object)
    raises(lambda: validate_multiome(m), "mod['atac'].varm['motif_hits']", "shape (5 peaks, 3")
    m = make_mdata(motifs=True)
    del m.mod["atac"].uns["motif_names"]
    raises(lambda: validate_multiome(m), "mod['atac'].uns['motif_names']", "without names")
    m = make_mdata(motifs=True)
    m.mod["atac"].varm["motif_hits"] = np.array([[2, 0], [0, 1], [1, 1], [0, 0], [1, 0]])
    raises(lambda: validate_multiome(m), "mod['atac'].varm['motif_hits']", "binary")


# ------------------------------------------------------------------------------------------
# peak -> gene


def test_peak_to_gene_from_uns_is_sorted_and_typed():
    m = make_mdata()
    m.uns["peak_to_gene"] = pd.concat(
        [m.uns["peak_to_gene"], pd.DataFrame({"gene": ["G0"], "peak": ["chr1:2000-2200"], "distance": [5]})]
    )
    table = peak_to_gene(m)
    assert list(table.columns) == ["gene", "peak", "distance"]
    assert table["distance"].dtype == np.float64
    # duplicate pair keeps its shortest distance; sorted by gene then distance
    assert table.values.tolist() == [
        ["G0", "chr1:2000-2200", 5.0],
        ["G0", "chr1:1000-1200", 900.0],
        ["G0", "chr1:3000-3200", 1100.0],
        ["G1", "chr1:50000-50200", 10100.0],
    ]


@pytest.mark.parametrize("spelling", ["{c}:{s}-{e}", "{c}-{s}-{e}", "{c}_{s}_{e}"])
def test_peak_name_spellings_of_other_tools_load(spelling):
    """Cell Ranger ARC, Signac and ArchR spell peaks differently; each is parsed to the same
    coordinates and keeps its own spelling as the peak's name."""
    m = make_mdata(with_p2g=False)
    names = [spelling.format(c=c, s=s, e=e) for c, s, e in (p.replace(":", "-").split("-") for p in PEAKS)]
    m.mod["atac"].var_names = names
    validate_multiome(m)
    coords = parse_peak_names(names)
    assert coords.index.tolist() == names
    assert (
        coords["chrom"] + ":" + coords["start"].astype(str) + "-" + coords["end"].astype(str)
    ).tolist() == PEAKS
    derived = peak_to_gene(m, window=10_000)
    assert set(derived["peak"]) <= set(names)


def test_signed_distances_and_other_peak_spellings_in_links_are_accepted():
    """A table from another tool: signed distances (negative upstream) and ``chr1-1000-1200``
    peaks against ``chr1:1000-1200`` var_names. The sign is kept, the order is by |d|, and a
    duplicate pair keeps its shortest |d|."""
    m = make_mdata()
    m.uns["peak_to_gene"] = pd.DataFrame(
        {
            "gene": ["G0", "G0", "G0", "G1", "G0"],
            "peak": [
                "chr1-3000-3200",
                "chr1:1000-1200",
                "chr1_2000_2200",
                "chr1:50000-50200",
                "chr1:2000-2200",
            ],
            "distance": [1100, -900, -100, 10_100, 300],
        }
    )
    table = peak_to_gene(m)
    assert table.values.tolist() == [
        ["G0", "chr1:2000-2200", -100.0],
        ["G0", "chr1:1000-1200", -900.0],
        ["G0", "chr1:3000-3200", 1100.0],
        ["G1", "chr1:50000-50200", 10100.0],
    ]


def test_peak_to_gene_derived_from_tss_window():
    m = make_mdata(with_p2g=False)
    # G0 tss chr1:2000 → midpoints 1100 (900), 2100 (100), 3100 (1100); 50100 is 48100 away.
    # G1 tss chr1:40000 → only 50100 (10100) within 10 kb... and not 3100 (36900).
    # G2 tss chr2:1000 → chr2 peak midpoint 1100 (100). G3 on chr3: no peaks.
    table = peak_to_gene(m, window=10_100)
    assert table.values.tolist() == [
        ["G0", "chr1:2000-2200", 100.0],
        ["G0", "chr1:1000-1200", 900.0],
        ["G0", "chr1:3000-3200", 1100.0],
        ["G1", "chr1:50000-50200", 10100.0],
        ["G2", "chr2:1000-1200", 100.0],
    ]
    # window is inclusive at the edge, exclusive beyond it
    assert "G1" not in set(peak_to_gene(m, window=10_099)["gene"])
    assert modelable_genes(table, min_peaks=1, gene_order=GENES) == ["G0", "G1", "G2"]
    validate_multiome(m, window=10_100)


def test_peak_to_gene_needs_a_source():
    m = make_mdata(with_p2g=False)
    m.mod["rna"].var = m.mod["rna"].var.drop(columns="tss")
    err = raises(lambda: peak_to_gene(m), "uns['peak_to_gene'] or mod['rna'].var[['chrom','tss']]")
    assert "neither" in err.message


def test_modelable_genes_threshold_and_order():
    table = pd.DataFrame(
        {
            "gene": ["B", "B", "A", "A", "A", "C", "C", "C"],
            "peak": ["p1", "p2", "p1", "p2", "p3", "p1", "p2", "p3"],
            "distance": 0.0,
        }
    )
    assert modelable_genes(table, min_peaks=3) == ["A", "C"]
    assert modelable_genes(table, min_peaks=3, gene_order=["C", "B", "A"]) == ["C", "A"]
    assert modelable_genes(table, min_peaks=2, gene_order=["C", "B", "A"]) == ["C", "B", "A"]


def test_parse_peak_names():
    df = parse_peak_names(["chr1:10-20", "chrUn_KI270742v1:0-5"])
    assert df.values.tolist() == [["chr1", 10, 20], ["chrUn_KI270742v1", 0, 5]]
    assert list(df.index) == ["chr1:10-20", "chrUn_KI270742v1:0-5"]
