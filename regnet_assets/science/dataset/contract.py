"""Read and validate the multiome dataset contract (DESIGN §2).

Everything downstream trusts what passes :func:`validate_multiome`, so each check fails with a
:class:`DatasetError` that names the offending field and says what was expected and found:
a user fixing their file should not have to read a traceback.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

import h5py
import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp

from regnet_assets.science.common.obs import obs_column

__all__ = [
    "DatasetError",
    "read_multiome",
    "validate_multiome",
    "peak_to_gene",
    "modelable_genes",
    "parse_peak_names",
    "quiet_mudata",
]

P2G_FIELD = "uns['peak_to_gene']"
P2G_COLUMNS = ("gene", "peak", "distance")
# ASCII digits only (``\d`` would accept other scripts' digits) and at most 12 of them: a
# declared coordinate must fit int64 (chromosomes are < 3e9 bp).
_PEAK_RE = re.compile(r"^([^:\s]+):([0-9]{1,12})-([0-9]{1,12})$")
# Names become partition keys (folder names ``gene=<name>``), DuckDB glob paths and SQL string
# values downstream, so what could escape a path, act as a glob, end a SQL string or be mistaken
# for the hive ``key=value`` separator is banned up front (``storage.validate_key`` agrees).
_BAD_NAME_RE = re.compile(r"[/\\\x00-\x1f\x7f'\"`;=*?\[\]{}]|\.\.")
_BAD_NAME_TEXT = "'/', '\\', '..', quotes, ';', '=', glob characters (* ? [ ] { }), NUL or control characters"
# Invisible, unassigned and private-use characters and line/paragraph separators: two names that
# print the same must not be two different genes (or folders).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_BAD_SEQ_RE = re.compile(r"[^ACGTN]", re.IGNORECASE)
_DENSE_CHUNK = 1 << 22  # elements per chunk when scanning dense X: bounded temporaries


class DatasetError(ValueError):
    """A dataset breaks the contract; ``field`` names where (e.g. ``"mod['atac'].var_names"``)."""

    def __init__(self, field: str, message: str | None = None, *, expected=None, found=None):
        if message is None:
            message = f"expected {expected}; found {found}"
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@contextmanager
def quiet_mudata():
    """mudata 0.3 emits a FutureWarning on every update(); it is noise for our users."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


# --------------------------------------------------------------------------------------------
# reading


