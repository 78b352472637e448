"""Transcription-factor motifs: JASPAR matrices, log-odds PWMs, exact p-value thresholds, scanning.

This re-implements what Cell2Net gets from MOODS (reference/cell2net.md §1, step 7) in plain
numpy/torch so the platform needs no compiled motif scanner:

* log-odds against a flat 0.25 background with a tiny pseudocount (MOODS convention: the
  pseudocount is spread over the four bases in proportion to the background);
* a per-motif score threshold for a p-value, from the exact score distribution of the
  *discretised* matrix under the background, computed by dynamic programming;
* both strands scanned; a sequence hits a motif if any window on either strand reaches it.

Scores are in natural-log units. Scanning uses the same discretised matrix as the threshold
computation, so the p-value of the threshold is exact for what is scanned (not an
approximation of it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

BASES = "ACGT"
BACKGROUND = 0.25
DEFAULT_PSEUDOCOUNT = 1e-4  # the value the reference passes to MOODS
DEFAULT_PVALUE = 5e-5
DEFAULT_RESOLUTION = 1000  # score grid steps per nat for the exact-threshold DP

# byte -> base index (A,C,G,T = 0..3); anything else (N, gaps) -> 4 = "no base", scores 0
_BASE_INDEX = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(BASES):
    _BASE_INDEX[ord(_b)] = _i
    _BASE_INDEX[ord(_b.lower())] = _i
_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


# --------------------------------------------------------------------------------------------
# JASPAR
# --------------------------------------------------------------------------------------------
def _matrix_id_key(matrix_id: str) -> tuple[int, int]:
    """Sort key for IDs like ``MA0072.2``: (base number, version)."""
    match = re.fullmatch(r"[A-Z]+(\d+)\.(\d+)", matrix_id)
    if match is None:
        return (-1, -1)
    return int(match.group(1)), int(match.group(2))


@lru_cache(maxsize=4)
def _all_jaspar_pfms(release: str) -> tuple[tuple[str, str, np.ndarray], ...]:
    """All CORE vertebrate matrices (latest versions) as (NAME, matrix_id, counts), cached.

    Cached because opening pyjaspar's sqlite DB and building Bio.motifs objects takes ~1 s.
    """
    from pyjaspar import jaspardb  # local import: only the scanner needs it

    motifs = jaspardb(release=release).fetch_motifs(
        collection="CORE", tax_group=["vertebrates"], all_versions=False
    )
    rows = []
    for motif in motifs:
        counts = np.array([motif.counts[b] for b in BASES], dtype=np.float64)
        counts.flags.writeable = False  # shared through the cache: nobody may mutate it
        rows.append((motif.name.upper(), motif.matrix_id, counts))
    rows.sort(key=lambda r: (r[0], _matrix_id_key(r[1])))
    return tuple(rows)


def load_jaspar_pfms(
    names: Iterable[str] | None = None, release: str = "JASPAR2024"
) -> dict[str, np.ndarray]:
    """JASPAR CORE vertebrate count matrices, latest version of each, as ``{NAME: (4, width)}``.

    Rows are A, C, G, T. Names are upper-cased so they match gene symbols (JASPAR writes mouse
    style ``Arnt``); heterodimers keep their ``A::B`` names and simply match no gene.
    Several distinct matrices can share a name (e.g. RORA: MA0071.1 and MA0072.2); we keep the
    one with the **highest matrix ID** (base number, then version) — deterministic, and usually
    the more recently curated profile. ``names`` (any case) filters the result; unknown names
    are skipped. The arrays are read-only views of a cached table.
    """
    table: dict[str, np.ndarray] = {}
    for name, _matrix_id, counts in _all_jaspar_pfms(release):
        table[name] = counts  # sorted by ID within a name: the last (highest) one wins
    if names is None:
        return dict(table)
    wanted = [n.upper() for n in names]
    return {n: table[n] for n in dict.fromkeys(wanted) if n in table}


def jaspar_matrix_ids(release: str = "JASPAR2024") -> dict[str, str]:
    """``{NAME: matrix_id}`` for the matrices :func:`load_jaspar_pfms` returns (provenance)."""
    ids: dict[str, str] = {}
    for name, matrix_id, _counts in _all_jaspar_pfms(release):
        ids[name] = matrix_id
    return ids


# --------------------------------------------------------------------------------------------
# PWMs and thresholds
# --------------------------------------------------------------------------------------------
def pwm_log_odds(counts: np.ndarray, pseudocount: float = DEFAULT_PSEUDOCOUNT) -> np.ndarray:
    """Natural-log odds of a (4, width) count matrix against a flat 0.25 background.

    p(b, j) = (n(b, j) + pseudocount * 0.25) / (N(j) + pseudocount), the MOODS convention, so
    the tiny default (1e-4, as in the reference) only keeps unseen bases finite (very negative).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != 4:
        raise ValueError(f"counts must have shape (4, width), got {counts.shape}")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError("counts must be finite and non-negative")
    if pseudocount <= 0 and np.any(counts == 0):
        raise ValueError("pseudocount must be > 0 when a count is zero (log of 0)")
    probs = (counts + pseudocount * BACKGROUND) / (counts.sum(axis=0, keepdims=True) + pseudocount)
    return np.log(probs / BACKGROUND)


