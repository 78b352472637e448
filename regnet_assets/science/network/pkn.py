"""Prior-knowledge networks (PKN) for the knowledge-primed neural network (KPNN).

**Edge direction.** A PKN here is a DataFrame ``source, target, sign`` in the direction in which the
KPNN *computes*: from the inputs (expressed genes, named ``<SYMBOL>_gene``) towards one root (the
output neuron, e.g. a receptor). That is the KPNN paper's ``parent, child`` list reversed
(``source = child``, ``target = parent``), as the CORNETO tutorial does. Biological edges therefore
appear reversed: "TF regulates gene" becomes ``GENE_gene -> TF``, "kinase activates TF" becomes
``TF -> kinase``, "TCR activates ZAP70" becomes ``ZAP70 -> TCR``. ``sign`` is +1/-1 (activation /
inhibition) and is carried along for interpretation; the network's connectivity is what matters.

Errors are :class:`PKNError` (a ``ValueError``) naming the field and what was wrong, so an asset
can surface them verbatim.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "PKNError",
    "GENE_SUFFIX",
    "DEFAULT_TCR_COMPONENTS",
    "read_pkn",
    "validate_pkn",
    "reachability_prune",
    "input_nodes",
    "is_acyclic",
    "kpnn_from_layers",
    "human_kpnn",
]

GENE_SUFFIX = "_gene"
EDGE_COLUMNS = ["source", "target", "sign"]

#: Components of the T-cell receptor complex and its proximal kinases, the children of the
#: artificial ``TCR`` root in :func:`human_kpnn` (the KPNN paper's TCR network starts TCR -> ZAP70).
#: CD3D/CD3G are absent from the shipped signalling PKN and are skipped there.
DEFAULT_TCR_COMPONENTS = ("CD3E", "CD3D", "CD3G", "CD247", "LCK", "ZAP70")


class PKNError(ValueError):
    """A prior-knowledge network that cannot be used; ``field`` names the offending part."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"PKN {field}: {message}")


# ----------------------------------------------------------------------------------------------
# reading


