"""The bad-input corpus: malformed datasets, PKN files and run configurations, built on demand.

Every case is generated from the small simulated dataset (or from a few lines of text), so the
corpus is reviewable code rather than committed binaries. ``test_bad_inputs.py`` walks it: each
case must fail at the named asset step with an error that names the problem, and leave every file
of an earlier run byte-identical. ``RELIABILITY.md`` lists the same cases (a test checks it).

These complement, and do not repeat, the bad datasets of ``test_dataset_assets.py``
(``BAD_DATASETS``: missing modalities, NaN/negative/non-integer counts, duplicate names, ...).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp

from regnet_assets.defs.resources import DatasetResource
from regnet_assets.science.dataset.reading import quiet_mudata, read_multiome

DATASET_GROUP = [
    "multiome",
    "peak_gene_links",
    "motif_hits",
    "metacell_multiome",
    "metacells",
    "gene_tf_candidates",
    "genes",
    "truth_tf_gene",
    "truth_signalling",
]
MODEL_TABLES = ["gene_models", "training_history", "predictions", "gene_correlation"]
KPNN_TABLES = [
    "kpnn_metrics",
    "kpnn_summary",
    "kpnn_node_importance",
    "kpnn_history",
    "kpnn_activations",
    "kpnn_predictions",
]


@dataclass
class Env:
    """What a case builds from: the good dataset, a scratch folder, and the registered genes."""

    good: Path
    folder: Path
    genes: list[str]


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "h5mu" | "pkn" | "config"
    what: str  # one line for RELIABILITY.md
    step: str  # the asset step that must fail
    expect: str  # a fragment of the error naming the problem
    build: Callable[[Env], dict]  # -> materialize arguments (selection, dataset, run_config, ...)
    known_gap: str = field(default="")  # non-empty: the platform does not name the problem yet


# ============================================================================ .h5mu


def _dataset_run(path: Path) -> dict:
    return {"selection": ["multiome"], "dataset": DatasetResource(path=str(path))}


def _write(mdata, env: Env) -> dict:
    path = env.folder / "bad.h5mu"
    with quiet_mudata():
        mdata.write(str(path))
    return _dataset_run(path)


def _edit(fn: Callable) -> Callable[[Env], dict]:
    """Read the good dataset, apply ``fn`` (in place, or returning a new MuData), write it."""

    def build(env: Env) -> dict:
        mdata = read_multiome(env.good)
        out = fn(mdata)
        return _write(mdata if out is None else out, env)

    return build


def _raw(fn: Callable[[Path, Path], None]) -> Callable[[Env], dict]:
    """Make the bad file from the good file's bytes or HDF5 structure: ``fn(good, bad_path)``."""

    def build(env: Env) -> dict:
        path = env.folder / "bad.h5mu"
        fn(env.good, path)
        return _dataset_run(path)

    return build


def _rename_gene(new: str, index: int = 4):
    """Rename one gene in rna.var_names and in peak_to_gene, so the name is the only fault."""

    def edit(m):
        names = list(m["rna"].var_names)
        old, names[index] = names[index], new
        m.mod["rna"].var_names = names
        p2g = pd.DataFrame(m.uns["peak_to_gene"])
        p2g["gene"] = p2g["gene"].replace(old, new)
        m.uns["peak_to_gene"] = p2g

    return edit


def _rename_peak(new: str, index: int = 0):
    def edit(m):
        names = list(m["atac"].var_names)
        old, names[index] = names[index], new
        m.mod["atac"].var_names = names
        p2g = pd.DataFrame(m.uns["peak_to_gene"])
        p2g["peak"] = p2g["peak"].replace(old, new)
        m.uns["peak_to_gene"] = p2g

    return edit


def _set_x(mod: str, fn: Callable[[np.ndarray], np.ndarray], sparse: bool = True):
    def edit(m):
        x = fn(m[mod].X.toarray())
        m.mod[mod].X = sp.csr_matrix(x) if sparse else x

    return edit


def _put(x, where, value):
    x = x.astype(np.float32)
    x[where] = value
    return x


