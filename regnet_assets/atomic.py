"""Atomic file writes, shared by every layer that writes results.

The content goes to a hidden temporary file in the target's folder, is fsync'd, and is renamed
over the target with ``os.replace``: a killed process leaves the old file or the new one, never a
torn file, and the hidden name never matches the ``*.parquet`` globs that readers use.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object], suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_path)``, then rename the temporary file over ``path``; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}{suffix}"
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
