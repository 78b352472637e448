"""Motif loading, log-odds, exact p-value thresholds and the vectorised two-strand scan."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from regnet_assets.science.dataset import motifs as M

# JASPAR2024 motifs of various widths / information content used throughout
REAL = ["CTCF", "GATA1", "SPI1", "RELA", "JUN", "FOXA1", "CEBPB", "REST"]


@pytest.fixture(scope="module")
def real_pfms():
    pfms = M.load_jaspar_pfms(REAL)
    assert list(pfms) == REAL
    return pfms


def random_sequences(rng, n, length):
    return ["".join(row) for row in np.array(list("ACGT"))[rng.integers(0, 4, size=(n, length))]]


def naive_best(seq: str, lo: np.ndarray) -> float:
    """Reference scorer: plain loops over windows of both strands, discretised matrix."""
    q = M.discretise(lo) / M.DEFAULT_RESOLUTION
    idx = {"A": 0, "C": 1, "G": 2, "T": 3}
    best = -np.inf
    for s in (seq, M.reverse_complement(seq)):
        for start in range(len(s) - q.shape[1] + 1):
            score = sum(
                q[idx[b], j] if b in idx else 0.0 for j, b in enumerate(s[start : start + q.shape[1]])
            )
            best = max(best, score)
    return best


# ---------------------------------------------------------------------------------------------
def test_load_jaspar_names_duplicates_and_filter():
    all_pfms = M.load_jaspar_pfms()
    assert len(all_pfms) > 700
    assert all(name == name.upper() for name in all_pfms)
    for counts in all_pfms.values():
        assert counts.shape[0] == 4 and counts.shape[1] >= 4 and (counts >= 0).all()
    # RORA has two distinct matrices (MA0071.1, MA0072.2): the highest ID is kept
    assert M.jaspar_matrix_ids()["RORA"] == "MA0072.2"
    assert all_pfms["RORA"].shape[1] == 11
    # case-insensitive filter, unknown names skipped, order of the request kept
    sub = M.load_jaspar_pfms(["spi1", "NOT_A_TF", "Gata1"])
    assert list(sub) == ["SPI1", "GATA1"]
    np.testing.assert_array_equal(sub["SPI1"], all_pfms["SPI1"])
    # the cached arrays cannot be mutated by a caller
    with pytest.raises(ValueError):
        sub["SPI1"][0, 0] = 1.0


def test_log_odds_hand_computed():
    counts = np.array([[10, 5], [0, 5], [0, 0], [0, 0]], dtype=float)
    lo = M.pwm_log_odds(counts, pseudocount=0.4)
    # column 1: (10 + 0.1) / 10.4 vs 0.25; (0 + 0.1) / 10.4 vs 0.25
    np.testing.assert_allclose(lo[0, 0], np.log((10.1 / 10.4) / 0.25))
    np.testing.assert_allclose(lo[1:, 0], np.log((0.1 / 10.4) / 0.25))
    np.testing.assert_allclose(lo[:2, 1], np.log((5.1 / 10.4) / 0.25))
    # flat column is exactly 0
    np.testing.assert_allclose(M.pwm_log_odds(np.full((4, 1), 7.0))[:, 0], 0.0, atol=1e-12)
    with pytest.raises(ValueError):
        M.pwm_log_odds(np.ones((3, 5)))


@pytest.mark.parametrize("width", [3, 4, 5, 6])
def test_threshold_matches_brute_force(width):
    rng = np.random.default_rng(width)
    words = np.array(list(itertools.product(range(4), repeat=width)))
    for _ in range(4):
        lo = rng.normal(0.0, 1.5, size=(4, width))
        q = M.discretise(lo)
        int_scores = q[words, np.arange(width)].sum(axis=1)
        raw_scores = lo[words, np.arange(width)].sum(axis=1)
        for p in (1.0 / 4**width, 1e-3, 1e-2, 0.05, 0.3):
            threshold = M.score_threshold(lo, p)
            # brute force: smallest achievable (discretised) score whose tail is <= p
            ok = [v for v in np.unique(int_scores) if (int_scores >= v).mean() <= p * (1 + 1e-9)]
            if not ok:  # p below the best word's probability: clamped to the best score
                assert threshold == pytest.approx(int_scores.max() / M.DEFAULT_RESOLUTION)
                continue
            assert threshold == pytest.approx(min(ok) / M.DEFAULT_RESOLUTION, abs=1e-12), p
            tail = M.threshold_tail_probability(lo, threshold)
            assert tail == pytest.approx((int_scores >= min(ok)).mean())
            assert tail <= p * (1 + 1e-9)
            # on the raw (undiscretised) scores the threshold is off by < width/(2R)
            ok_raw = [v for v in np.unique(raw_scores) if (raw_scores >= v).mean() <= p * (1 + 1e-9)]
            if ok_raw:
                assert abs(threshold - min(ok_raw)) <= width / (2 * M.DEFAULT_RESOLUTION) + 1e-9


def test_threshold_clamped_for_short_motif():
    """4**-3 > 5e-5: no threshold reaches the p-value, so only the best word may hit."""
    counts = np.array([[9, 0, 0], [0, 9, 0], [0, 0, 9], [1, 1, 1]], dtype=float)
    lo = M.pwm_log_odds(counts)
    best = M.discretise(lo).max(axis=0).sum() / M.DEFAULT_RESOLUTION
    assert M.score_threshold(lo, 5e-5) == pytest.approx(best)
    scan = M.scan_motifs(["TTTACGTTTT", "TTTTTTTTTT"], {"X": counts})
    assert scan.hits.toarray()[:, 0].tolist() == [1, 0]


def test_one_hot_and_reverse_complement():
    x = M.one_hot(["ACGTN", "acgtA"])
    assert x.shape == (2, 4, 5) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, :, :4], np.eye(4))
    np.testing.assert_array_equal(x[0, :, 4], 0)  # N is all zeros
    np.testing.assert_array_equal(x[1], M.one_hot(["ACGTA"])[0])  # lower case accepted
    assert M.reverse_complement("AACGTN") == "NACGTT"
    with pytest.raises(ValueError):
        M.one_hot(["ACG", "AC"])


def test_best_scores_match_naive_loops(real_pfms):
    rng = np.random.default_rng(0)
    seqs = random_sequences(rng, 6, 40)
    seqs[0] = seqs[0][:10] + "NNNN" + seqs[0][14:]
    pfms = {k: real_pfms[k] for k in ["CTCF", "SPI1", "JUN"]}  # widths differ: padding path
    got = M.best_scores(seqs, pfms)
    for i, s in enumerate(seqs):
        for j, name in enumerate(pfms):
            assert got[i, j] == pytest.approx(naive_best(s, M.pwm_log_odds(pfms[name])), abs=1e-3)
    # a motif wider than the sequences fits nowhere
    assert np.isneginf(M.best_scores(["ACGTACGT"], {"CTCF": real_pfms["CTCF"]})).all()


def test_planted_consensus_and_reverse_complement_found(real_pfms):
    rng = np.random.default_rng(1)
    names = list(real_pfms)
    seqs, expected = [], []
    for j, name in enumerate(names):
        consensus = "".join("ACGT"[i] for i in real_pfms[name].argmax(axis=0))
        for site in (consensus, M.reverse_complement(consensus)):
            bg = random_sequences(rng, 1, 256)[0]
            pos = int(rng.integers(0, 256 - len(site) + 1))
            seqs.append(bg[:pos] + site + bg[pos + len(site) :])
            expected.append(j)
    scan = M.scan_motifs(seqs, real_pfms)
    assert isinstance(scan.hits, sp.csr_matrix) and scan.hits.shape == (len(seqs), len(names))
    assert scan.names == names
    hits = scan.hits.toarray()
    assert all(hits[i, j] == 1 for i, j in enumerate(expected))


def test_planted_sampled_instances_found(real_pfms):
    """Instances drawn from each PFM: every one scoring >= threshold is found, on either strand,
    also when the scan is chunked; and most sampled instances do pass."""
    rng = np.random.default_rng(2)
    thresholds = M.motif_thresholds(real_pfms)
    seqs, planted = [], []
    passing = 0
    for j, (_name, counts) in enumerate(real_pfms.items()):
        probs = counts / counts.sum(axis=0)
        lo = M.discretise(M.pwm_log_odds(counts)) / M.DEFAULT_RESOLUTION
        for _ in range(25):
            word = [rng.choice(4, p=probs[:, k]) for k in range(counts.shape[1])]
            score = lo[word, np.arange(len(word))].sum()
            site = "".join("ACGT"[b] for b in word)
            if rng.random() < 0.5:
                site = M.reverse_complement(site)
            bg = random_sequences(rng, 1, 256)[0]
            pos = int(rng.integers(0, 256 - len(site) + 1))
            seqs.append(bg[:pos] + site + bg[pos + len(site) :])
            strong = score >= thresholds[j] - 1e-9
            planted.append((j, strong))
            passing += strong
    hits = M.scan_motifs(seqs, real_pfms, max_elements=5000).hits.toarray()
    for i, (j, strong) in enumerate(planted):
        if strong:
            assert hits[i, j] == 1, (list(real_pfms)[j], i)
    assert passing > 0.5 * len(planted)


def test_false_hit_rate_per_window_matches_pvalue(real_pfms):
    """Sequences exactly one motif wide have one window per strand, so the hit rate per
    sequence is 1 - (1 - q)^2, q = exact tail probability at the threshold (<= p, ~p)."""
    rng = np.random.default_rng(3)
    p = 1e-3
    for name in ["GATA1", "RELA", "FOXA1"]:  # not palindromic: strands independent
        counts = real_pfms[name]
        width = counts.shape[1]
        lo = M.pwm_log_odds(counts)
        q = M.threshold_tail_probability(lo, M.score_threshold(lo, p))
        assert p / 2 <= q <= p
        n = 150_000
        seqs = random_sequences(rng, n, width)
        observed = M.scan_motifs(seqs, {name: counts}, pvalue=p).hits.sum()
        expected = n * (1 - (1 - q) ** 2)
        assert abs(observed - expected) < 5 * np.sqrt(expected), (name, observed, expected)


def test_false_hit_rate_on_random_peaks_default_pvalue(real_pfms):
    """256 bp background peaks at p = 5e-5: hit counts as expected from the per-window rate
    (within a factor well under 2), summed over motifs for enough expected hits."""
    rng = np.random.default_rng(4)
    seqs = random_sequences(rng, 4000, 256)
    hits = M.scan_motifs(seqs, real_pfms).hits.toarray().sum(axis=0)
    expected = []
    for counts in real_pfms.values():
        lo = M.pwm_log_odds(counts)
        q = M.threshold_tail_probability(lo, M.score_threshold(lo, 5e-5))
        windows = 2 * (256 - counts.shape[1] + 1)
        expected.append(len(seqs) * (1 - (1 - q) ** windows))
    ratio = hits.sum() / sum(expected)
    assert 0.75 < ratio < 1.33, (hits, expected)
    # and the nominal rate: about p per window per strand
    n_windows = len(seqs) * sum(2 * (256 - c.shape[1] + 1) for c in real_pfms.values())
    per_window = hits.sum() / n_windows
    assert 5e-5 / 2 < per_window < 5e-5 * 2
