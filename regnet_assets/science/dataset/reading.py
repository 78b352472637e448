"""Read a ``.h5mu`` dataset (DESIGN §2), turning wrong-file mistakes into a :class:`DatasetError`.

Sizes and cell names are checked in the HDF5 file before mudata reads it, so a file that declares
more data than it stores, or duplicate cells, fails with the field named instead of obscurely.
"""

from __future__ import annotations

import gc
import warnings
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import h5py
import mudata
import numpy as np
import pandas as pd

__all__ = ["DatasetError", "check_h5mu", "quiet_mudata", "read_multiome", "require_modality"]


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
    """mudata 0.3 emits a FutureWarning on every update() (reads and writes call it); it is
    noise for our users."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def read_multiome(path, backed: bool = False) -> mudata.MuData:
    """Read a ``.h5mu`` file, turning the usual wrong-file mistakes into a :class:`DatasetError`.

    ``backed=True`` leaves the count matrices on disk (annotations, ``uns`` and layers are read):
    for steps that need only names, coordinates, sequences or tables, which on a 10x-sized file
    is a few seconds and ~1 GB instead of ~20 s and the whole matrices.
    """
    path = Path(path)
    check_h5mu(path)
    if not backed:
        # An earlier MuData (the previous step's, in one process) often survives in anndata's
        # reference cycles until the cyclic collector runs: collect it before reading another,
        # or a 10x-sized dataset is in memory twice (measured: 10.4 -> 6.7 GB peak).
        gc.collect()
    try:
        with quiet_mudata():
            return mudata.read_h5mu(path, backed=True if backed else None)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a malformed file to the user
        raise DatasetError(
            "path", expected="a file mudata can read", found=f"{type(exc).__name__}: {exc}"
        ) from exc


def check_h5mu(path, modalities: tuple[str, ...] = ()) -> None:
    """The checks that need only the HDF5 header, not the data: the file, its ``mod`` group, the
    given ``modalities``, declared sizes and unique cells. Seconds even on a large file, so the
    UI's launch can run them (``defs/launch_check.py``); raises :class:`DatasetError`."""
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
                for name in modalities if isinstance(handle["mod"], h5py.Group) else ():
                    require_modality(SimpleNamespace(mod=handle["mod"]), name)
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


def require_modality(mdata, name):
    """``mdata.mod[name]``, or a :class:`DatasetError` listing the modalities there are."""
    if name not in mdata.mod:
        raise DatasetError(
            f"mod['{name}']",
            expected=f"a '{name}' modality",
            found=f"modalities {sorted(mdata.mod)}",
        )
    return mdata.mod[name]