def _subset(rows=None, mod_cols: dict | None = None):
    """A copy keeping ``rows`` cells (all modalities) and, per modality, the given columns."""

    def edit(m):
        mods = {}
        for name, ad in m.mod.items():
            sub = ad if rows is None else ad[rows]
            if mod_cols and name in mod_cols:
                sub = sub[:, mod_cols[name]]
            mods[name] = sub.copy()
        with quiet_mudata():
            out = mudata.MuData(mods)
        out.uns.update(m.uns)
        return out

    return edit


def _duplicate_cells(m):
    names = list(m["rna"].obs_names)
    names[1] = names[0]
    for mod in ("rna", "atac"):
        m.mod[mod].obs_names = names
    with quiet_mudata():
        out = mudata.MuData({"rna": m["rna"], "atac": m["atac"]})
    out.uns.update(m.uns)
    return out


def _motif_names(names_fn):
    def edit(m):
        atac = m.mod["atac"]
        tfs = names_fn(["JUN", "FOS", "RELA", "STAT3"])
        rng = np.random.default_rng(0)
        atac.varm["motif_hits"] = (rng.random((atac.n_vars, len(tfs))) < 0.2).astype(np.int8)
        atac.uns["motif_names"] = np.array(tfs, dtype=object)

    return edit


def _truncate(good: Path, bad: Path) -> None:
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])


def _hdf5_signature_then_garbage(good: Path, bad: Path) -> None:
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(0).bytes(4096))


def _copy_then(fn: Callable[[h5py.File], None]):
    def make(good: Path, bad: Path) -> None:
        bad.write_bytes(good.read_bytes())
        with h5py.File(bad, "r+") as handle:
            fn(handle)

    return make


def _huge_dense_x(handle: h5py.File) -> None:
    """Replace rna X by an unallocated dense dataset declaring 600 × 2**31 float32 (4.7 TiB)."""
    n_obs = handle["mod/rna/X"].attrs["shape"][0]
    del handle["mod/rna/X"]
    X = handle["mod/rna"].create_dataset("X", shape=(n_obs, 2**31), dtype="f4", chunks=(1, 1 << 20))
    X.attrs["encoding-type"], X.attrs["encoding-version"] = "array", "0.2.0"


def _declared_shape(handle: h5py.File) -> None:
    handle["mod/rna/X"].attrs["shape"] = np.array([handle["mod/rna/X"].attrs["shape"][0], 2**40])


def _short_indptr(handle: h5py.File) -> None:
    indptr = handle["mod/atac/X/indptr"][:]
    del handle["mod/atac/X/indptr"]
    handle["mod/atac/X"].create_dataset("indptr", data=indptr[:-10])