def read_multiome(path) -> mudata.MuData:
    """Read a ``.h5mu`` file, turning the usual wrong-file mistakes into a :class:`DatasetError`."""
    path = Path(path)
    if not path.exists():
        raise DatasetError("path", expected="an existing .h5mu file", found=f"no file at {path}")
    if not path.is_file():
        raise DatasetError("path", expected="a .h5mu file", found=f"{path} is not a regular file")
    if not h5py.is_hdf5(path):
        raise DatasetError("path", expected="an HDF5 (.h5mu) file", found=f"{path} has no HDF5 signature")
    try:
        with h5py.File(path, "r") as handle:
            keys = set(handle.keys())
            if "mod" in keys:
                _check_declared_sizes(handle)
                _check_unique_cells(handle)
    except OSError as exc:
        raise DatasetError("path", expected="a readable HDF5 file", found=f"{exc}") from exc
    if "mod" not in keys:
        hint = " (it looks like an AnnData .h5ad)" if {"X", "obs", "var"} <= keys else ""
        raise DatasetError(
            "mod",
            expected="a MuData file with a 'mod' group",
            found=f"top-level groups {sorted(keys)}{hint}",
        )
    try:
        with quiet_mudata():
            return mudata.read_h5mu(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a malformed file to the user
        raise DatasetError(
            "path", expected="a file mudata can read", found=f"{type(exc).__name__}: {exc}"
        ) from exc


# A dataset may compress well, but not by more than this (gzip tops out near 1000:1), and a
# declared size above the floor must be backed by stored bytes: this stops a file that declares
# petabytes of fill value from being read into memory.
_MAX_DECLARED_RATIO = 1100
_DECLARED_FLOOR = 1 << 30


def _index_length(group) -> int | None:
    """Rows of an anndata dataframe group, from its declared index dataset (nothing is read)."""
    if not isinstance(group, h5py.Group):
        return None
    index = group.attrs.get("_index")
    if isinstance(index, bytes):
        index = index.decode()
    dset = group.get(index) if isinstance(index, str) else None
    return int(dset.shape[0]) if isinstance(dset, h5py.Dataset) and dset.shape else None


def _check_declared_sizes(handle: h5py.File) -> None:
    """Reject declared sizes that disagree or that no stored data backs, before reading anything."""

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset) or obj.shape is None:
            return
        declared = int(np.prod(obj.shape, dtype=object)) * obj.dtype.itemsize
        if declared > _DECLARED_FLOOR and declared > _MAX_DECLARED_RATIO * obj.id.get_storage_size():
            raise DatasetError(
                name,
                expected="a declared size backed by stored data",
                found=f"shape {obj.shape} declares {declared:,} bytes but "
                f"{obj.id.get_storage_size():,} are stored",
            )

    handle.visititems(visit)
    mods = handle["mod"]
    if not isinstance(mods, h5py.Group):
        return
    for mod, group in mods.items():
        if not isinstance(group, h5py.Group) or "X" not in group:
            continue
        field = f"mod['{mod}'].X"
        n_obs, n_var = _index_length(group.get("obs")), _index_length(group.get("var"))
        X = group["X"]
        sparse = isinstance(X, h5py.Group)
        try:
            shape = tuple(int(v) for v in (X.attrs.get("shape", ()) if sparse else X.shape))
        except (TypeError, ValueError):
            shape = ()
        if len(shape) != 2:
            raise DatasetError(field, expected="a 2-D count matrix", found=f"declared shape {shape}")
        if None not in (n_obs, n_var) and shape != (n_obs, n_var):
            raise DatasetError(
                field,
                expected=f"shape ({n_obs}, {n_var}) as its obs and var declare",
                found=f"declared shape {shape}",
            )
        if not sparse:
            continue
        parts = {k: X.get(k) for k in ("data", "indices", "indptr")}
        if not all(isinstance(v, h5py.Dataset) and v.ndim == 1 for v in parts.values()):
            raise DatasetError(
                field, expected="sparse data, indices and indptr arrays", found=f"members {sorted(X.keys())}"
            )
        major = shape[1] if str(X.attrs.get("encoding-type", "")).startswith("csc") else shape[0]
        nnz = parts["data"].shape[0]
        if (
            parts["indices"].shape[0] != nnz
            or parts["indptr"].shape[0] != major + 1
            or nnz > shape[0] * shape[1]
        ):
            raise DatasetError(
                field,
                expected=f"a sparse matrix consistent with its shape {shape}",
                found=f"{nnz} values, {parts['indices'].shape[0]} indices, "
                f"{parts['indptr'].shape[0]} index pointers",
            )


def _check_unique_cells(handle: h5py.File) -> None:
    """Duplicate cell names make mudata's reader fail obscurely; name them before it runs."""
    mods = handle["mod"]
    if not isinstance(mods, h5py.Group):
        return
    for mod, group in mods.items():
        obs = group.get("obs") if isinstance(group, h5py.Group) else None
        if _index_length(obs) is None:
            continue
        index = obs[
            obs.attrs["_index"] if isinstance(obs.attrs["_index"], str) else obs.attrs["_index"].decode()
        ]
        names = pd.Index(index.asstr()[()] if h5py.check_string_dtype(index.dtype) else index[()])
        if not names.is_unique:
            dup = names[names.duplicated()].unique()
            raise DatasetError(
                f"mod['{mod}'].obs_names",
                expected="unique cell names",
                found=f"{len(dup)} duplicated, e.g. {list(dup[:3])}",
            )


# --------------------------------------------------------------------------------------------
# small helpers


def _hidden_character(name: str) -> str | None:
    """The first invisible/unassigned character of ``name`` as ``U+XXXX``, else None."""
    if name.isascii():
        return None
    for ch in name:
        if unicodedata.category(ch) in _HIDDEN_CATEGORIES:
            return f"U+{ord(ch):04X}"
    return None


