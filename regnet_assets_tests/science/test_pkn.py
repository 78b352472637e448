"""Prior-knowledge network: reading, validation, reachability pruning, builders (incl. real data)."""

import gzip

import pandas as pd
import pytest

from regnet_assets.science.network.pkn import (
    GENE_SUFFIX,
    PKNError,
    human_kpnn,
    input_nodes,
    is_acyclic,
    kpnn_from_layers,
    reachability_prune,
    read_pkn,
    validate_pkn,
)


def _edges(rows):
    return pd.DataFrame(rows, columns=["source", "target", "sign"])


# ---------------------------------------------------------------- reading


def test_read_tsv_with_sign(tmp_path):
    p = tmp_path / "pkn.tsv"
    p.write_text("source\ttarget\tsign\nA\tB\t1\nB\tC\t-1\n")
    df = read_pkn(p)
    assert list(df.columns) == ["source", "target", "sign"]
    assert df.values.tolist() == [["A", "B", 1], ["B", "C", -1]]


def test_read_csv_interaction_and_gz(tmp_path):
    p = tmp_path / "pkn.csv.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("source,interaction,target\nEGFR,1,GRB2\nPTEN,-1,AKT1\n")
    df = read_pkn(p)
    assert df.values.tolist() == [["EGFR", "GRB2", 1], ["PTEN", "AKT1", -1]]


def test_read_sif(tmp_path):
    p = tmp_path / "net.sif"
    p.write_text("A 1 B\nB\t-1\tC\nC + D\n")
    df = read_pkn(p)
    assert df.values.tolist() == [["A", "B", 1], ["B", "C", -1], ["C", "D", 1]]


def test_read_kpnn_parent_child_is_reversed(tmp_path):
    p = tmp_path / "TCR_Edgelist.csv"
    p.write_text("parent,child\nTCR,ZAP70\nZAP70,MAPK14\nMAPK14,FOXO3_gene\n")
    df = read_pkn(p)
    # computation direction: child -> parent
    assert df[["source", "target"]].values.tolist() == [
        ["ZAP70", "TCR"],
        ["MAPK14", "ZAP70"],
        ["FOXO3_gene", "MAPK14"],
    ]
    assert (df["sign"] == 1).all()


def test_read_errors(tmp_path):
    bad_cols = tmp_path / "a.tsv"
    bad_cols.write_text("from\tto\nA\tB\n")
    with pytest.raises(PKNError, match="columns") as err:
        read_pkn(bad_cols)
    assert err.value.field == "columns"

    wrong_sep = tmp_path / "b.csv"
    wrong_sep.write_text("source\ttarget\tsign\nA\tB\t1\n")
    with pytest.raises(PKNError, match="separator"):
        read_pkn(wrong_sep)

    bad_sign = tmp_path / "c.tsv"
    bad_sign.write_text("source\ttarget\tsign\nA\tB\t2\nB\tC\tx\nC\tD\t1\n")
    with pytest.raises(PKNError, match=r"sign.*\+1 or -1.*2 row") as err:
        read_pkn(bad_sign)
    assert isinstance(err.value, ValueError)

    sif3 = tmp_path / "d.sif"
    sif3.write_text("A B\n")
    with pytest.raises(PKNError, match="3 columns"):
        read_pkn(sif3)
    with pytest.raises(PKNError, match="format"):
        read_pkn(bad_sign, fmt="xlsx")


# ---------------------------------------------------------------- validation


def test_validate_reports_and_errors():
    e = _edges([("g1", "A", 1), ("g1", "A", 1), ("g2", "A", -1), ("A", "R", 1), ("g3", "X", 1)])
    clean, rep = validate_pkn(e, "R", ["g1", "g2", "g3"])
    assert rep["duplicates_dropped"] == 1 and len(clean) == 4
    assert rep["inputs_not_reaching_root"] == 1 and rep["inputs_not_reaching_root_examples"] == ["g3"]
    assert rep["acyclic"]

    with pytest.raises(PKNError, match="root 'NOPE'") as err:
        validate_pkn(e, "NOPE", ["g1"])
    assert err.value.field == "root"
    with pytest.raises(PKNError, match="2 of 3 input"):
        validate_pkn(e, "R", ["g1", "zz1", "zz2"])
    _, rep = validate_pkn(e, "R", ["g1", "zz1", "zz2"], allow_missing_inputs=True)
    assert rep["inputs_absent"] == 2 and rep["inputs_absent_examples"] == ["zz1", "zz2"]
    with pytest.raises(PKNError, match="none of the 1 input"):
        validate_pkn(e, "R", ["g3"])
    with pytest.raises(PKNError, match="self-loop"):
        validate_pkn(_edges([("g1", "A", 1), ("A", "A", 1), ("A", "R", 1)]), "R", ["g1"])
    with pytest.raises(PKNError, match="both signs"):
        validate_pkn(_edges([("g1", "A", 1), ("g1", "A", -1), ("A", "R", 1)]), "R", ["g1"])
    with pytest.raises(PKNError, match="sign"):
        validate_pkn(_edges([("g1", "A", 3), ("A", "R", 1)]), "R", ["g1"])