def discretise(log_odds: np.ndarray, resolution: int = DEFAULT_RESOLUTION) -> np.ndarray:
    """Round a log-odds matrix to integer steps of 1/resolution nat (what the DP and scan use)."""
    return np.rint(np.asarray(log_odds, dtype=np.float64) * resolution).astype(np.int64)


def _deficit_distribution(int_matrix: np.ndarray, max_deficit: int) -> np.ndarray:
    """P(deficit = d) for d = 0..max_deficit, deficit = best score - score of a random word.

    Working with the deficit (>= 0, additive over columns) makes truncation exact: mass beyond
    ``max_deficit`` can never come back below it, so only the upper tail we need is tracked.
    """
    dist = np.zeros(max_deficit + 1)
    dist[0] = 1.0
    for column in int_matrix.T:
        deficits = column.max() - column
        new = np.zeros_like(dist)
        for d in deficits:
            if d <= max_deficit:
                new[d:] += BACKGROUND * dist[: max_deficit + 1 - d]
        dist = new
    return dist


def score_threshold(log_odds: np.ndarray, pvalue: float, resolution: int = DEFAULT_RESOLUTION) -> float:
    """Smallest achievable score whose upper-tail probability under the background is <= pvalue.

    Exact for the discretised matrix (``discretise(log_odds, resolution)`` / resolution), which
    is what :func:`scan_motifs` scores with; vs. the raw matrix the score differs by at most
    width / (2 * resolution). The distribution is built by DP over columns (each base has
    probability 0.25), tracking only the top of the distribution and widening until the
    p-value is inside it.

    If even the best word is more frequent than ``pvalue`` (short motifs: 4**-width > p), the
    threshold is clamped to the best score, so only best-scoring words hit (at rate 4**-k for
    k informative columns, i.e. above the nominal p) — like MOODS, rather than never hitting.
    """
    if not 0 < pvalue:
        raise ValueError(f"pvalue must be > 0, got {pvalue}")
    int_matrix = discretise(log_odds, resolution)
    best = int(int_matrix.max(axis=0).sum())
    full_range = int((int_matrix.max(axis=0) - int_matrix.min(axis=0)).sum())
    if pvalue >= 1:
        return (best - full_range) / resolution
    max_deficit = min(20 * resolution, full_range)
    while True:
        dist = _deficit_distribution(int_matrix, max_deficit)
        cdf = np.cumsum(dist)
        if cdf[-1] > pvalue or max_deficit >= full_range:
            break
        max_deficit = min(2 * max_deficit, full_range)
    # largest deficit cut-off whose cumulative probability stays within pvalue
    within = np.nonzero(cdf <= pvalue * (1 + 1e-9))[0]
    if within.size == 0:  # the best word alone is too frequent: clamp to the best score
        return best / resolution
    cut = int(within[-1])
    achievable = np.nonzero(dist[: cut + 1] > 0)[0]
    return (best - int(achievable[-1])) / resolution


def threshold_tail_probability(
    log_odds: np.ndarray, threshold: float, resolution: int = DEFAULT_RESOLUTION
) -> float:
    """P(score >= threshold) for a random background word, discretised matrix (for tests/QC)."""
    int_matrix = discretise(log_odds, resolution)
    best = int(int_matrix.max(axis=0).sum())
    full_range = int((int_matrix.max(axis=0) - int_matrix.min(axis=0)).sum())
    cut = best - int(np.rint(threshold * resolution))
    if cut < 0:
        return 0.0
    dist = _deficit_distribution(int_matrix, min(cut, full_range))
    return float(dist.sum())


