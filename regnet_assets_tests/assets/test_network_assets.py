"""The ``network`` group end to end on the small simulated dataset (PKN -> minimal DAG -> KPNN on
both), the simulator's truth recovered by node importance, and bad networks failing cleanly."""

from __future__ import annotations

import shutil

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from regnet_assets.science.dataset.reading import read_multiome
from regnet_assets.science.network.pkn import is_acyclic
from regnet_assets.storage import read_table, write_table
from regnet_assets_tests.assets.test_dataset_assets import DATASET_GROUP
from regnet_assets_tests.conftest import materialize, tree_digest

KPNN_TABLES = [
    "kpnn_metrics",
    "kpnn_summary",
    "kpnn_node_importance",
    "kpnn_history",
    "kpnn_activations",
    "kpnn_predictions",
]
NETWORK_GROUP = ["pkn_edges", "pruned_dag_edges", "pruning_summary", *KPNN_TABLES]
COLUMNS = {
    "pkn_edges": {"source", "target", "sign", "origin"},
    "pruned_dag_edges": {"source", "target", "sign", "origin"},
    "pruning_summary": {
        "method",
        "status",
        "root",
        "nodes_before",
        "edges_before",
        "nodes_after",
        "edges_after",
        "edge_compression_pct",
        "parameter_compression_pct",
        "objective",
        "best_bound",
        "mip_gap",
        "solve_seconds",
        "build_seconds",
    },
    "kpnn_metrics": {"network", "fold", "accuracy", "precision", "recall", "f1", "roc_auc", "n_params"},
    "kpnn_summary": {
        "network",
        "n_params",
        "roc_auc",
        "parameter_compression_pct",
        "roc_auc_change_pct",
        "pathway_vs_decoy_auc",
        "pathway_vs_decoy_auc_uncorrected",
        "control_networks",
        "control_roc_auc",
    },
    "kpnn_node_importance": {
        "network",
        "fold",
        "scope",
        "node",
        "role",
        "bias",
        "node_weight",
        "node_weight_abs",
        "node_weight_kpnn",
        "node_weight_scaled",
        "control_weight_scaled",
        "node_weight_corrected",
        "rank",
    },
    "kpnn_history": {"network", "fold", "epoch", "train_loss", "valid_loss", "valid_auc"},
    "kpnn_activations": {"network", "fold", "cell", "node", "activation"},
    "kpnn_predictions": {"network", "fold", "cell", "y_true", "y_prob"},
}


@pytest.fixture(scope="module")
def shared_instance():
    """One throw-away instance for the module (each one costs ~2 s to set up)."""
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture(scope="module")
def run(tmp_path_factory, shared_instance):
    """Dataset + network groups materialized once on the small simulated default."""
    storage = tmp_path_factory.mktemp("storage")
    result = materialize(DATASET_GROUP + NETWORK_GROUP, storage, shared_instance)
    assert result.success, [e.event_specific_data.error.to_string() for e in result.get_step_failure_events()]
    metadata = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    return storage, metadata, result.get_asset_check_evaluations()


def test_both_kpnns_beat_chance_and_the_pruned_one_is_smaller(run):
    storage, _, _ = run
    metrics = read_table(storage, "kpnn_metrics")
    summary = read_table(storage, "kpnn_summary").set_index("network")
    assert sorted(metrics["network"].unique()) == ["full", "pruned"]
    assert (metrics.groupby("network")["fold"].nunique() == 5).all()
    for net in ("full", "pruned"):
        held_out = metrics.loc[metrics["network"] == net, "roc_auc"]
        assert held_out.mean() > 0.6, (net, held_out.tolist())
        assert summary.loc[net, "roc_auc"] == pytest.approx(held_out.mean())
    full, pruned = summary.loc["full"], summary.loc["pruned"]
    assert pruned["n_params"] < full["n_params"]
    assert pruned["parameter_compression_pct"] == pytest.approx(
        100 * (1 - pruned["n_params"] / full["n_params"])
    )
    assert pruned["roc_auc_change_pct"] == pytest.approx(100 * (pruned["roc_auc"] / full["roc_auc"] - 1))
    assert full["parameter_compression_pct"] == 0 and full["roc_auc_change_pct"] == 0


