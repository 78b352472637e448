"""Figures without pyplot: ``Figure`` objects hold no global state, so assets running in
threads cannot leak or mix figures; :func:`png_bytes` renders one for the UI and the files."""

from __future__ import annotations

import io

from matplotlib.figure import Figure


def figure(*, nrows: int = 1, ncols: int = 1, figsize=(5.0, 3.5), dpi: int = 100, **kwargs):
    """A new ``(Figure, axes)``: ``fig.subplots`` semantics (``squeeze=False`` gives a 2-D array)."""
    fig = Figure(figsize=figsize, dpi=dpi)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes, tightly cropped."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()
