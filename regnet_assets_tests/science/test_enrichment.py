"""Offline gseapy enrichment of programs: no network, background respected, known set ranks first."""

import socket

import numpy as np
import pandas as pd
import pytest
import requests
from scipy.stats import false_discovery_control, hypergeom

from regnet_assets.science.common.figures import png_bytes
from regnet_assets.science.dataset.reference_data import go_bp_gene_sets
from regnet_assets.science.reports.enrichment import GSEAPY_COLUMNS, enrich_programs, plot_top_terms


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to reach the network fails the test loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(requests.Session, "request", refuse)


TOY_SETS = {
    "setA": ["G1", "G2", "G3", "G4", "G5"],
    "setB": ["G4", "G5", "G6", "G7", "G8", "G9"],
    "setC": ["G10", "G11", "C1orf112"],
    "setD": ["X1", "X2"],  # nothing in the background: never testable
}


def test_known_go_set_ranks_first_offline():
    gene_sets = go_bp_gene_sets()
    term = "ribosomal large subunit assembly (GO:0000027)"
    genes = gene_sets[term]
    background = sorted({g for v in gene_sets.values() for g in v})
    res = enrich_programs(pd.DataFrame({"program": "ribo", "gene": genes}), background)
    assert list(res.columns[1 : 1 + len(GSEAPY_COLUMNS)]) == GSEAPY_COLUMNS
    assert res.iloc[0]["Term"] == term and res.iloc[0]["Overlap"] == f"{len(genes)}/{len(genes)}"
    assert res.iloc[0]["P-value"] == pytest.approx(
        hypergeom.sf(len(genes) - 1, len(background), len(genes), len(genes))
    )
    assert (res["Gene_set"] == "GO_BP").all() and (res["program"] == "ribo").all()


def test_background_is_respected():
    background = [f"G{i}" for i in range(1, 11)] + ["C1orf112"] + [f"B{i}" for i in range(20)]  # no G11, X*
    programs = pd.DataFrame({"program": ["p"] * 5, "gene": ["G1", "G2", "G4", "G11", "X1"]})
    res = enrich_programs(programs, background, TOY_SETS, gene_set_name="toy").set_index("Term")
    row = res.iloc[0]
    assert row["n_genes"] == 5 and row["n_in_background"] == 3  # G11 and X1 are outside the background
    assert row["background_size"] == len(background) and row["n_terms_tested"] == 3  # setD untestable
    assert set(res.index) == {"setA", "setB"}  # setC's only query hit (G11) is outside the background
    # hand-computed: bg = 31, k = 3; setA m = 5, x = 3; setB m = 6, x = 1
    assert res.loc["setA", "Overlap"] == "3/5" and res.loc["setB", "Overlap"] == "1/6"
    assert res.loc["setA", "P-value"] == pytest.approx(hypergeom.sf(2, 31, 5, 3))
    assert res.loc["setB", "P-value"] == pytest.approx(hypergeom.sf(0, 31, 6, 3))
    assert set(res.loc["setA", "Genes"].split(";")) == {"G1", "G2", "G4"}
    # gseapy's BH is over the 2 hit terms; padj_all_terms over all 3 testable terms
    p = res.loc[["setA", "setB"], "P-value"].to_numpy()
    np.testing.assert_allclose(res.loc[["setA", "setB"], "Adjusted P-value"], false_discovery_control(p))
    np.testing.assert_allclose(
        res.loc[["setA", "setB"], "padj_all_terms"], false_discovery_control(np.r_[p, 1.0])[:2]
    )
    assert (res["Gene_set"] == "toy").all()


def test_small_programs_skipped_with_reason_and_case_insensitive():
    background = [f"G{i}" for i in range(1, 12)] + ["C1orf112"]
    programs = pd.DataFrame(
        {
            "program": ["tiny", "tiny", "mixed", "mixed", "mixed"],
            "gene": ["G1", "nope", "g10", "G11", "c1ORF112"],
        }
    )
    res = enrich_programs(programs, background, TOY_SETS)
    tiny = res[res["program"] == "tiny"]
    assert len(tiny) == 1 and tiny["Term"].isna().all() and "min_genes" in tiny["note"].iloc[0]
    mixed = res[res["program"] == "mixed"].set_index("Term")
    assert mixed.loc["setC", "Overlap"] == "3/3"
    assert set(mixed.loc["setC", "Genes"].split(";")) == {"G10", "G11", "C1orf112"}  # background spelling
    cut = enrich_programs(programs, background, TOY_SETS, cutoff=1e-12)
    assert cut["Term"].isna().all() and cut["note"].str.len().gt(0).all()


def test_guard_catches_gseapy_online_mode():
    """The no_network fixture really blocks gseapy, so the offline tests above prove something."""
    import gseapy

    with pytest.raises(AssertionError, match="network"):
        gseapy.enrichr(gene_list=["FOS", "JUN", "EGR1"], gene_sets="GO_Biological_Process_2025", outdir=None)


def test_refuses_inputs_that_would_go_online():
    programs = pd.DataFrame({"program": "p", "gene": ["G1", "G2", "G3"]})
    with pytest.raises(ValueError, match="gene_sets"):
        enrich_programs(programs, ["G1", "G2", "G3"], "GO_Biological_Process_2025")
    with pytest.raises(ValueError, match="background"):
        enrich_programs(programs, "hsapiens_gene_ensembl", TOY_SETS)


def test_gmt_path_is_read_locally(tmp_path):
    gmt = tmp_path / "toy.gmt"
    gmt.write_text("".join(f"{k}\tdesc\t" + "\t".join(v) + "\n" for k, v in TOY_SETS.items()))
    programs = pd.DataFrame({"program": "p", "gene": ["G1", "G2", "G3"]})
    res = enrich_programs(programs, [f"G{i}" for i in range(1, 12)], str(gmt))
    assert res.iloc[0]["Term"] == "setA"


def test_plot_top_terms_diverging_and_single_group():
    background = [f"G{i}" for i in range(1, 12)] + ["C1orf112"] + [f"B{i}" for i in range(30)]
    programs = pd.DataFrame(
        {"program": ["left"] * 3 + ["right"] * 3, "gene": ["G1", "G2", "G3", "G6", "G7", "G8"]}
    )
    res = enrich_programs(programs, background, TOY_SETS)
    fig = plot_top_terms(res, top_n=2)
    widths = [p.get_width() for p in fig.axes[0].patches]
    assert min(widths) < 0 < max(widths)  # first group drawn to the left
    assert png_bytes(fig)[:4] == b"\x89PNG"
    one = plot_top_terms(res[res["program"] == "right"])
    assert all(p.get_width() > 0 for p in one.axes[0].patches)
    empty = plot_top_terms(res.iloc[0:0])
    assert png_bytes(empty)[:4] == b"\x89PNG"