def test_tables_are_non_empty_with_their_columns(run):
    storage, _, _ = run
    for table, columns in COLUMNS.items():
        frame = read_table(storage, table)
        assert len(frame), table
        assert columns <= set(frame.columns), (table, columns - set(frame.columns))


def test_networks_and_pruning_summary_are_consistent(run):
    storage, _, checks = run
    pkn, dag = read_table(storage, "pkn_edges"), read_table(storage, "pruned_dag_edges")
    (s,) = read_table(storage, "pruning_summary").to_dict("records")
    # the PKN: one root (the simulator's receptor), gene inputs only, a DAG, decoys wired in
    assert s["root"] == "TGFBR2" and set(pkn["target"]) - set(pkn["source"]) == {"TGFBR2"}
    assert all(n.endswith("_gene") for n in set(pkn["source"]) - set(pkn["target"]))
    assert is_acyclic(pkn) and is_acyclic(dag)
    assert {"truth_signalling", "decoy_control", "gene_tf_candidates"} <= set(pkn["origin"])
    # the minimal DAG is a sub-network that keeps every input
    pairs = set(zip(pkn["source"], pkn["target"]))
    assert set(zip(dag["source"], dag["target"])) <= pairs
    assert set(pkn["source"]) - set(pkn["target"]) == set(dag["source"]) - set(dag["target"])
    assert s["status"] == "optimal"
    assert s["edges_after"] <= s["edges_before"] == len(pkn) and s["edges_after"] == len(dag)
    assert s["nodes_after"] <= s["nodes_before"]
    assert s["best_bound"] == s["objective"] == s["edges_after"] and s["mip_gap"] == 0
    assert s["edge_compression_pct"] == pytest.approx(100 * (1 - len(dag) / len(pkn)))
    params = read_table(storage, "kpnn_summary").set_index("network")["n_params"]
    assert (s["params_before"], s["params_after"]) == (params["full"], params["pruned"])
    (check,) = [c for c in checks if c.check_name == "pruning_is_optimal"]
    assert check.passed


def test_activations_predictions_and_history_cover_the_held_out_cells(run):
    storage, _, _ = run
    pkn, dag = read_table(storage, "pkn_edges"), read_table(storage, "pruned_dag_edges")
    act, pred = read_table(storage, "kpnn_activations"), read_table(storage, "kpnn_predictions")
    hist = read_table(storage, "kpnn_history")
    for net, edges in (("full", pkn), ("pruned", dag)):
        hidden = set(edges["target"]) - {"TGFBR2"}
        a, p = act[act["network"] == net], pred[pred["network"] == net]
        assert set(a["node"]) == hidden
        assert p["cell"].is_unique and len(p) == 600  # each cell held out exactly once
        assert len(a) == len(p) * len(hidden) and a["activation"].between(0, 1).all()
        assert p["y_prob"].between(0, 1).all()
        assert set(hist.loc[hist["network"] == net, "fold"]) == set(range(5))


def test_plots_are_attached(run):
    storage, metadata, _ = run
    assert "kpnn_metrics_plot" in metadata["kpnn_summary"]
    assert "kpnn_node_importance_plot" in metadata["kpnn_node_importance"]
    assert (storage / "figures" / "kpnn_metrics.png").stat().st_size > 1000
    assert (storage / "figures" / "kpnn_node_importance.png").stat().st_size > 1000
    assert "edges_by_origin" in metadata["pkn_edges"] and metadata["pruning_summary"]["optimal"].value is True