H5MU_CASES = [
    Case(
        "h5mu-truncated",
        "h5mu",
        "a .h5mu cut to half its bytes (a copy that was interrupted)",
        "multiome",
        "path",
        _raw(_truncate),
    ),
    Case(
        "h5mu-empty-file",
        "h5mu",
        "a zero-byte file",
        "multiome",
        "HDF5 signature",
        _raw(lambda good, bad: bad.write_bytes(b"")),
    ),
    Case(
        "h5mu-hdf5-signature-then-garbage",
        "h5mu",
        "the HDF5 signature followed by random bytes",
        "multiome",
        "readable HDF5",
        _raw(_hdf5_signature_then_garbage),
    ),
    Case(
        "h5mu-is-a-directory",
        "h5mu",
        "the dataset path names a folder",
        "multiome",
        "not a regular file",
        lambda env: _dataset_run(_mkdir(env.folder / "folder.h5mu")),
    ),
    Case(
        "h5mu-missing",
        "h5mu",
        "the dataset path does not exist",
        "multiome",
        "no file at",
        lambda env: _dataset_run(env.folder / "nowhere.h5mu"),
    ),
    Case(
        "rna-x-bool",
        "h5mu",
        "rna counts stored as booleans (wrong dtype)",
        "multiome",
        "numeric",
        _edit(_set_x("rna", lambda x: x > 0, sparse=False)),
    ),
    Case(
        "rna-x-inf",
        "h5mu",
        "an infinite rna count",
        "multiome",
        "NaN/inf",
        _edit(_set_x("rna", lambda x: _put(x, (3, 2), np.inf))),
    ),
    Case(
        "atac-x-negative-dense",
        "h5mu",
        "a negative atac count in a dense matrix",
        "multiome",
        "non-negative",
        _edit(_set_x("atac", lambda x: _put(x, (0, 5), -3), sparse=False)),
    ),
    Case(
        "rna-no-genes",
        "h5mu",
        "an empty rna modality (cells but no genes)",
        "multiome",
        "at least one cell and one feature",
        _edit(_subset(mod_cols={"rna": slice(0, 0)})),
    ),
    Case(
        "zero-cells",
        "h5mu",
        "both modalities with zero cells",
        "multiome",
        "at least one cell and one feature",
        _edit(_subset(rows=slice(0, 0))),
    ),
    Case(
        "duplicate-cell-names",
        "h5mu",
        "two cells with the same name in both modalities",
        "multiome",
        "unique cell names",
        _edit(_duplicate_cells),
    ),
    Case("gene-empty-name", "h5mu", "a gene named ''", "multiome", "empty names", _edit(_rename_gene(""))),
    Case(
        "gene-slash",
        "h5mu",
        "a gene named 'HLA/A' (path separator)",
        "multiome",
        "'HLA/A'",
        _edit(_rename_gene("HLA/A")),
    ),
    Case(
        "gene-path-traversal",
        "h5mu",
        "a gene named '../../x'",
        "multiome",
        "'../../x'",
        _edit(_rename_gene("../../x")),
    ),
    Case(
        "gene-newline",
        "h5mu",
        "a gene name with a newline",
        "multiome",
        "control characters",
        _edit(_rename_gene("IL\n2")),
    ),
    Case(
        "gene-sql-injection",
        "h5mu",
        'a gene named "x\'; DROP TABLE predictions; --"',
        "multiome",
        "quotes",
        _edit(_rename_gene("x'; DROP TABLE predictions; --")),
    ),
    Case(
        "gene-equals",
        "h5mu",
        "a gene named 'IL=2' (the hive key=value separator)",
        "multiome",
        "'IL=2'",
        _edit(_rename_gene("IL=2")),
    ),
    Case(
        "gene-glob",
        "h5mu",
        "a gene named 'IL*' (a DuckDB glob would read other genes)",
        "multiome",
        "glob characters",
        _edit(_rename_gene("IL*")),
    ),
    Case(
        "gene-hidden-dot",
        "h5mu",
        "a gene named '.IL2' (a hidden folder)",
        "multiome",
        "not starting with '.'",
        _edit(_rename_gene(".IL2")),
    ),
    Case(
        "gene-zero-width-space",
        "h5mu",
        "unicode: a zero-width space inside a gene name",
        "multiome",
        "U+200B",
        _edit(_rename_gene("IL\u200b2")),
    ),
    Case(
        "gene-bidi-override",
        "h5mu",
        "unicode: a right-to-left override inside a gene name",
        "multiome",
        "U+202E",
        _edit(_rename_gene("IL\u202e2")),
    ),
    Case(
        "gene-unicode-decomposed",
        "h5mu",
        "unicode: a decomposed (NFD) accent in a gene name",
        "multiome",
        "NFC",
        _edit(_rename_gene("CAFE\u0301")),
    ),
    Case(
        "peak-huge-coordinate",
        "h5mu",
        "a peak coordinate of 20 digits (overflows int64)",
        "multiome",
        "at most 12",
        _edit(_rename_peak("chr1:1-99999999999999999999")),
    ),
    Case(
        "peak-unicode-digits",
        "h5mu",
        "unicode: a peak with Arabic-Indic digits",
        "multiome",
        "ASCII digits",
        _edit(_rename_peak("chr1:\u0661\u0660\u0660-\u0662\u0660\u0660")),
    ),
    Case(
        "peak-sql-quote",
        "h5mu",
        "a peak whose chromosome holds a quote and SQL comment",
        "multiome",
        "quotes",
        _edit(_rename_peak("chr1';--:100-200")),
    ),
    Case(
        "x-declared-petabytes",
        "h5mu",
        "rna X declares 4.7 TiB of unwritten data (enormous declared size)",
        "multiome",
        "declared size backed by stored data",
        _raw(_copy_then(_huge_dense_x)),
    ),
    Case(
        "x-declared-shape-mismatch",
        "h5mu",
        "sparse rna X declares 2**40 genes but var has 37",
        "multiome",
        "as its obs and var declare",
        _raw(_copy_then(_declared_shape)),
    ),
    Case(
        "x-sparse-indptr-short",
        "h5mu",
        "sparse atac X with a truncated index-pointer array",
        "multiome",
        "consistent with its shape",
        _raw(_copy_then(_short_indptr)),
    ),
    Case(
        "motif-names-duplicated",
        "h5mu",
        "TF motif names listed twice",
        "multiome",
        "unique TF names",
        _edit(_motif_names(lambda t: t[:3] + t[:1])),
    ),
    Case(
        "motif-names-slash",
        "h5mu",
        "a TF motif name with '/' ('FOS/JUN')",
        "multiome",
        "'FOS/JUN'",
        _edit(_motif_names(lambda t: t[:3] + ["FOS/JUN"])),
    ),
]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# ============================================================================ PKN file


