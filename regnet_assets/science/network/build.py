"""Which network a KPNN trains on: the simulator's default network, and any network finalised.

:func:`simulator_pkn` builds the default network of a simulated dataset the way the KPNN paper
builds its TCR network (receptor -> signalling -> TFs -> target genes), with the simulator's decoy
kinases wired in as controls; :func:`finalize_pkn` validates any network (file, human, simulator)
against the measured genes and returns the DAG a KPNN trains on.

Edges are ``source, target, sign`` in computation direction (see :mod:`pkn`); inputs are the
``<SYMBOL>_gene`` nodes. Errors are :class:`~regnet_assets.science.network.pkn.PKNError` naming the part.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from regnet_assets.science.network.pkn import (
    EDGE_COLUMNS,
    GENE_SUFFIX,
    PKNError,
    _shortest_path_dag,  # the same acyclicity rule kpnn_from_layers uses
    is_acyclic,
    kpnn_from_layers,
    reachability_prune,
    validate_pkn,
)

__all__ = ["network_root", "network_inputs", "infer_root", "simulator_pkn", "finalize_pkn"]


# ----------------------------------------------------------------------------------------------
# network shape


def network_inputs(edges: pd.DataFrame) -> list[str]:
    """Nodes without in-edges, in order of first appearance (the KPNN's data inputs)."""
    targets = set(edges["target"])
    return [n for n in pd.unique(edges["source"]) if n not in targets]


def network_root(edges: pd.DataFrame) -> str:
    """The single node without out-edges (a finalised KPNN network has exactly one)."""
    sinks = sorted(set(edges["target"]) - set(edges["source"]))
    if len(sinks) != 1:
        raise PKNError("root", f"expected one node without outgoing edges, found {len(sinks)}: {sinks[:10]}")
    return sinks[0]


def infer_root(edges: pd.DataFrame) -> str:
    """The root of a user's network when none is configured: its only non-gene sink."""
    sinks = sorted(n for n in set(edges["target"]) - set(edges["source"]) if not str(n).endswith(GENE_SUFFIX))
    if len(sinks) != 1:
        raise PKNError(
            "root",
            f"no root configured and the network has {len(sinks)} nodes without outgoing edges "
            f"(e.g. {sinks[:10]}); set the root (the output node) in the config",
        )
    return sinks[0]


# ----------------------------------------------------------------------------------------------
# building


def _signed(values) -> np.ndarray:
    s = np.sign(pd.to_numeric(pd.Series(values), errors="coerce").fillna(1.0).to_numpy())
    return np.where(s == 0, 1, s).astype(np.int8)


def _truth_root(truth_signalling: pd.DataFrame) -> str:
    roots = sorted(set(truth_signalling["source"]) - set(truth_signalling["target"]))
    if len(roots) != 1:
        raise PKNError(
            "truth_signalling", f"expected one receptor (a source that is never a target), found {roots}"
        )
    return roots[0]


def simulator_pkn(
    truth_signalling: pd.DataFrame,
    tf_gene_edges: pd.DataFrame,
    gene_roles: pd.DataFrame | None = None,
    reference_signalling: pd.DataFrame | None = None,
    root: str | None = None,
    decoys: bool = True,
    tf_edge_origin: str = "gene_tf_candidates",
) -> tuple[pd.DataFrame, dict]:
    """The default KPNN network of a simulated dataset, with an ``origin`` column per edge.

    Layers, as in the KPNN paper: the receptor (``root``, default the hierarchy's top) -> the
    true signalling hierarchy (``truth_signalling``, biological direction) -> TFs -> their target
    genes (``tf_gene_edges``: ``tf, gene[, sign]``). With ``decoys=True`` every decoy kinase of
    ``gene_roles`` is attached as a sibling of the hierarchy's TF-level kinases (a *false* prior
    edge from their parent, so decoys sit at the same depth as the true kinases) and wired to the
    TFs the shipped signalling PKN (``reference_signalling``: ``source, interaction, target``)
    gives it outside the pathway. A decoy with no such TF drops out. The decoys are controls: a
    KPNN that learned the biology ranks them below the true kinases.
    """
    truth = truth_signalling[["source", "target", "sign"]].copy()
    if truth.empty:
        raise PKNError("truth_signalling", "is empty: this dataset has no simulated signalling hierarchy")
    root = root or _truth_root(truth_signalling)
    pathway_tfs = set(
        truth_signalling.loc[truth_signalling["level"].astype(str).str.endswith("->tf"), "target"]
    )
    reg = pd.DataFrame(
        {
            "tf": tf_gene_edges["tf"].astype(str),
            "gene": tf_gene_edges["gene"].astype(str),
            "sign": _signed(tf_gene_edges["sign"]) if "sign" in tf_gene_edges.columns else np.int8(1),
        }
    )
    layers = [truth.assign(origin="truth_signalling")]
    report = {"root": root, "decoys_attached": [], "decoy_parents": []}
    if decoys and gene_roles is not None and reference_signalling is not None:
        decoy_nodes = [g for g in gene_roles.loc[gene_roles["role"] == "decoy_kinase", "gene"]]
        tfs = set(reg["tf"]) - pathway_tfs
        ref = reference_signalling.drop_duplicates(["source", "target"])
        dec = ref[ref["source"].isin(decoy_nodes) & ref["target"].isin(tfs)]
        dec = pd.DataFrame(
            {"source": dec["source"], "target": dec["target"], "sign": _signed(dec["interaction"])}
        )
        tf_kinases = set(truth_signalling.loc[truth_signalling["target"].isin(pathway_tfs), "source"])
        parents = sorted(set(truth.loc[truth["target"].isin(tf_kinases), "source"])) or [root]
        used = sorted(set(dec["source"]))
        attach = pd.DataFrame([(p, d, 1) for p in parents for d in used], columns=EDGE_COLUMNS)
        layers += [attach.assign(origin="decoy_control"), dec.assign(origin="signalling_pkn")]
        report.update(decoys_attached=used, decoy_parents=parents)
    sig = pd.concat(layers, ignore_index=True)
    edges = kpnn_from_layers(root, sig[EDGE_COLUMNS], reg.rename(columns={"gene": "target"}))
    origin = pd.concat(
        [
            pd.DataFrame({"source": sig["target"], "target": sig["source"], "origin": sig["origin"]}),
            pd.DataFrame(
                {"source": reg["gene"] + GENE_SUFFIX, "target": reg["tf"], "origin": tf_edge_origin}
            ),
        ]
    ).drop_duplicates(["source", "target"])
    edges = edges.merge(origin, on=["source", "target"], how="left")
    report["decoys_in_network"] = sorted(set(report["decoys_attached"]) & set(edges["target"]))
    return edges, report


def finalize_pkn(
    edges: pd.DataFrame,
    root: str,
    measured_genes: Iterable[str],
    missing_inputs: str = "drop",
) -> tuple[pd.DataFrame, dict]:
    """Validate a network against its root and the measured genes; return the DAG and a report.

    Errors (PKNError): everything :func:`pkn.validate_pkn` checks (self-loops, an edge with both
    signs, unknown root, no input reaching the root), no ``<SYMBOL>_gene`` input at all, input
    genes with incoming edges, input genes not measured in the RNA (all of them; or any of them
    with ``missing_inputs="fail"``), no *measured* input reaching the root. Exact duplicate edges
    are dropped and counted. Then reachability pruning (nodes on a measured-input -> root path);
    a cyclic network is made acyclic with the shortest-path rule of :func:`pkn.kpnn_from_layers`
    (edges that do not approach the root are dropped and counted). Extra columns (``origin``)
    are carried along.
    """
    if missing_inputs not in ("drop", "fail"):
        raise PKNError("missing_inputs", f"must be 'drop' or 'fail', got {missing_inputs!r}")
    if not {"source", "target"} <= set(edges.columns):
        raise PKNError("columns", f"need source and target; have {list(edges.columns)}")
    names = pd.unique(np.concatenate([edges["source"].astype(str), edges["target"].astype(str)]))
    inputs = [n for n in names if n.endswith(GENE_SUFFIX)]
    if not inputs:
        raise PKNError(
            "inputs", f"no input node: name the measured genes '<SYMBOL>{GENE_SUFFIX}' in the network"
        )
    fed = sorted(set(inputs) & set(edges["target"].astype(str)))
    if fed:
        raise PKNError(
            "inputs",
            f"{len(fed)} input gene node(s) have incoming edges, e.g. {fed[:10]}; "
            f"'{GENE_SUFFIX}' nodes are data inputs and must only feed other nodes",
        )
    clean, check = validate_pkn(edges, root, inputs, allow_missing_inputs=True)
    measured = set(measured_genes)
    absent = [i for i in inputs if i[: -len(GENE_SUFFIX)] not in measured]
    if len(absent) == len(inputs) or (absent and missing_inputs == "fail"):
        raise PKNError(
            "inputs",
            f"{len(absent)} of {len(inputs)} input gene(s) are not measured in mod['rna'].var_names, "
            f"e.g. {[a[: -len(GENE_SUFFIX)] for a in absent[:10]]}",
        )
    present = [i for i in inputs if i not in set(absent)]
    pruned = reachability_prune(clean, present, root)
    if pruned.empty:
        raise PKNError(
            "inputs", f"none of the {len(present)} measured input gene(s) reaches the root {root!r}"
        )
    acyclic = is_acyclic(pruned)
    n_cyclic = 0
    if not acyclic:
        dag = reachability_prune(_shortest_path_dag(pruned, root), present, root)
        n_cyclic = len(pruned) - len(dag)
        pruned = dag
    extra = [c for c in edges.columns if c not in EDGE_COLUMNS]
    if extra:
        carried = edges.astype({"source": str, "target": str}).drop_duplicates(["source", "target"])
        pruned = pruned.merge(carried[["source", "target", *extra]], on=["source", "target"], how="left")
    used = set(pruned["source"])
    report = {
        "root": root,
        "edges_given": int(len(edges)),
        "duplicates_dropped": int(check["duplicates_dropped"]),
        "input_genes": len(inputs),
        "input_genes_not_measured": len(absent),
        "input_genes_not_measured_examples": [a[: -len(GENE_SUFFIX)] for a in absent[:20]],
        "input_genes_not_reaching_root": sum(1 for i in present if i not in used),
        "input_genes_used": sum(1 for i in present if i in used),
        "input_acyclic": acyclic,
        "cycle_edges_dropped": int(n_cyclic),
        "edges": int(len(pruned)),
        "nodes": int(len(set(pruned["source"]) | set(pruned["target"]))),
    }
    report["hidden_nodes"] = report["nodes"] - report["input_genes_used"] - 1
    return pruned.reset_index(drop=True), report
