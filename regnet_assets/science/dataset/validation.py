"""Validate the multiome dataset contract (DESIGN §2).

Everything downstream trusts what passes :func:`validate_multiome`, so each check fails with a
:class:`DatasetError` that names the offending field and says what was expected and found:
a user fixing their file should not have to read a traceback.
"""

from __future__ import annotations

import re

import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp

from regnet_assets.science.common.obs import obs_column
from regnet_assets.science.dataset.links import P2G_FIELD, modelable_genes, peak_to_gene
from regnet_assets.science.dataset.names import _check_names, parse_peak_names
from regnet_assets.science.dataset.reading import DatasetError, require_modality

__all__ = ["validate_multiome"]

_BAD_SEQ_RE = re.compile(r"[^ACGTN]", re.IGNORECASE)
_DENSE_CHUNK = 1 << 22  # elements per chunk when scanning dense X: bounded temporaries


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
    rna, atac = require_modality(mdata, "rna"), require_modality(mdata, "atac")
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