def _parse_signs(values: pd.Series, field: str = "sign") -> np.ndarray:
    """Map +1/-1 (also '+', '-', '1.0') to int8; anything else is a PKNError listing the offenders."""
    text = values.astype(str).str.strip()
    mapped = text.map({"1": 1, "+1": 1, "+": 1, "1.0": 1, "-1": -1, "-": -1, "-1.0": -1})
    bad = mapped.isna()
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        shown = sorted(set(text.iloc[rows[:20]]))
        raise PKNError(
            field,
            f"values must be +1 or -1; {bad.sum()} row(s) are not, e.g. {shown} "
            f"(first at data row {rows[0] + 1})",
        )
    return mapped.to_numpy(dtype=np.int8)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _read_text(path: Path, what: str, **kwargs) -> pd.DataFrame:
    """Parse a PKN text file, turning the ways it can be unreadable into a :class:`PKNError`.

    The bytes are checked before pandas sees them: its C parser silently cuts a name at a NUL
    byte, which would merge different nodes.
    """
    try:
        with gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb") as handle:
            data = handle.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise PKNError("file", f"{path.name} is a truncated or corrupt gzip file ({exc})") from exc
    if b"\x00" in data:
        raise PKNError(
            "file",
            f"{path.name} has a NUL byte (a control character) at byte "
            f"{data.index(bytes(1))}: not a text file",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PKNError("file", f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        return pd.read_csv(io.StringIO(text), **kwargs)
    except pd.errors.EmptyDataError as exc:
        raise PKNError("file", f"{path.name} is empty: no header and no edges") from exc
    except pd.errors.ParserError as exc:
        raise PKNError("file", f"{path.name} cannot be parsed as {what}: {exc}") from exc


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        raise PKNError("edges", "the file has a header but no edges")
    for col in ("source", "target"):
        vals = df[col]
        if vals.isna().any() or (vals.astype(str).str.strip() == "").any():
            raise PKNError(col, f"{int(vals.isna().sum())} empty node name(s)")
        bad = vals[vals.astype(str).str.contains(_CONTROL)]
        if len(bad):
            raise PKNError(
                col, f"{len(bad)} node name(s) with NUL or other control characters, first {bad.iloc[0]!r}"
            )
    out = pd.DataFrame(
        {
            "source": df["source"].astype(str).str.strip(),
            "target": df["target"].astype(str).str.strip(),
            "sign": df["sign"].to_numpy(dtype=np.int8),
        }
    )
    return out.reset_index(drop=True)


def read_pkn(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Read a PKN file into ``source, target, sign`` (computation direction).

    Formats (``fmt`` or the file extension, ``.gz`` allowed):

    * ``sif``: no header, ``source <sign> target`` per line, tab or space separated.
    * ``tsv`` / ``csv`` with a header, one of:
      ``source, target[, sign]``; ``source, interaction, target`` (CORNETO/CARNIVAL);
      ``parent, child`` (the KPNN edge list, read *reversed*: child -> parent, sign +1).
    """
    path = Path(path)
    if not path.exists():
        raise PKNError("path", f"{path} does not exist")
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    fmt = (fmt or (suffixes[-1].lstrip(".") if suffixes else "tsv")).lower()
    if fmt == "txt":
        fmt = "tsv"
    if fmt not in {"sif", "tsv", "csv"}:
        raise PKNError("format", f"unknown format {fmt!r}; use 'sif', 'tsv' or 'csv'")

    if fmt == "sif":
        df = _read_text(path, "SIF", sep=r"\s+", header=None, dtype=str, engine="python", comment="#")
        if df.shape[1] != 3:
            raise PKNError(
                "columns", f"a SIF file needs 3 columns (source, sign, target); found {df.shape[1]}"
            )
        df.columns = ["source", "sign", "target"]
        if not df.empty and _looks_like_header(df.iloc[0]):
            df = df.iloc[1:]
        df["sign"] = _parse_signs(df["sign"])
        return _finish(df)

    sep = "\t" if fmt == "tsv" else ","
    other = "," if sep == "\t" else "\t"
    df = _read_text(path, fmt.upper(), sep=sep, dtype=str, comment=None)
    cols = [str(c).strip().lower() for c in df.columns]
    if len(cols) == 1:
        guess = (
            "tab"
            if "\t" in cols[0]
            else ("comma" if "," in cols[0] else ("space" if " " in cols[0] else None))
        )
        if guess or other in cols[0]:
            raise PKNError(
                "separator",
                f"read as {'tab' if sep == chr(9) else 'comma'}-separated but the header "
                f"{df.columns[0]!r} looks {guess}-separated; pass fmt= or fix the extension",
            )
    df.columns = cols
    colset = set(cols)
    if {"parent", "child"} <= colset:
        out = pd.DataFrame({"source": df["child"], "target": df["parent"], "sign": 1})
        return _finish(out)
    if {"source", "target"} <= colset:
        sign_col = "sign" if "sign" in colset else ("interaction" if "interaction" in colset else None)
        if sign_col is None:
            signs = np.ones(len(df), dtype=np.int8)
        else:
            signs = _parse_signs(df[sign_col], sign_col)
        out = pd.DataFrame({"source": df["source"], "target": df["target"], "sign": signs})
        return _finish(out)
    raise PKNError(
        "columns",
        f"unknown columns {list(df.columns)}; expected 'source, target[, sign]', "
        "'source, interaction, target' or the KPNN 'parent, child'",
    )


def _looks_like_header(row: pd.Series) -> bool:
    return str(row["sign"]).strip().lower() in {"sign", "interaction", "mor"}


# ----------------------------------------------------------------------------------------------
# graph helpers


def _check_edges(edges: pd.DataFrame) -> None:
    if not isinstance(edges, pd.DataFrame):
        raise PKNError("edges", f"expected a DataFrame, got {type(edges).__name__}")
    missing = [c for c in ("source", "target") if c not in edges.columns]
    if missing:
        raise PKNError("columns", f"missing {missing}; have {list(edges.columns)}")


def _with_sign(edges: pd.DataFrame) -> pd.DataFrame:
    out = edges.copy()
    if "sign" not in out.columns:
        out["sign"] = np.int8(1)
    return out


def input_nodes(edges: pd.DataFrame) -> list[str]:
    """Nodes without in-edges (the data inputs of a KPNN), sorted."""
    return sorted(set(edges["source"]) - set(edges["target"]))


def _adjacency(edges: pd.DataFrame, reverse: bool = False) -> dict[str, list[str]]:
    a, b = ("target", "source") if reverse else ("source", "target")
    adj: dict[str, list[str]] = {}
    for s, t in zip(edges[a].to_numpy(), edges[b].to_numpy()):
        adj.setdefault(s, []).append(t)
    return adj


def _bfs(adj: dict[str, list[str]], starts: Iterable[str]) -> dict[str, int]:
    dist = {s: 0 for s in starts}
    queue = deque(dist)
    while queue:
        u = queue.popleft()
        for v in adj.get(u, ()):
            if v not in dist:
                dist[v] = dist[u] + 1
                queue.append(v)
    return dist


def is_acyclic(edges: pd.DataFrame) -> bool:
    """Kahn's algorithm; True when the edge list has no directed cycle (self-loops count)."""
    nodes = pd.Index(pd.unique(np.concatenate([edges["source"].to_numpy(), edges["target"].to_numpy()])))
    s = nodes.get_indexer(edges["source"])
    t = nodes.get_indexer(edges["target"])
    indeg = np.bincount(t, minlength=len(nodes))
    order = np.argsort(s, kind="stable")
    starts = np.searchsorted(s[order], np.arange(len(nodes) + 1))
    queue = deque(np.flatnonzero(indeg == 0).tolist())
    seen = 0
    while queue:
        u = queue.popleft()
        seen += 1
        for e in order[starts[u] : starts[u + 1]]:
            v = t[e]
            indeg[v] -= 1
            if indeg[v] == 0:
                queue.append(v)
    return seen == len(nodes)


# ----------------------------------------------------------------------------------------------
# validation and pruning


def validate_pkn(
    edges: pd.DataFrame,
    root: str,
    inputs: Sequence[str],
    allow_missing_inputs: bool = False,
) -> tuple[pd.DataFrame, dict]:
    """Check a PKN against its root and inputs; return the de-duplicated edges and a report.

    Errors (PKNError): missing columns, signs other than +/-1, empty names, self-loops,
    a (source, target) pair given with both signs, root not in the network, inputs absent from the
    network (listed, with a count; pass ``allow_missing_inputs=True`` to only report them, which is
    the normal case when the inputs are all measured genes), and no input reaching the root.
    Exact duplicate edges are dropped and counted in the report.
    """
    _check_edges(edges)
    edges = _with_sign(edges)[EDGE_COLUMNS]
    if edges.empty:
        raise PKNError("edges", "the network has no edges")
    for col in ("source", "target"):
        if edges[col].isna().any():
            raise PKNError(col, f"{int(edges[col].isna().sum())} empty node name(s)")
    edges = edges.assign(sign=_parse_signs(edges["sign"]))

    loops = edges.loc[edges["source"] == edges["target"], "source"]
    if len(loops):
        raise PKNError(
            "self_loops",
            f"{len(loops)} self-loop(s), e.g. {sorted(set(loops))[:10]}; a neuron cannot feed itself",
        )
    n_before = len(edges)
    edges = edges.drop_duplicates(ignore_index=True)
    n_duplicates = n_before - len(edges)
    pair_dup = edges.duplicated(["source", "target"], keep=False)
    if pair_dup.any():
        pairs = edges.loc[pair_dup, ["source", "target"]].drop_duplicates()
        raise PKNError(
            "sign",
            f"{len(pairs)} edge(s) given with both signs, e.g. {list(map(tuple, pairs.head(5).to_numpy()))}",
        )

    nodes = set(edges["source"]) | set(edges["target"])
    if root not in nodes:
        raise PKNError("root", f"root {root!r} is not a node of the network ({len(nodes)} nodes)")
    inputs = list(dict.fromkeys(inputs))
    if not inputs:
        raise PKNError("inputs", "no inputs given")
    absent = [i for i in inputs if i not in nodes]
    if absent and not allow_missing_inputs:
        raise PKNError(
            "inputs",
            f"{len(absent)} of {len(inputs)} input(s) are not in the network, e.g. {absent[:10]}",
        )
    present = [i for i in inputs if i in nodes]
    back = _bfs(_adjacency(edges, reverse=True), [root])
    reaching = [i for i in present if i in back]
    if not reaching:
        raise PKNError("inputs", f"none of the {len(present)} input(s) present reaches the root {root!r}")
    unreachable = [i for i in present if i not in back]
    in_deg = set(edges["target"])
    report = {
        "n_edges": len(edges),
        "n_nodes": len(nodes),
        "duplicates_dropped": n_duplicates,
        "n_inputs": len(inputs),
        "inputs_absent": len(absent),
        "inputs_absent_examples": absent[:20],
        "inputs_not_reaching_root": len(unreachable),
        "inputs_not_reaching_root_examples": unreachable[:20],
        "inputs_reaching_root": len(reaching),
        "inputs_with_in_edges": sum(1 for i in present if i in in_deg),
        "root_out_edges": int((edges["source"] == root).sum()),
        "acyclic": is_acyclic(edges),
    }
    return edges, report


def reachability_prune(edges: pd.DataFrame, inputs: Iterable[str], root: str) -> pd.DataFrame:
    """Keep only nodes on some input -> root path (forward from inputs ∩ backward from the root).

    Edges leaving the root are dropped too: the root is the output, and a path ending at the root
    never leaves it. Edge order is preserved (unlike CORNETO's set-based ``prune``).
    """
    _check_edges(edges)
    fwd = _bfs(_adjacency(edges), [i for i in inputs])
    back = _bfs(_adjacency(edges, reverse=True), [root])
    keep = set(fwd) & set(back)
    mask = edges["source"].isin(keep) & edges["target"].isin(keep) & (edges["source"] != root)
    return edges.loc[mask].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# builders


def _standardise(df: pd.DataFrame, src: Sequence[str], tgt: Sequence[str], sgn: Sequence[str], what: str):
    cols = {c.lower(): c for c in df.columns}
    pick = lambda names: next((cols[n] for n in names if n in cols), None)  # noqa: E731
    s, t, g = pick(src), pick(tgt), pick(sgn)
    if s is None or t is None:
        raise PKNError(what, f"needs columns {src[0]!r} and {tgt[0]!r}; have {list(df.columns)}")
    signs = _parse_signs(df[g], f"{what}.{g}") if g is not None else np.ones(len(df), dtype=np.int8)
    return pd.DataFrame({"source": df[s].astype(str), "target": df[t].astype(str), "sign": signs})


def _shortest_path_dag(edges: pd.DataFrame, root: str) -> pd.DataFrame:
    """Drop edges that do not strictly approach the root, which makes the network acyclic.

    d(v) = hops from v to the root. Edges out of input genes (no in-edges, so never on a cycle) are
    all kept; elsewhere u -> v is kept iff d(v) < d(u), the KPNN paper's "shortest paths from the
    receptor" idea. Every node keeps an edge with d-1, so everything still reaches the root.
    """
    dist = _bfs(_adjacency(edges, reverse=True), [root])
    d_s = edges["source"].map(dist)
    d_t = edges["target"].map(dist)
    genes = set(input_nodes(edges))
    keep = edges["source"].isin(genes) | (d_t < d_s)
    return edges.loc[keep].reset_index(drop=True)


def kpnn_from_layers(
    root: str,
    signalling_edges: pd.DataFrame,
    tf_gene_edges: pd.DataFrame,
    acyclic: bool = True,
) -> pd.DataFrame:
    """Build the KPNN-paper shape root -> signalling -> TFs -> target genes, in computation direction.

    ``signalling_edges``: biological direction (``source, target[, sign|interaction]``, signal flows
    from the root towards the TFs). ``tf_gene_edges``: ``tf, target[, mor]`` regulons. Targets become
    inputs ``<SYMBOL>_gene`` (distinct from the TF node of the same symbol). Everything is reversed
    to computation direction, de-duplicated and pruned to nodes on an input -> root path. With
    ``acyclic=True`` edges that do not strictly approach the root are dropped (see
    :func:`_shortest_path_dag`), since a KPNN must be a DAG; ``acyclic=False`` keeps feedback loops
    (e.g. for the MILP, which removes them optimally).
    """
    sig = _standardise(
        signalling_edges,
        ["source", "parent"],
        ["target", "child"],
        ["sign", "interaction", "mor"],
        "signalling_edges",
    )
    reg = _standardise(tf_gene_edges, ["tf", "source"], ["target", "gene"], ["mor", "sign"], "tf_gene_edges")
    comp_sig = pd.DataFrame({"source": sig["target"], "target": sig["source"], "sign": sig["sign"]})
    comp_reg = pd.DataFrame(
        {"source": reg["target"] + GENE_SUFFIX, "target": reg["source"], "sign": reg["sign"]}
    )
    edges = pd.concat([comp_reg, comp_sig], ignore_index=True)
    edges = edges.loc[edges["source"] != edges["target"]]
    # One edge per (source, target): the first sign wins (duplicate sources disagree very rarely).
    edges = edges.drop_duplicates(["source", "target"], ignore_index=True)
    if root not in set(edges["target"]):
        raise PKNError("root", f"root {root!r} has no incoming edge in computation direction")
    genes = [n for n in pd.unique(comp_reg["source"])]
    edges = reachability_prune(edges, genes, root)
    if acyclic:
        edges = _shortest_path_dag(edges, root)
        edges = reachability_prune(edges, [n for n in genes], root)
    if edges.empty:
        raise PKNError("root", f"no gene input reaches the root {root!r}")
    edges["sign"] = edges["sign"].astype(np.int8)
    return edges.reset_index(drop=True)


def human_kpnn(
    root: str = "TCR",
    confidence: str = "ABC",
    receptor_components: Sequence[str] = DEFAULT_TCR_COMPONENTS,
    acyclic: bool = True,
) -> pd.DataFrame:
    """A real human KPNN: genes (``_gene`` inputs) -> DoRothEA TFs -> signalling PKN -> ``root``.

    ``root="TCR"`` (default) is an artificial receptor node, as in the KPNN paper: the TCR is a
    complex, not one protein, so its components (``receptor_components``: CD3 chains, CD3ζ = CD247,
    and the proximal kinases LCK and ZAP70) each feed the root. A real PKN node (e.g. ``"ZAP70"``)
    can be the root instead; then ``receptor_components`` is ignored. ``confidence`` selects
    DoRothEA levels (e.g. "ABC", "ABCD"). Returns edges in computation direction (see module doc).
    """
    from regnet_assets.science.dataset.reference_data import dorothea, signalling_pkn

    levels = set(confidence.upper())
    if not levels or not levels <= set("ABCDE"):
        raise PKNError("confidence", f"{confidence!r}: use letters from 'ABCDE', e.g. 'ABC'")
    sig = signalling_pkn().drop_duplicates()
    nodes = set(sig["source"]) | set(sig["target"])
    if root not in nodes:
        present = [c for c in receptor_components if c in nodes]
        if not present:
            raise PKNError(
                "receptor_components",
                f"none of {list(receptor_components)} is in the signalling PKN, so the artificial "
                f"root {root!r} would have no children",
            )
        extra = pd.DataFrame({"source": root, "interaction": 1, "target": present})
        sig = pd.concat([sig, extra], ignore_index=True)
    reg = dorothea()
    reg = reg.loc[reg["confidence"].isin(levels), ["tf", "target", "mor"]]
    return kpnn_from_layers(root, sig, reg, acyclic=acyclic)
