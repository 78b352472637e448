"""Minimal-DAG MILP: known optima on hand-made graphs, agreement of the formulations and a brute
force on random graphs, and consistency of the summary numbers."""

import itertools

import numpy as np
import pandas as pd
import pytest

from regnet_assets.science.network.pkn import PKNError, is_acyclic
from regnet_assets.science.network.pruning import (
    PruningResult,
    inputs_reach_root,
    kpnn_parameter_count,
    prune_to_minimal_dag,
)

METHODS = [("structural", "cuts"), ("structural", "potentials"), ("acyclic_flow", "cuts")]


def _e(pairs):
    return pd.DataFrame({"source": [a for a, _ in pairs], "target": [b for _, b in pairs], "sign": 1})


def _run(edges, inputs, root, method, cycles="cuts"):
    res = prune_to_minimal_dag(edges, inputs, root, method=method, cycles=cycles, time_limit=20)
    assert isinstance(res, PruningResult)
    assert res.optimal, res.summary["status"]
    assert is_acyclic(res.edges)
    return res


def _brute_force(edges, inputs, root):
    """Min #edges by enumerating kept intermediate sets (the optimum is a tree: edges = kept - 1)."""
    e = edges[edges["source"] != root]
    nodes = set(e["source"]) | set(e["target"])
    inputs = [i for i in inputs if i in nodes and inputs_reach_root(e, [i], root)]
    mids = sorted(nodes - set(inputs) - {root})
    for size in range(len(mids) + 1):
        for keep in itertools.combinations(mids, size):
            allowed = set(keep) | set(inputs) | {root}
            sub = e[e["source"].isin(allowed) & e["target"].isin(allowed)]
            if inputs_reach_root(sub, inputs, root):
                return len(inputs) + size
    raise AssertionError("infeasible")


@pytest.mark.parametrize("method,cycles", METHODS)
def test_diamond(method, cycles):
    # g1 can use A or B, g2 can use B or C: keeping B alone is the unique optimum (3 edges)
    e = _e([("g1", "A"), ("g1", "B"), ("g2", "B"), ("g2", "C"), ("A", "R"), ("B", "R"), ("C", "R")])
    res = _run(e, ["g1", "g2"], "R", method, cycles)
    assert sorted(map(tuple, res.edges[["source", "target"]].values)) == [
        ("B", "R"),
        ("g1", "B"),
        ("g2", "B"),
    ]
    s = res.summary
    assert s["objective"] == s["best_bound"] == 3 and s["mip_gap"] == 0
    assert (s["nodes_before"], s["edges_before"], s["nodes_after"], s["edges_after"]) == (6, 7, 4, 3)


@pytest.mark.parametrize("method,cycles", METHODS)
def test_graph_with_cycle(method, cycles):
    # A <-> B is a cycle. Keeping just {A, B} would give every kept node a kept successor without
    # reaching R: a model that ignores cycles returns 4 edges; the true optimum keeps A, B, C (5).
    e = _e(
        [
            ("g1", "A"),
            ("g2", "B"),
            ("A", "B"),
            ("B", "A"),
            ("A", "C"),
            ("C", "R"),
            ("B", "D"),
            ("D", "E"),
            ("E", "R"),
        ]
    )
    res = _run(e, ["g1", "g2"], "R", method, cycles)
    assert res.summary["objective"] == 5
    assert inputs_reach_root(res.edges, ["g1", "g2"], "R")
    assert sorted(map(tuple, res.edges[["source", "target"]].values)) == [
        ("A", "C"),
        ("B", "A"),
        ("C", "R"),
        ("g1", "A"),
        ("g2", "B"),
    ]


@pytest.mark.parametrize("method,cycles", METHODS)
def test_unreachable_and_absent_inputs_are_dropped(method, cycles):
    e = _e([("g1", "A"), ("A", "R"), ("g2", "A"), ("g3", "X"), ("X", "Y")])
    res = _run(e, ["g1", "g2", "g3", "g_absent"], "R", method, cycles)
    s = res.summary
    assert s["inputs_given"] == 4 and s["inputs_dropped"] == 2
    assert s["objective"] == 3 and s["nodes_before"] == 4
    assert inputs_reach_root(res.edges, ["g1", "g2"], "R")


def _random_graph(seed):
    rng = np.random.default_rng(seed)
    n_in, n_mid = 4, 8
    mids = [f"M{i}" for i in range(n_mid)]
    pairs = set()
    for i in range(n_in):
        for m in rng.choice(mids, size=rng.integers(1, 4), replace=False):
            pairs.add((f"g{i}", m))
    for a in mids:
        for b in mids:
            if a != b and rng.random() < 0.22:
                pairs.add((a, b))
        if rng.random() < 0.25:
            pairs.add((a, "R"))
    pairs.add((mids[0], "R"))
    return _e(sorted(pairs)), [f"g{i}" for i in range(n_in)]