def test_true_signalling_nodes_rank_above_decoy_kinases(run):
    storage, _, _ = run
    imp = read_table(storage, "kpnn_node_importance")
    mean = imp[(imp["scope"] == "mean") & ~imp["is_output"]]
    full = mean[mean["network"] == "full"].set_index("node")
    assert {"pathway_kinase", "pathway_upstream", "decoy_kinase"} <= set(full["role"])
    true = full.loc[full["role"].isin(["pathway_kinase", "pathway_upstream"]), "node_weight_abs"]
    decoy = full.loc[full["role"] == "decoy_kinase", "node_weight_abs"]
    assert true.mean() > 2 * decoy.mean(), (true.to_dict(), decoy.to_dict())
    # like for like (the decoys are siblings of the TF-level kinases): most pairs ordered right,
    # by the control-corrected KPNN importance (the default) and by the uncorrected node weight
    summary = read_table(storage, "kpnn_summary").set_index("network")
    assert summary.loc["full", "pathway_vs_decoy_auc"] >= 0.75
    assert summary.loc["full", "pathway_vs_decoy_auc_uncorrected"] >= 0.75
    # the top-ranked hidden node (corrected importance) is a true signalling node
    pathway = full.index[full["role"].str.startswith("pathway_")]
    assert full["rank"].idxmin() in set(pathway)
    # the correction: the paper's |mean gradient|, min-max scaled, minus the control networks'
    assert np.allclose(
        full["node_weight_corrected"], full["node_weight_scaled"] - full["control_weight_scaled"]
    )
    controls = imp[(imp["scope"] == "control") & (imp["network"] == "full")]
    assert sorted(set(controls["fold"])) == [0, 1, 2] and controls["rank"].isna().all()
    # every control gene is predictive: the control networks learn it (the pruned tree more slowly)
    assert (summary["control_networks"] == 3).all() and (summary["control_roc_auc"] > 0.6).all()
    assert summary.loc["full", "control_roc_auc"] > 0.8
    # per-fold rows and their mean agree
    folds = imp[(imp["scope"] == "fold") & (imp["network"] == "full")]
    assert np.allclose(
        folds.groupby("node")["node_weight_abs"].mean().reindex(full.index), full["node_weight_abs"]
    )


# ----------------------------------------------------------------------------------------------
# user networks


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def _pkn_config(**config):
    return {"ops": {"pkn_edges": {"config": config}}}


@pytest.fixture(scope="module")
def genes(run):
    pkn = read_table(run[0], "pkn_edges")
    return sorted({s[: -len("_gene")] for s in pkn["source"] if s.endswith("_gene")})