def _check_names(names: Iterable, field: str, what: str) -> None:
    """Unique, non-empty, path- and SQL-safe names (they become partition keys and file paths)."""
    index = pd.Index(names)
    if len(index) and not all(isinstance(n, str) for n in index):
        bad = next(n for n in index if not isinstance(n, str))
        raise DatasetError(field, expected=f"{what} as strings", found=f"{bad!r}")
    empty = [n for n in index if n.strip() == ""]
    if empty:
        raise DatasetError(field, expected=f"non-empty {what}", found=f"{len(empty)} empty names")
    unsafe = [n for n in index if _BAD_NAME_RE.search(n)]
    if unsafe:
        raise DatasetError(
            field,
            expected=f"{what} without {_BAD_NAME_TEXT}",
            found=f"{len(unsafe)} such names, first {unsafe[0]!r}",
        )
    dotted = [n for n in index if n.startswith(".")]
    if dotted:
        raise DatasetError(
            field, expected=f"{what} not starting with '.' (hidden folders)", found=f"{dotted[0]!r}"
        )
    padded = [n for n in index if n != n.strip()]
    if padded:
        raise DatasetError(field, expected=f"{what} without surrounding whitespace", found=f"{padded[0]!r}")
    hidden = [(n, c) for n in index if (c := _hidden_character(n))]
    if hidden:
        raise DatasetError(
            field,
            expected=f"{what} without invisible or unassigned unicode characters",
            found=f"{len(hidden)} such names, first {hidden[0][0]!r} has {hidden[0][1]}",
        )
    decomposed = [n for n in index if not n.isascii() and unicodedata.normalize("NFC", n) != n]
    if decomposed:
        raise DatasetError(
            field,
            expected=f"{what} in unicode NFC form (one spelling per name)",
            found=f"{len(decomposed)} names that are not, first {decomposed[0]!r}",
        )
    if not index.is_unique:
        dup = index[index.duplicated()].unique()
        raise DatasetError(
            field,
            expected=f"unique {what}",
            found=f"{len(dup)} duplicated, e.g. {list(dup[:3])}",
        )


def _check_counts(X, field: str) -> None:
    """Raw counts: numeric, finite, non-negative, integer-valued. Sparse: only stored values."""
    if X is None:
        raise DatasetError(field, expected="a count matrix", found="None")
    if sp.issparse(X):
        if X.format not in ("csr", "csc", "coo"):
            X = X.tocsr()
        values = [np.asarray(X.data)]
    elif isinstance(X, np.ndarray):
        flat = np.asarray(X).reshape(-1)  # np.asarray: np.matrix would stay 2-D
        values = (flat[i : i + _DENSE_CHUNK] for i in range(0, flat.size, _DENSE_CHUNK))
    else:
        raise DatasetError(field, expected="a numpy array or scipy sparse matrix", found=type(X).__name__)
    dtype = np.dtype(X.dtype)
    if dtype.kind not in "iuf":
        raise DatasetError(field, expected="a numeric (integer or float) dtype", found=str(dtype))
    for chunk in values:
        if dtype.kind == "f":
            finite = np.isfinite(chunk)
            if not finite.all():
                n = int((~finite).sum())
                raise DatasetError(field, expected="finite counts", found=f"at least {n} NaN/inf values")
        if dtype.kind != "u":
            neg = chunk < 0
            if neg.any():
                raise DatasetError(
                    field,
                    expected="non-negative counts",
                    found=f"{int(neg.sum())} negative values, e.g. {chunk[neg][0]!r}",
                )
        if dtype.kind == "f":
            frac = chunk != np.floor(chunk)
            if frac.any():
                raise DatasetError(
                    field,
                    expected="integer-valued raw counts (not normalised/log data)",
                    found=f"{int(frac.sum())} non-integer values, e.g. {chunk[frac][0]!r}",
                )


def parse_peak_names(names: Iterable[str], field: str = "mod['atac'].var_names") -> pd.DataFrame:
    """Split ``chrom:start-end`` names into a DataFrame (chrom, start, end) indexed by name."""
    names = pd.Index(names).astype(str) if len(pd.Index(names)) else pd.Index([], dtype=object)
    parts = names.to_series().str.extract(_PEAK_RE)
    bad = parts[0].isna()
    if bad.any():
        raise DatasetError(
            field,
            expected="peak names like 'chr1:1000-1256' (ASCII digits, at most 12 per coordinate)",
            found=f"{int(bad.sum())} unparseable names, first {names[bad.to_numpy()][0]!r}",
        )
    start = parts[1].astype(np.int64).to_numpy()
    end = parts[2].astype(np.int64).to_numpy()
    inverted = start >= end
    if inverted.any():
        raise DatasetError(
            field,
            expected="start < end in every peak name",
            found=f"{int(inverted.sum())} peaks, first {names[inverted][0]!r}",
        )
    return pd.DataFrame({"chrom": parts[0].to_numpy(dtype=object), "start": start, "end": end}, index=names)


