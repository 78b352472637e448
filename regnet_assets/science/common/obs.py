"""The one obs-column lookup of a MuData, with one precedence.

MuData keeps per-cell annotations in the global ``obs``, in each modality's ``obs`` and, after
``mdata.update()``, in prefixed global copies (``rna:name``). Every stage finds a column here.
"""

from __future__ import annotations

import pandas as pd


def obs_column(mdata, name: str, index: pd.Index | None = None) -> pd.Series | None:
    """Return obs column ``name`` aligned to ``index`` (default ``mdata.obs_names``), or ``None``.

    Looked up in this order: global ``mdata.obs[name]``; each modality's own ``obs[name]``
    (rna, then atac, then the others), read directly so it works whether or not
    ``mdata.update()`` has run; a global column prefixed by a modality (``rna:name``).
    """
    index = mdata.obs_names if index is None else index
    mods = sorted(mdata.mod, key=lambda m: (m != "rna", m != "atac", m))
    sources = [(mdata.obs, name)] + [(mdata.mod[m].obs, name) for m in mods]
    sources += [(mdata.obs, f"{m}:{name}") for m in mods]
    for frame, col in sources:
        if col in frame.columns:
            values = frame[col]
            if not frame.index.equals(index):
                values = values.reindex(index)
            return values.rename(name)
    return None