BAD = {
    # name: (file lines given the measured genes g, extra config, expected message)
    "cycle only": (lambda g: ["A\t1\tB", "B\t1\tA"], {"root": "A"}, "no input node"),
    "no path to root": (lambda g: [f"{g[0]}_gene\t1\tTF1", "TF2\t1\tR"], {"root": "R"}, "reaches the root"),
    "unknown root": (
        lambda g: [f"{g[0]}_gene\t1\tTF1", "TF1\t1\tR"],
        {"root": "NOPE"},
        "root 'NOPE' is not a node",
    ),
    "self-loop": (lambda g: [f"{g[0]}_gene\t1\tTF1", "TF1\t1\tTF1", "TF1\t1\tR"], {}, "self-loop"),
    "genes not measured": (lambda g: ["NOTAGENE_gene\t1\tTF1", "TF1\t1\tR"], {}, "not measured"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_pkn_file_fails_naming_the_problem_and_writes_nothing(
    case, run, genes, tmp_path, shared_instance
):
    storage = run[0]
    lines, extra, message = BAD[case]
    path = _write(tmp_path / "bad.sif", lines(genes))
    before = tree_digest(storage)
    result = materialize(
        NETWORK_GROUP,
        storage,
        shared_instance,
        run_config=_pkn_config(source="file", path=str(path), **extra),
    )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "pkn_edges"
    assert message in failure.event_specific_data.error.to_string()
    assert tree_digest(storage) == before


def test_missing_label_column_fails_the_kpnn_and_writes_nothing(run, shared_instance):
    storage = run[0]
    before = tree_digest(storage)
    result = materialize(
        KPNN_TABLES, storage, shared_instance, run_config={"ops": {"kpnn": {"config": {"label": "nope"}}}}
    )
    assert not result.success
    assert (
        "obs has no column 'nope'"
        in result.get_step_failure_events()[0].event_specific_data.error.to_string()
    )
    assert tree_digest(storage) == before


def test_user_file_and_human_network(run, genes, tmp_path, shared_instance):
    """A KPNN parent,child file with a cycle, a duplicate edge and an unmeasured gene (root
    inferred); then the shipped human network restricted to the measured genes."""
    storage = tmp_path / "storage"
    shutil.copytree(run[0], storage)
    g1, g2, g3 = genes[:3]
    path = _write(
        tmp_path / "net.csv",
        [
            "parent,child",
            "R,K1",
            "K1,TF1",
            "K1,TF2",
            "TF1,TF2",
            "TF2,TF1",
            f"TF1,{g1}_gene",
            f"TF2,{g2}_gene",
            f"TF2,{g3}_gene",
            f"TF2,{g3}_gene",
            "TF2,NOTAGENE_gene",
        ],
    )
    result = materialize(["pkn_edges"], storage, shared_instance, run_config=_pkn_config(path=str(path)))
    assert result.success
    pkn = read_table(storage, "pkn_edges")
    assert set(pkn["target"]) - set(pkn["source"]) == {"R"} and is_acyclic(pkn)
    assert set(pkn["source"]) - set(pkn["target"]) == {f"{g}_gene" for g in (g1, g2, g3)}
    assert len(pkn) == 6  # TF1 <-> TF2 (same distance to R) are both dropped; NOTAGENE dropped
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["input_genes_not_measured"].value == 1 and meta["cycle_edges_dropped"].value == 2
    assert meta["duplicates_dropped"].value == 1

    result = materialize(["pkn_edges"], storage, shared_instance, run_config=_pkn_config(source="human"))
    assert result.success
    human = read_table(storage, "pkn_edges")
    assert set(human["target"]) - set(human["source"]) == {"TCR"} and set(human["origin"]) == {"human_kpnn"}
    inputs = set(human["source"]) - set(human["target"])
    measured = set(read_multiome(storage / "dataset" / "simulated.h5mu")["rna"].var_names)
    assert inputs and all(i.endswith("_gene") and i[: -len("_gene")] in measured for i in inputs)
    assert is_acyclic(human)


def test_tf_layer_from_the_regulatory_network_table(run, tmp_path, shared_instance):
    """tf_edges='regulatory_network' reads the attribution group's table (only its in-network
    rows) and fails clearly while that table does not exist; the default (auto) then falls back
    to the candidates, says so, and takes the table once it exists."""
    storage = tmp_path / "storage"
    shutil.copytree(run[0], storage)
    config = _pkn_config(tf_edges="regulatory_network")
    result = materialize(["pkn_edges"], storage, shared_instance, run_config=config)
    assert not result.success
    assert (
        "regulatory_network table does not exist"
        in result.get_step_failure_events()[0].event_specific_data.error.to_string()
    )
    result = materialize(["pkn_edges"], storage, shared_instance)
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["tf_edges"].text == "gene_tf_candidates"
    logs = [e.user_message for e in shared_instance.all_logs(result.run_id)]
    assert any("regulatory_network is not materialized yet" in m for m in logs)
    truth = read_table(storage, "truth_tf_gene")
    net = truth.assign(score=1.0, in_network=True)
    extra = net.iloc[:1].assign(tf="NOT_IN_NETWORK", in_network=False)
    write_table(storage, "regulatory_network", pd.concat([net, extra], ignore_index=True))
    for run_config in (config, None):  # asked for by name, and the default once the table exists
        result = materialize(["pkn_edges"], storage, shared_instance, run_config=run_config)
        assert result.success
    pkn = read_table(storage, "pkn_edges")
    layer = pkn[pkn["origin"] == "regulatory_network"]
    assert len(layer) and set(zip(layer["source"], layer["target"])) <= set(
        zip(truth["gene"] + "_gene", truth["tf"])
    )
    assert "NOT_IN_NETWORK" not in set(pkn["target"])
    assert (
        result.get_asset_materialization_events()[0].materialization.metadata["tf_edges"].text
        == "regulatory_network"
    )