# --------------------------------------------------------------------------------------------
# peak -> gene links


def _normalise_p2g(table, genes: pd.Index, peaks: pd.Index) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        try:
            table = pd.DataFrame(dict(table))
        except Exception as exc:  # noqa: BLE001
            raise DatasetError(P2G_FIELD, expected="a DataFrame", found=type(table).__name__) from exc
    missing = [c for c in P2G_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(
            P2G_FIELD,
            expected=f"columns {list(P2G_COLUMNS)}",
            found=f"columns {list(map(str, table.columns))} (missing {missing})",
        )
    gene = table["gene"].astype(str).to_numpy(dtype=object)
    peak = table["peak"].astype(str).to_numpy(dtype=object)
    unknown_g = ~pd.Index(gene).isin(genes)
    if unknown_g.any():
        raise DatasetError(
            f"{P2G_FIELD}.gene",
            expected="genes present in mod['rna'].var_names",
            found=f"{int(unknown_g.sum())} rows with unknown genes, first {gene[unknown_g][0]!r}",
        )
    unknown_p = ~pd.Index(peak).isin(peaks)
    if unknown_p.any():
        raise DatasetError(
            f"{P2G_FIELD}.peak",
            expected="peaks present in mod['atac'].var_names",
            found=f"{int(unknown_p.sum())} rows with unknown peaks, first {peak[unknown_p][0]!r}",
        )
    raw = table["distance"]
    numeric = pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw)
    if not numeric and raw.dtype == object:  # e.g. mixed ints/floats read back from uns
        numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in raw)
    if not numeric:
        raise DatasetError(f"{P2G_FIELD}.distance", expected="numeric distances", found=f"dtype {raw.dtype}")
    distance = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(distance) | (distance < 0)
    if bad.any():
        first = raw.to_numpy()[bad][0]
        raise DatasetError(
            f"{P2G_FIELD}.distance",
            expected="finite, non-negative numbers (bp to TSS)",
            found=f"{int(bad.sum())} bad values, first {first!r}",
        )
    out = pd.DataFrame({"gene": gene, "peak": peak, "distance": distance})
    return _sort_p2g(out)


def _sort_p2g(out: pd.DataFrame) -> pd.DataFrame:
    # A gene-peak pair listed twice keeps its shortest distance, as in Cell2Net.
    out = out.sort_values(["gene", "distance", "peak"], kind="mergesort")
    out = out.drop_duplicates(["gene", "peak"], keep="first")
    return out.reset_index(drop=True)


