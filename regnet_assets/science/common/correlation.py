"""The one Spearman and Pearson: scipy's, with one NaN rule.

NaN when there are fewer than two pairs or either side is constant (where scipy would warn and
return NaN anyway), so summaries over many genes stay quiet.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def _defined(x: np.ndarray, y: np.ndarray) -> bool:
    return len(x) >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0


def spearman(x, y) -> float:
    """Spearman's rho of ``x`` and ``y`` (scipy), NaN where undefined."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(stats.spearmanr(x, y).statistic) if _defined(x, y) else float("nan")


def pearson(x, y) -> float:
    """Pearson's r of ``x`` and ``y`` (scipy), NaN where undefined."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(stats.pearsonr(x, y).statistic) if _defined(x, y) else float("nan")
