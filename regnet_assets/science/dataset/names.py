"""Naming rules of the dataset contract: gene, peak and TF names, and peak coordinates.

Peaks may be spelled ``chr1:100-200`` (10x Cell Ranger ARC), ``chr1-100-200`` (Signac) or
``chr1_100_200`` (some ArchR exports); the user's spelling stays the peak's name everywhere.

Names become partition keys (folder names ``gene=<name>``), DuckDB glob paths and SQL string values
downstream, so anything that could escape a path, act as a glob or end a SQL string is refused here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import numpy as np
import pandas as pd

from regnet_assets.science.dataset.reading import DatasetError

__all__ = ["parse_peak_names", "canonical_peak_names"]

# ASCII digits only (``\d`` would accept other scripts' digits) and at most 12 of them: a
# declared coordinate must fit int64 (chromosomes are < 3e9 bp). The chromosome is greedy, so in
# ``chrUn_KI270302v1_100_200`` the last two numbers are the coordinates.
_PEAK_RE = re.compile(r"^([^:\s]+)(?::([0-9]{1,12})-|[-_]([0-9]{1,12})[-_])([0-9]{1,12})$")
# Names become partition keys (folder names ``gene=<name>``), DuckDB glob paths and SQL string
# values downstream, so what could escape a path, act as a glob, end a SQL string or be mistaken
# for the hive ``key=value`` separator is banned up front (``storage.validate_key`` agrees).
_BAD_NAME_RE = re.compile(r"[/\\\x00-\x1f\x7f'\"`;=*?\[\]{}]|\.\.")
_BAD_NAME_TEXT = "'/', '\\', '..', quotes, ';', '=', glob characters (* ? [ ] { }), NUL or control characters"
# Invisible, unassigned and private-use characters and line/paragraph separators: two names that
# print the same must not be two different genes (or folders).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


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


def _peak_parts(names: pd.Index) -> pd.DataFrame:
    """(chrom, start, end) per name as strings, NaN where the name is not a peak spelling."""
    parts = names.to_series().str.extract(_PEAK_RE)
    return pd.DataFrame({"chrom": parts[0], "start": parts[1].fillna(parts[2]), "end": parts[3]})


def parse_peak_names(names: Iterable[str], field: str = "mod['atac'].var_names") -> pd.DataFrame:
    """Split peak names (any spelling above) into a DataFrame (chrom, start, end) indexed by name."""
    names = pd.Index(names).astype(str) if len(pd.Index(names)) else pd.Index([], dtype=object)
    parts = _peak_parts(names)
    bad = parts["chrom"].isna()
    if bad.any():
        raise DatasetError(
            field,
            expected="peak names like 'chr1:1000-1256', 'chr1-1000-1256' or 'chr1_1000_1256' "
            "(ASCII digits, at most 12 per coordinate)",
            found=f"{int(bad.sum())} unparseable names, first {names[bad.to_numpy()][0]!r}",
        )
    start = parts["start"].astype(np.int64).to_numpy()
    end = parts["end"].astype(np.int64).to_numpy()
    inverted = start >= end
    if inverted.any():
        raise DatasetError(
            field,
            expected="start < end in every peak name",
            found=f"{int(inverted.sum())} peaks, first {names[inverted][0]!r}",
        )
    return pd.DataFrame(
        {"chrom": parts["chrom"].to_numpy(dtype=object), "start": start, "end": end}, index=names
    )


def canonical_peak_names(names: Iterable[str]) -> pd.Index:
    """The ``chrom:start-end`` spelling of each peak name (None where a name is no peak), so two
    tools' spellings of the same peak can be matched."""
    parts = _peak_parts(pd.Index(list(names), dtype=object).astype(str))
    canon = parts["chrom"] + ":" + parts["start"].str.lstrip("0").replace("", "0") + "-"
    canon = canon + parts["end"].str.lstrip("0").replace("", "0")
    return pd.Index(canon.where(parts["chrom"].notna(), None).to_numpy(dtype=object))