def _pkn_run(path: Path, **config) -> dict:
    return {
        "selection": ["pkn_edges"],
        "run_config": {"ops": {"pkn_edges": {"config": {"source": "file", "path": str(path), **config}}}},
    }


def _pkn_text(filename: str, text: str | bytes, gz: bool = False, **config):
    def build(env: Env) -> dict:
        path = env.folder / filename
        data = text.encode() if isinstance(text, str) else text
        path.write_bytes(gzip.compress(data)[: max(20, len(gzip.compress(data)) // 2)] if gz else data)
        return _pkn_run(path, **config)

    return build


def _tsv(*rows: str) -> str:
    return "source\ttarget\tsign\n" + "".join(r.replace(" ", "\t") + "\n" for r in rows)


PKN_CASES = [
    Case(
        "pkn-cycles-only",
        "pkn",
        "every node above the inputs is on a cycle (no root)",
        "pkn_edges",
        "nodes without outgoing edges",
        _pkn_text("cycles.tsv", _tsv("IL2_gene A 1", "A B 1", "B C 1", "C A 1")),
    ),
    Case(
        "pkn-no-path-to-root",
        "pkn",
        "no input reaches the configured root",
        "pkn_edges",
        "reaches the root",
        _pkn_text("island.tsv", _tsv("IL2_gene A 1", "A B 1", "C ROOT 1"), root="ROOT"),
    ),
    Case(
        "pkn-root-not-in-network",
        "pkn",
        "the configured root is not a node",
        "pkn_edges",
        "is not a node",
        _pkn_text("noroot.tsv", _tsv("IL2_gene A 1", "A R 1"), root="TCR"),
    ),
    Case(
        "pkn-unknown-columns",
        "pkn",
        "a CSV with columns from,to,weight",
        "pkn_edges",
        "unknown columns",
        _pkn_text("cols.csv", "from,to,weight\nIL2_gene,A,1\nA,R,1\n"),
    ),
    Case(
        "pkn-wrong-separator",
        "pkn",
        "a .csv file that is tab-separated",
        "pkn_edges",
        "separator",
        _pkn_text("tabs.csv", _tsv("IL2_gene A 1", "A R 1")),
    ),
    Case(
        "pkn-semicolon-separator",
        "pkn",
        "a .csv file separated by semicolons",
        "pkn_edges",
        "source;target;sign",
        _pkn_text("semi.csv", "source;target;sign\nIL2_gene;A;1\nA;R;1\n"),
    ),
    Case(
        "pkn-bad-sign",
        "pkn",
        "a sign column holding 'activates'",
        "pkn_edges",
        "+1 or -1",
        _pkn_text("sign.tsv", _tsv("IL2_gene A activates", "A R 1")),
    ),
    Case("pkn-empty-file", "pkn", "a zero-byte PKN file", "pkn_edges", "empty", _pkn_text("empty.tsv", "")),
    Case(
        "pkn-header-only",
        "pkn",
        "a header and no edges",
        "pkn_edges",
        "no edges",
        _pkn_text("header.tsv", "source\ttarget\tsign\n"),
    ),
    Case(
        "pkn-binary-garbage",
        "pkn",
        "random bytes named .tsv",
        "pkn_edges",
        "text",
        _pkn_text("garbage.tsv", np.random.default_rng(1).bytes(2048)),
    ),
    Case(
        "pkn-truncated-gzip",
        "pkn",
        "a .tsv.gz cut in half",
        "pkn_edges",
        "gzip",
        _pkn_text("cut.tsv.gz", _tsv(*[f"G{i}_gene A 1" for i in range(200)], "A R 1"), gz=True),
    ),
    Case(
        "pkn-self-loop",
        "pkn",
        "an edge from a node to itself",
        "pkn_edges",
        "self-loop",
        _pkn_text("loop.tsv", _tsv("IL2_gene A 1", "A A 1", "A R 1")),
    ),
    Case(
        "pkn-both-signs",
        "pkn",
        "one edge given with both signs",
        "pkn_edges",
        "both signs",
        _pkn_text("signs.tsv", _tsv("IL2_gene A 1", "IL2_gene A -1", "A R 1")),
    ),
    Case(
        "pkn-missing-file",
        "pkn",
        "the PKN path does not exist",
        "pkn_edges",
        "does not exist",
        lambda env: _pkn_run(env.folder / "nowhere.tsv"),
    ),
    Case(
        "pkn-sif-four-columns",
        "pkn",
        "a SIF line with four fields",
        "pkn_edges",
        "3 columns",
        _pkn_text("four.sif", "IL2_gene 1 A extra\nA 1 R extra\n"),
    ),
    Case(
        "pkn-nul-in-name",
        "pkn",
        "a node name with a NUL byte",
        "pkn_edges",
        "control",
        _pkn_text("nul.tsv", _tsv("IL2_gene A\x00B 1", "A\x00B R 1")),
    ),
    Case(
        "pkn-empty-node-name",
        "pkn",
        "an edge with an empty source",
        "pkn_edges",
        "empty node name",
        _pkn_text("blank.tsv", "source\ttarget\tsign\n\tA\t1\nA\tR\t1\n"),
    ),
    Case(
        "pkn-inputs-not-measured",
        "pkn",
        "every input gene is absent from the RNA",
        "pkn_edges",
        "measured",
        _pkn_text("unmeasured.tsv", _tsv("NOTAGENE_gene A 1", "A R 1")),
    ),
    Case(
        "pkn-input-with-in-edges",
        "pkn",
        "an input gene node that has an incoming edge",
        "pkn_edges",
        "incoming edges",
        _pkn_text("fed.tsv", _tsv("IL2_gene A 1", "A IL2_gene 1", "A R 1")),
    ),
    Case(
        "pkn-unknown-format",
        "pkn",
        "a PKN named .xlsx",
        "pkn_edges",
        "unknown format",
        _pkn_text("net.xlsx", _tsv("IL2_gene A 1")),
    ),
]


# ============================================================================ run configuration


def _op_config(op: str, selection: list[str], partitioned: bool = False, **config):
    def build(env: Env) -> dict:
        run = {"selection": selection, "run_config": {"ops": {op: {"config": config}}}}
        if partitioned:
            run["partition_key"] = env.genes[0]
        return run

    return build


def _train(**config):
    return _op_config("gene_models", MODEL_TABLES, partitioned=True, **config)


def _kpnn(**config):
    return _op_config("kpnn", KPNN_TABLES, **config)


CONFIG_CASES = [
    Case(
        "train-epochs-zero",
        "config",
        "TrainingConfig.epochs = 0",
        "gene_models",
        "TrainConfig.epochs",
        _train(epochs=0),
    ),
    Case(
        "train-lr-negative",
        "config",
        "TrainingConfig.lr = -0.1",
        "gene_models",
        "TrainConfig.lr",
        _train(lr=-0.1),
    ),
    Case(
        "train-lr-nan",
        "config",
        "TrainingConfig.lr = NaN",
        "gene_models",
        "TrainConfig.lr",
        _train(lr=float("nan")),
    ),
    Case(
        "train-dropout-one",
        "config",
        "TrainingConfig.dropout = 1.0",
        "gene_models",
        "TrainConfig.dropout",
        _train(dropout=1.0),
    ),
    Case(
        "train-batch-size-zero",
        "config",
        "TrainingConfig.batch_size = 0",
        "gene_models",
        "TrainConfig.batch_size",
        _train(batch_size=0),
    ),
    Case(
        "train-patience-negative",
        "config",
        "TrainingConfig.scheduler_patience = -1",
        "gene_models",
        "TrainConfig.scheduler_patience",
        _train(scheduler_patience=-1),
    ),
    Case(
        "train-epochs-wrong-type",
        "config",
        "TrainingConfig.epochs = 'ten' (wrong type)",
        "gene_models",
        "epochs",
        _train(epochs="ten"),
    ),
    Case(
        "train-unknown-key",
        "config",
        "a misspelt training key 'epoch'",
        "gene_models",
        "epoch",
        _train(epoch=1),
    ),
    Case(
        "metacell-n-negative",
        "config",
        "MetacellConfig.n_metacells = -1 (0 means one per ~50 cells)",
        "metacell_multiome",
        "n_metacells",
        _op_config("metacell_multiome", ["metacell_multiome"], n_metacells=-1),
    ),
    Case(
        "metacell-train-fraction",
        "config",
        "MetacellConfig.train_fraction = 1.5",
        "metacell_multiome",
        "train_fraction",
        _op_config("metacell_multiome", ["metacell_multiome"], train_fraction=1.5),
    ),
    Case("kpnn-lr-negative", "config", "KPNNTrainingConfig.lr = -1", "kpnn", "KPNNConfig.lr", _kpnn(lr=-1.0)),
    Case(
        "kpnn-dropout-one",
        "config",
        "KPNNTrainingConfig.dropout = 1.0",
        "kpnn",
        "KPNNConfig.dropout",
        _kpnn(dropout=1.0),
    ),
    Case("kpnn-one-fold", "config", "KPNNTrainingConfig.n_folds = 1", "kpnn", "n_folds", _kpnn(n_folds=1)),
    Case(
        "kpnn-max-cells-negative",
        "config",
        "KPNNTrainingConfig.max_cells = -5",
        "kpnn",
        "max_cells",
        _kpnn(max_cells=-5),
    ),
    Case(
        "pkn-source-unknown",
        "config",
        "PKNConfig.source = 'internet'",
        "pkn_edges",
        "source",
        _op_config("pkn_edges", ["pkn_edges"], source="internet"),
    ),
    Case(
        "pkn-missing-inputs-unknown",
        "config",
        "PKNConfig.missing_inputs = 'maybe'",
        "pkn_edges",
        "missing_inputs",
        _op_config("pkn_edges", ["pkn_edges"], missing_inputs="maybe"),
    ),
    Case(
        "performance-history-gene-unknown",
        "config",
        "PerformanceConfig.history_gene = 'NOT_A_GENE'",
        "model_performance",
        "history_gene",
        _op_config("model_performance", ["model_performance"], history_gene="NOT_A_GENE"),
    ),
    Case(
        "dataset-preset-unknown",
        "config",
        "DatasetResource.preset = 'huge'",
        "multiome",
        "preset",
        lambda env: {"selection": ["multiome"], "dataset": DatasetResource(preset="huge")},
    ),
]

# ============================================================================ files that must load
# Real files as other tools write them: each must load through the whole dataset group.


@dataclass(frozen=True)
class LoadCase:
    name: str
    what: str  # one line for RELIABILITY.md
    edit: Callable  # MuData -> None (in place)


def _signed_distances(m):
    """ArchR/Signac-style links: negative distance upstream (peak midpoint before the TSS)."""
    p2g = pd.DataFrame(m.uns["peak_to_gene"])
    mid = p2g["peak"].str.extract(r":(\d+)-(\d+)$").astype(np.int64).mean(axis=1)
    tss = m["rna"].var["tss"].reindex(p2g["gene"]).to_numpy()
    p2g["distance"] = np.where(mid.to_numpy() < tss, -1, 1) * p2g["distance"].to_numpy()
    m.uns["peak_to_gene"] = p2g


def _spell_peaks(var_sep: tuple[str, str], links_sep: tuple[str, str] | None = None):
    """Rename every peak ``chrom{a}start{b}end`` in atac.var_names and (``links_sep``, default
    the same) in peak_to_gene."""

    def spell(names, sep):
        return [re.sub(r"^(.+):(\d+)-(\d+)$", rf"\1{sep[0]}\2{sep[1]}\3", n) for n in names]

    def edit(m):
        m.mod["atac"].var_names = spell(m["atac"].var_names, var_sep)
        p2g = pd.DataFrame(m.uns["peak_to_gene"])
        p2g["peak"] = spell(p2g["peak"], links_sep or var_sep)
        m.uns["peak_to_gene"] = p2g

    return edit


def _counts_as(dtype, sparse: bool = True):
    def edit(m):
        for mod in ("rna", "atac"):
            x = m[mod].X
            x = (x.toarray() if sp.issparse(x) else np.asarray(x)).astype(dtype)
            m.mod[mod].X = sp.csr_matrix(x) if sparse else x

    return edit


LOAD_CASES = [
    LoadCase("p2g-signed-distance", "peak_to_gene distances signed (negative upstream)", _signed_distances),
    LoadCase("peaks-signac-spelling", "peaks named `chr1-100-200` (Signac)", _spell_peaks(("-", "-"))),
    LoadCase("peaks-archr-spelling", "peaks named `chr1_100_200` (ArchR exports)", _spell_peaks(("_", "_"))),
    LoadCase(
        "peaks-spelled-two-ways",
        "var_names `chr1-100-200` but peak_to_gene `chr1:100-200`",
        _spell_peaks(("-", "-"), (":", "-")),
    ),
    LoadCase("counts-float-integers", "counts stored as float64 holding integers", _counts_as(np.float64)),
    LoadCase(
        "counts-int32-dense", "counts stored as a dense int32 matrix", _counts_as(np.int32, sparse=False)
    ),
]


CORPUS: list[Case] = [*H5MU_CASES, *PKN_CASES, *CONFIG_CASES]
CASES: dict[str, Case] = {c.name: c for c in CORPUS}
assert len(CASES) == len(CORPUS), "corpus case names must be unique"


def describe() -> list[str]:
    """One markdown bullet per case, as RELIABILITY.md lists them, then the bad datasets that
    ``test_dataset_assets.py`` already runs through the same asset (not repeated here)."""
    from regnet_assets_tests.assets.test_dataset_assets import BAD_DATASETS

    lines = [
        f"- `{c.name}` ({c.kind}): {c.what} → fails at `{c.step}`, message names “{c.expect}”"
        + (f" — KNOWN GAP: {c.known_gap}" if c.known_gap else "")
        for c in CORPUS
    ]
    lines += [f"- `{c.name}` (must load): {c.what} → the whole dataset group succeeds" for c in LOAD_CASES]
    earlier = ", ".join(f"`{name}`" for name in BAD_DATASETS)
    lines.append(
        f"- also, in `test_dataset_assets.py` ({len(BAD_DATASETS)} datasets + non-HDF5 and "
        f"AnnData files): {earlier}"
    )
    return lines


def build(case: Case, env: Env) -> dict[str, Any]:
    return case.build(env)


RELIABILITY_MD = Path(__file__).resolve().parents[1] / "RELIABILITY.md"
START, END = "<!-- corpus:start -->", "<!-- corpus:end -->"


def documented_cases(path: Path = RELIABILITY_MD) -> list[str]:
    """The bullets between the corpus markers of RELIABILITY.md."""
    text = path.read_text(encoding="utf-8")
    body = text[text.index(START) + len(START) : text.index(END)]
    return [line for line in body.strip().splitlines() if line.strip()]


def write_documented_cases(path: Path = RELIABILITY_MD) -> None:
    """Rewrite the corpus section of RELIABILITY.md from the corpus."""
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(head + START + "\n" + "\n".join(describe()) + "\n" + END + tail, encoding="utf-8")


if __name__ == "__main__":
    write_documented_cases()
    print(f"wrote {len(CORPUS)} cases to {RELIABILITY_MD}")