def _derive_p2g(rna_var: pd.DataFrame, peaks: pd.DataFrame, window: int) -> pd.DataFrame:
    """Link a peak to a gene when the peak midpoint is within ±window bp of the TSS."""
    field = "mod['rna'].var['tss']"
    tss = pd.to_numeric(rna_var["tss"], errors="coerce")
    nonnum = tss.isna() & rna_var["tss"].notna()
    if nonnum.any():
        raise DatasetError(
            field,
            expected="numeric TSS positions",
            found=f"{int(nonnum.sum())} non-numeric, first {rna_var['tss'][nonnum].iloc[0]!r}",
        )
    keep = tss.notna().to_numpy() & rna_var["chrom"].notna().to_numpy()
    if (tss[keep] < 0).any():
        raise DatasetError(field, expected="non-negative TSS positions", found="negative values")
    genes = rna_var.index[keep]
    g_chrom = rna_var["chrom"][keep].astype(str).to_numpy()
    g_tss = tss[keep].to_numpy(dtype=np.int64)
    mid = ((peaks["start"].to_numpy() + peaks["end"].to_numpy()) // 2).astype(np.int64)
    p_chrom = peaks["chrom"].to_numpy().astype(str)
    rows_g, rows_p, rows_d = [], [], []
    for chrom in np.intersect1d(np.unique(g_chrom), np.unique(p_chrom)):
        p_idx = np.flatnonzero(p_chrom == chrom)
        order = p_idx[np.argsort(mid[p_idx], kind="stable")]
        sorted_mid = mid[order]
        g_idx = np.flatnonzero(g_chrom == chrom)
        lo = np.searchsorted(sorted_mid, g_tss[g_idx] - window, side="left")
        hi = np.searchsorted(sorted_mid, g_tss[g_idx] + window, side="right")
        counts = hi - lo
        if counts.sum() == 0:
            continue
        # Expand [lo, hi) ranges without a Python loop over genes.
        rep_g = np.repeat(g_idx, counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        pos = np.repeat(lo, counts) + offsets
        p_sel = order[pos]
        rows_g.append(rep_g)
        rows_p.append(p_sel)
        rows_d.append(np.abs(mid[p_sel] - g_tss[rep_g]))
    if rows_g:
        gi, pi, d = (np.concatenate(x) for x in (rows_g, rows_p, rows_d))
    else:
        gi = pi = np.zeros(0, dtype=np.int64)
        d = np.zeros(0)
    out = pd.DataFrame(
        {
            "gene": genes.to_numpy(dtype=object)[gi],
            "peak": peaks.index.to_numpy(dtype=object)[pi],
            "distance": d.astype(np.float64),
        }
    )
    return _sort_p2g(out)


def peak_to_gene(mdata: mudata.MuData, window: int = 500_000) -> pd.DataFrame:
    """The gene–peak link table (gene, peak, distance), sorted by gene then distance.

    Uses ``uns['peak_to_gene']`` when the user supplied one (their links win), else derives
    distance-only links from ``rna.var[['chrom','tss']]`` as Cell2Net does (no correlation test).
    """
    rna, atac = _modality(mdata, "rna"), _modality(mdata, "atac")
    if "peak_to_gene" in mdata.uns:
        return _normalise_p2g(mdata.uns["peak_to_gene"], rna.var_names, atac.var_names)
    if {"chrom", "tss"} <= set(rna.var.columns):
        peaks = parse_peak_names(atac.var_names)
        return _derive_p2g(rna.var, peaks, int(window))
    raise DatasetError(
        f"{P2G_FIELD} or mod['rna'].var[['chrom','tss']]",
        expected="a peak_to_gene table, or gene TSS coordinates to derive it",
        found="neither",
    )


def modelable_genes(
    peak_to_gene: pd.DataFrame, min_peaks: int = 3, gene_order: Sequence[str] | None = None
) -> list[str]:
    """Genes with at least ``min_peaks`` linked peaks: these become the gene partitions.

    Order is stable: ``gene_order`` (pass ``rna.var_names``) when given, else first appearance
    in the table, so partition lists do not reshuffle between runs.
    """
    counts = peak_to_gene.groupby("gene", sort=False)["peak"].nunique()
    keep = counts.index[counts.to_numpy() >= min_peaks]
    if gene_order is None:
        return [str(g) for g in keep]
    wanted = set(keep)
    return [str(g) for g in pd.Index(gene_order).unique() if g in wanted]


# --------------------------------------------------------------------------------------------
# validation


def _modality(mdata, name):
    if name not in mdata.mod:
        raise DatasetError(
            f"mod['{name}']",
            expected=f"a '{name}' modality",
            found=f"modalities {sorted(mdata.mod)}",
        )
    return mdata.mod[name]


def _check_sequences(atac) -> None:
    field = "mod['atac'].var['sequence']"
    seq = atac.var["sequence"]
    if seq.isna().any():
        raise DatasetError(
            field, expected="a sequence for every peak", found=f"{int(seq.isna().sum())} missing"
        )
    if not all(isinstance(s, str) for s in seq):
        raise DatasetError(field, expected="strings", found=f"{seq.dtype} values")
    lengths = seq.str.len().to_numpy()
    if lengths.size and (lengths.min() == 0 or lengths.min() != lengths.max()):
        raise DatasetError(
            field,
            expected="non-empty sequences of one fixed length",
            found=f"lengths from {lengths.min()} to {lengths.max()}",
        )
    if _BAD_SEQ_RE.search("".join(seq)):
        bad = seq[seq.str.contains(_BAD_SEQ_RE)]
        letter = _BAD_SEQ_RE.search(bad.iloc[0]).group(0)
        raise DatasetError(
            field,
            expected="only A/C/G/T/N letters",
            found=f"{len(bad)} peaks, first {bad.index[0]!r} has {letter!r}",
        )


def _check_motifs(atac) -> None:
    has_hits = "motif_hits" in atac.varm
    has_names = "motif_names" in atac.uns
    if not has_hits and not has_names:
        return
    if not has_hits:
        raise DatasetError(
            "mod['atac'].varm['motif_hits']",
            expected="motif hits alongside uns['motif_names']",
            found="names without hits",
        )
    if not has_names:
        raise DatasetError(
            "mod['atac'].uns['motif_names']",
            expected="TF names for the columns of varm['motif_hits']",
            found="hits without names",
        )
    hits = atac.varm["motif_hits"]
    if isinstance(hits, pd.DataFrame):
        hits = hits.to_numpy()
    names = np.asarray(atac.uns["motif_names"]).reshape(-1)
    if hits.ndim != 2 or hits.shape[0] != atac.n_vars or hits.shape[1] != names.size:
        raise DatasetError(
            "mod['atac'].varm['motif_hits']",
            expected=f"shape ({atac.n_vars} peaks, {names.size} motif_names)",
            found=f"shape {tuple(hits.shape)}",
        )
    if not all(isinstance(n, str) and n.strip() for n in names.tolist()):
        raise DatasetError(
            "mod['atac'].uns['motif_names']", expected="non-empty strings", found="other values"
        )
    _check_names(names.tolist(), "mod['atac'].uns['motif_names']", "TF names")
    values = np.asarray(hits.data if sp.issparse(hits) else hits)
    if values.dtype.kind not in "biuf" or not np.isin(values, (0, 1)).all():
        raise DatasetError(
            "mod['atac'].varm['motif_hits']",
            expected="binary 0/1 hits",
            found=f"values outside {{0, 1}} (dtype {values.dtype})",
        )


def validate_multiome(
    mdata: mudata.MuData, groupby: str = "cell_type", min_peaks: int = 3, window: int = 500_000
) -> None:
    """Raise :class:`DatasetError` at the first contract violation; return None if all is well."""
    rna, atac = _modality(mdata, "rna"), _modality(mdata, "atac")
    for name, ad in (("rna", rna), ("atac", atac)):
        if ad.n_obs == 0 or ad.n_vars == 0:
            raise DatasetError(
                f"mod['{name}']",
                expected="at least one cell and one feature",
                found=f"shape {ad.shape}",
            )
        if not ad.obs_names.is_unique:
            raise DatasetError(
                f"mod['{name}'].obs_names",
                expected="unique cell names",
                found=f"{int(ad.obs_names.duplicated().sum())} duplicates",
            )
    only_rna = rna.obs_names.difference(atac.obs_names)
    only_atac = atac.obs_names.difference(rna.obs_names)
    if len(only_rna) or len(only_atac):
        example = list(only_rna[:2]) + list(only_atac[:2])
        raise DatasetError(
            "mod['rna'].obs_names / mod['atac'].obs_names",
            expected="the same cells in both modalities",
            found=f"{len(only_rna)} cells only in rna, {len(only_atac)} only in atac, e.g. {example}",
        )
    _check_names(rna.var_names, "mod['rna'].var_names", "gene names")
    _check_names(atac.var_names, "mod['atac'].var_names", "peak names")
    parse_peak_names(atac.var_names)
    _check_counts(rna.X, "mod['rna'].X")
    _check_counts(atac.X, "mod['atac'].X")

    labels = obs_column(mdata, groupby)
    if labels is None:
        cols = sorted(set(mdata.obs.columns).union(*(set(m.obs.columns) for m in mdata.mod.values())))
        raise DatasetError(
            f"obs['{groupby}']",
            expected=f"a '{groupby}' column in global or per-modality obs",
            found=f"columns {cols}",
        )
    labels = labels.reindex(rna.obs_names)
    if labels.isna().any():
        raise DatasetError(
            f"obs['{groupby}']",
            expected="a label for every cell",
            found=f"{int(labels.isna().sum())} cells without a label",
        )

    if "sequence" in atac.var.columns:
        _check_sequences(atac)
    _check_motifs(atac)

    links = peak_to_gene(mdata, window=window)
    genes = modelable_genes(links, min_peaks=min_peaks)
    if not genes:
        best = int(links.groupby("gene")["peak"].nunique().max()) if len(links) else 0
        raise DatasetError(
            P2G_FIELD if "peak_to_gene" in mdata.uns else "mod['rna'].var[['chrom','tss']]",
            expected=f"at least one gene with >= {min_peaks} linked peaks",
            found=f"at most {best} peaks per gene over {links['gene'].nunique()} linked genes",
        )