@pytest.mark.parametrize("seed", range(10))
def test_formulations_agree_with_brute_force_on_random_graphs(seed):
    edges, inputs = _random_graph(seed)
    expected = _brute_force(edges, inputs, "R")
    for method, cycles in METHODS:
        res = _run(edges, inputs, "R", method, cycles)
        s = res.summary
        assert s["objective"] == expected, (method, cycles)
        assert s["best_bound"] == expected
        reach = [i for i in inputs if inputs_reach_root(edges[edges["source"] != "R"], [i], "R")]
        assert inputs_reach_root(res.edges, reach, "R")
        if method == "structural":  # the structural model returns a tree
            assert s["edges_after"] == s["nodes_after"] - 1
            assert (res.edges["source"].value_counts() == 1).all()


def test_summary_numbers_are_consistent():
    edges, inputs = _random_graph(3)
    res = _run(edges, inputs, "R", "structural")
    s = res.summary
    kept = res.edges
    assert s["edges_after"] == len(kept) == s["objective"]
    assert s["nodes_after"] == len(set(kept["source"]) | set(kept["target"]))
    assert s["params_after"] == kpnn_parameter_count(kept, inputs)
    assert s["edge_compression_pct"] == pytest.approx(100 * (1 - s["edges_after"] / s["edges_before"]))
    assert s["parameter_compression_pct"] == pytest.approx(100 * (1 - s["params_after"] / s["params_before"]))
    # parameters = Σ_non-input (in-degree + 1); for a tree that is edges + hidden nodes
    assert s["params_after"] == s["edges_after"] + s["neurons_after"]
    assert s["status"] == "optimal" and s["bound_available"] and s["mip_gap"] == 0
    for key in ("solve_seconds", "build_seconds", "prepare_seconds"):
        assert s[key] >= 0
    flow = _run(edges, inputs, "R", "acyclic_flow").summary
    # HiGHS' own objective on the flow model counts the ni + 1 artificial edges too
    ni = s["nodes_before"] - s["neurons_before"]
    assert flow["solver_objective"] == pytest.approx(flow["objective"] + ni + 1)


def test_kpnn_parameter_count_matches_reference_formula():
    e = _e([("g1", "A"), ("g2", "A"), ("A", "R"), ("g2", "B"), ("B", "R")])
    assert kpnn_parameter_count(e, ["g1", "g2"]) == (2 + 1) + (1 + 1) + (2 + 1)


def test_bad_arguments():
    e = _e([("g1", "A"), ("A", "R")])
    with pytest.raises(ValueError, match="method"):
        prune_to_minimal_dag(e, ["g1"], "R", method="greedy")
    with pytest.raises(ValueError, match="time_limit"):
        prune_to_minimal_dag(e, ["g1"], "R", time_limit=0)
    with pytest.raises(PKNError, match="root"):
        prune_to_minimal_dag(e, ["g1"], "NOPE")
    with pytest.raises(PKNError, match="none of the 1 input"):
        prune_to_minimal_dag(_e([("g1", "A"), ("B", "R")]), ["g1"], "R")


def test_real_human_network_structural_is_optimal():
    from regnet_assets.science.network.pkn import human_kpnn, input_nodes

    for acyclic in (True, False):
        e = human_kpnn(acyclic=acyclic)
        inputs = input_nodes(e)
        res = prune_to_minimal_dag(e, inputs, "TCR", time_limit=30)
        s = res.summary
        assert res.optimal and s["best_bound"] == s["objective"]
        assert s["input_acyclic"] is acyclic and s["result_acyclic"]
        assert inputs_reach_root(res.edges, inputs, "TCR")
        assert s["edges_after"] == len(inputs) + s["neurons_after"] - 1
        assert s["neurons_after"] < s["neurons_before"]


def test_cut_loop_and_time_limit_repair_on_a_cycle():
    """The cycle graph needs a second round of cuts; a stranded selection (what a time-out can
    leave) is repaired into a feasible tree."""
    from regnet_assets.science.network.pruning import _Graph, _repair, _tree_from_kept

    e = _e(
        [
            ("g1", "A"),
            ("g2", "B"),
            ("A", "B"),
            ("B", "A"),
            ("A", "C"),
            ("C", "R"),
            ("B", "D"),
            ("D", "E"),
            ("E", "R"),
        ]
    )
    res = _run(e, ["g1", "g2"], "R", "structural", "cuts")
    assert res.summary["model"]["rounds"] >= 2 and res.summary["model"]["cut_rows"] > 0

    g = _Graph(e, ["g1", "g2"], "R")
    keep = np.zeros(g.n, dtype=bool)
    for v in ("g1", "g2", "R", "A", "B"):  # A <-> B: every kept node has a kept successor, none reaches R
        keep[g.nodes.get_loc(v)] = True
    order = np.argsort(g.t, kind="stable")
    ptr = np.searchsorted(g.t[order], np.arange(g.n + 1))
    forced = np.isin(np.arange(g.n), np.r_[g.inputs, g.root])
    fixed = _repair(g, keep, forced, ptr, order)
    tree = e.iloc[_tree_from_kept(g, fixed)]
    assert inputs_reach_root(tree, ["g1", "g2"], "R") and is_acyclic(tree)