# --------------------------------------------------------------------------------------------
# Sequences
# --------------------------------------------------------------------------------------------
def reverse_complement(sequence: str) -> str:
    """Reverse complement of an A/C/G/T/N string."""
    return sequence.translate(_COMPLEMENT)[::-1]


def _as_sequence_list(sequences: Sequence[str] | np.ndarray) -> list[str]:
    if isinstance(sequences, np.ndarray):
        sequences = sequences.tolist()
    seqs = [str(s) for s in sequences]
    if seqs and len({len(s) for s in seqs}) != 1:
        raise ValueError("all sequences must have the same length")
    return seqs


def one_hot(sequences: Sequence[str] | np.ndarray) -> np.ndarray:
    """(n, 4, length) float32 one-hot, rows A, C, G, T; N or any other letter is all zeros."""
    seqs = _as_sequence_list(sequences)
    if not seqs:
        return np.zeros((0, 4, 0), dtype=np.float32)
    length = len(seqs[0])
    codes = _BASE_INDEX[np.frombuffer("".join(seqs).encode("ascii", "replace"), dtype=np.uint8)]
    codes = codes.reshape(len(seqs), length)
    eye = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])
    return np.ascontiguousarray(eye[codes].transpose(0, 2, 1))


def _kernels(log_odds_list: list[np.ndarray], resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack forward and reverse-complement discretised matrices, left-aligned, zero-padded."""
    widths = np.array([m.shape[1] for m in log_odds_list], dtype=np.int64)
    n, wmax = len(log_odds_list), int(widths.max())
    kernels = np.zeros((2 * n, 4, wmax), dtype=np.float32)
    for i, lo in enumerate(log_odds_list):
        q = discretise(lo, resolution) / resolution
        kernels[i, :, : lo.shape[1]] = q
        # reverse complement: complement swaps rows A<->T, C<->G (reverse row order), then
        # reverse the columns
        kernels[n + i, :, : lo.shape[1]] = q[::-1, ::-1]
    return kernels, widths


def best_scores(
    sequences: Sequence[str] | np.ndarray,
    pfms: Mapping[str, np.ndarray],
    pseudocount: float = DEFAULT_PSEUDOCOUNT,
    resolution: int = DEFAULT_RESOLUTION,
    max_elements: int = 1 << 24,
    device: str = "cpu",
) -> np.ndarray:
    """Best window score per (sequence, motif) over both strands, float32 (n_seq, n_motifs).

    One conv1d over all sequences and all (forward + reverse-complement) motifs at once;
    motifs of different widths are zero-padded on the right and positions whose window would
    run past the sequence end are masked, so every motif sees exactly its own valid windows.
    Sequences are processed in chunks so the score tensor stays under ``max_elements`` floats.
    A motif longer than the sequences scores -inf (it fits nowhere).
    """
    import torch  # local import: keep module import light and CUDA untouched

    seqs = _as_sequence_list(sequences)
    names = list(pfms)
    if not names:
        return np.zeros((len(seqs), 0), dtype=np.float32)
    if not seqs:
        return np.zeros((0, len(names)), dtype=np.float32)
    kernels, widths = _kernels([pwm_log_odds(pfms[n], pseudocount) for n in names], resolution)
    length, wmax, wmin = len(seqs[0]), kernels.shape[2], int(widths.min())
    pad = wmax - wmin
    n_pos = length + pad - wmax + 1
    if n_pos <= 0:
        return np.full((len(seqs), len(names)), -np.inf, dtype=np.float32)
    # position p is a valid start for motif i iff p <= length - width_i
    valid = np.arange(n_pos)[None, :] <= (length - np.concatenate([widths, widths]))[:, None]
    mask = torch.from_numpy(np.where(valid, 0.0, -np.inf).astype(np.float32)).to(device)
    weight = torch.from_numpy(kernels).to(device)
    chunk = max(1, int(max_elements // (kernels.shape[0] * n_pos)))
    out = np.empty((len(seqs), len(names)), dtype=np.float32)
    n_motifs = len(names)
    with torch.no_grad():
        for start in range(0, len(seqs), chunk):
            x = torch.from_numpy(one_hot(seqs[start : start + chunk])).to(device)
            if pad:
                x = torch.nn.functional.pad(x, (0, pad))
            scores = torch.nn.functional.conv1d(x, weight) + mask  # (b, 2M, n_pos)
            best = scores.amax(dim=2)
            best = torch.maximum(best[:, :n_motifs], best[:, n_motifs:])
            out[start : start + chunk] = best.cpu().numpy()
    return out


class MotifScan(NamedTuple):
    """:func:`scan_motifs` result: ``hits`` (n_sequences x n_motifs, CSR uint8) and motif names."""

    hits: sp.csr_matrix
    names: list[str]


def motif_thresholds(
    pfms: Mapping[str, np.ndarray],
    pvalue: float = DEFAULT_PVALUE,
    pseudocount: float = DEFAULT_PSEUDOCOUNT,
    resolution: int = DEFAULT_RESOLUTION,
) -> np.ndarray:
    """Score threshold of each motif (dict order) for ``pvalue``, float64."""
    return np.array(
        [score_threshold(pwm_log_odds(c, pseudocount), pvalue, resolution) for c in pfms.values()]
    )


def scan_motifs(
    sequences: Sequence[str] | np.ndarray,
    pfms: Mapping[str, np.ndarray],
    pvalue: float = DEFAULT_PVALUE,
    pseudocount: float = DEFAULT_PSEUDOCOUNT,
    resolution: int = DEFAULT_RESOLUTION,
    max_elements: int = 1 << 24,
    device: str = "cpu",
) -> MotifScan:
    """Binary motif hits: sequence i hits motif j if any window on either strand scores >= the
    motif's p-value threshold (defaults as the reference: p = 5e-5, pseudocount 1e-4).

    ``pfms`` maps names to (4, width) count matrices (e.g. :func:`load_jaspar_pfms`); the
    column order of ``hits`` is the dict order, returned as ``names``. Sequences must all have
    the same length (peaks are fixed-width); N bases score 0 in every window that covers them.
    """
    names = list(pfms)
    scores = best_scores(sequences, pfms, pseudocount, resolution, max_elements, device)
    thresholds = motif_thresholds(pfms, pvalue, pseudocount, resolution)
    # half a grid step of slack absorbs float32 summation error; distinct achievable scores
    # are at least one grid step apart, so no window below the threshold can sneak in
    hits = scores >= (thresholds - 0.5 / resolution)[None, :].astype(np.float32)
    return MotifScan(sp.csr_matrix(hits.astype(np.uint8)), names)


def dataset_motif_hits(mdata, pvalue: float = DEFAULT_PVALUE) -> tuple[sp.csr_matrix, list[str], str]:
    """The dataset's peak × TF hits: ``atac.varm['motif_hits']`` when given, else a JASPAR2024
    scan of ``atac.var['sequence']`` restricted to TFs measured in the RNA (as Cell2Net's
    ``filter_motifs_by_genes``, matching names upper-case). Returns (hits, tf names, source).
    """
    atac = mdata["atac"]
    if "motif_hits" in atac.varm:
        names = [str(n) for n in np.asarray(atac.uns["motif_names"])]
        return sp.csr_matrix(atac.varm["motif_hits"]), names, "given"
    if "sequence" not in atac.var:
        return sp.csr_matrix((atac.n_vars, 0), dtype=np.uint8), [], "none (no sequences)"
    genes = {g.upper(): g for g in mdata["rna"].var_names}
    pfms = {genes[name]: counts for name, counts in load_jaspar_pfms().items() if name in genes}
    scan = scan_motifs(atac.var["sequence"].to_numpy(), pfms, pvalue=pvalue)
    return scan.hits, scan.names, f"JASPAR2024 scan, p < {pvalue:g}"


def motif_hit_table(mdata, pvalue: float = DEFAULT_PVALUE) -> tuple[pd.DataFrame, list[str], str]:
    """:func:`dataset_motif_hits` in long form (peak, tf), sorted: (table, tf names, source)."""
    hits, tfs, source = dataset_motif_hits(mdata, pvalue)
    coo = hits.tocoo()
    peaks = mdata["atac"].var_names
    table = pd.DataFrame({"peak": peaks[coo.row], "tf": [tfs[j] for j in coo.col]})
    return table.sort_values(["peak", "tf"], ignore_index=True), tfs, source