def test_reachability_prune_keeps_only_input_to_root_paths():
    e = _edges(
        [
            ("g1", "A", 1),
            ("A", "R", 1),  # on a path
            ("g1", "D", 1),  # dead end: D does not reach R
            ("Z", "A", 1),  # Z not reachable from an input
            ("R", "A", 1),  # leaves the root
            ("g2", "B", 1),
            ("B", "A", 1),
        ]
    )
    out = reachability_prune(e, ["g1", "g2"], "R")
    assert sorted(map(tuple, out[["source", "target"]].values)) == [
        ("A", "R"),
        ("B", "A"),
        ("g1", "A"),
        ("g2", "B"),
    ]


def test_is_acyclic():
    assert is_acyclic(_edges([("a", "b", 1), ("b", "c", 1)]))
    assert not is_acyclic(_edges([("a", "b", 1), ("b", "c", 1), ("c", "a", 1)]))


# ---------------------------------------------------------------- builders


def test_kpnn_from_layers_shape_and_direction():
    sig = pd.DataFrame(
        {
            "source": ["TCR", "ZAP70", "ZAP70", "LCK", "X"],
            "target": ["ZAP70", "NFKB1", "LCK", "ZAP70", "NFKB1"],
            "interaction": [1, 1, 1, -1, 1],
        }
    )
    reg = pd.DataFrame(
        {"tf": ["NFKB1", "NFKB1", "STAT9"], "target": ["IL2", "NFKB1", "FOO"], "mor": [1, -1, 1]}
    )
    cyclic = kpnn_from_layers("TCR", sig, reg, acyclic=False)
    pairs = set(map(tuple, cyclic[["source", "target"]].values))
    assert ("IL2_gene", "NFKB1") in pairs and ("NFKB1_gene", "NFKB1") in pairs  # TF gene != TF node
    assert ("ZAP70", "TCR") in pairs and ("NFKB1", "ZAP70") in pairs
    assert ("LCK", "ZAP70") in pairs and ("ZAP70", "LCK") in pairs  # the LCK/ZAP70 loop
    assert "FOO_gene" not in set(cyclic["source"])  # STAT9 does not reach the root
    assert "X" not in set(cyclic["target"])  # X is upstream-only: not on a gene -> root path
    assert not is_acyclic(cyclic)
    dag = kpnn_from_layers("TCR", sig, reg, acyclic=True)
    assert is_acyclic(dag)
    # ZAP70 -> LCK goes away from the root (d 1 -> 2) and is dropped; LCK then feeds from no gene
    assert "LCK" not in set(dag["source"]) | set(dag["target"])
    assert sorted(input_nodes(dag)) == ["IL2_gene", "NFKB1_gene"]
    assert dag.loc[dag["source"] == "NFKB1_gene", "sign"].item() == -1


@pytest.fixture(scope="module")
def human():
    return human_kpnn()


def test_human_kpnn_real_network(human):
    from regnet_assets.science.network.pruning import inputs_reach_root

    nodes = set(human["source"]) | set(human["target"])
    inputs = input_nodes(human)
    assert len(nodes) > 3000 and len(human) > 8000
    assert all(i.endswith(GENE_SUFFIX) for i in inputs)
    # CD3D/CD3G are not in the PKN; CD247 has no downstream path to a TF so it is pruned
    assert set(human.loc[human["target"] == "TCR", "source"]) == {"CD3E", "LCK", "ZAP70"}
    assert not (human["source"] == "TCR").any()
    assert is_acyclic(human)
    assert inputs_reach_root(human, inputs, "TCR")
    assert set(human["sign"].unique()) <= {-1, 1}
    # every TF node between genes and signalling comes from DoRothEA
    from regnet_assets.science.dataset.reference_data import dorothea

    tf_targets = set(human.loc[human["source"].str.endswith(GENE_SUFFIX), "target"])
    assert tf_targets <= set(dorothea()["tf"])


def test_human_kpnn_errors():
    with pytest.raises(PKNError, match="confidence"):
        human_kpnn(confidence="XYZ")
    with pytest.raises(PKNError, match="receptor_components"):
        human_kpnn(root="MYROOT", receptor_components=["NOT_A_GENE"])
