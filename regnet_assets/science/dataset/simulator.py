"""The embedded default dataset: a simulated single-cell multiome (.h5mu) with known ground truth.

Why a simulator: no public multiome dataset comes with the true regulatory network, so nothing
could tell whether the platform finds real regulation or just fits curves. Here every stage
can be scored: the TF -> gene edges, the functional peaks and their motifs, the signalling
hierarchy above the TFs, and each cell's true expected count (the oracle).

The names and edges are real wherever that is possible, so downstream biology (GO enrichment,
prior-knowledge networks) behaves as on real data:

* TFs have a JASPAR2024 CORE vertebrate motif *and* a DoRothEA regulon (confidence A-C);
* target genes are those TFs' DoRothEA targets and the true edges and their signs (``mor``)
  are DoRothEA's;
* the signalling hierarchy (TGFBR2 -> MAP3K7 -> IKBKB / MAPK8 / MAPK14 -> RELA, JUN, ATF2)
  uses edges that all exist, with the same sign, in the shipped signalling PKN.

Generative model (per cell c, type k(c), batch b(c)):

* TF activity a[c, t] = programme[k, t] (cell-type specific) + within-type variation (a few
  shared latent factors plus TF-specific noise, so regulation is identifiable *within* a type)
  + the signalling input for the hierarchy's TFs in 'stimulated' cells.
* Peak openness o[c, p] = base + cell-type offset + noise; a *functional* peak (one carrying a
  planted motif of a TF that truly regulates the gene) also opens with that TF's activity,
  more for peaks near the TSS; for edges restricted to some cell types the peak is closed
  elsewhere. ATAC counts are NB around exp(o) x ATAC library size.
* Target log-mean = base + sum over true edges of sign * weight * a[c, tf] (only in the edge's
  cell types) + sign * beta * proximity * (o[c, p] - mean) over its functional peaks + batch
  effect (gene-specific) + log library size (batch-shifted). TF and signalling-gene
  expression follow their own activities, so TF expression predicts the targets.
* RNA counts ~ NB(mean, dispersion); ``rna.layers['true_rate']`` holds the NB means.

Peak sequences are random (GC content configurable); each true edge's TF motif is planted
(sampled from the PFM, conditioned on passing the p = 5e-5 scan threshold, random strand)
into 1-3 of the gene's peaks, decoy motifs of non-regulating TFs go into other peaks, and
the remaining peaks carry no planted site (they still have the chance hits any real genome has).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.special import expit

from regnet_assets.atomic import write_atomic
from regnet_assets.science.dataset import motifs as motif_lib
from regnet_assets.science.dataset.reference_data import dorothea
from regnet_assets.science.dataset.sparse_counts import sparse_nb_counts

# (source, target, sign, level) — every edge is present with this sign in signalling_pkn().
# TGF-beta receptor 2 activates TAK1 (MAP3K7), which activates IKK-beta, JNK1 and p38-alpha;
# those activate RELA, JUN and ATF2. Listed in topological order.
DEFAULT_HIERARCHY: tuple[tuple[str, str, int, str], ...] = (
    ("TGFBR2", "MAP3K7", 1, "receptor->kinase"),
    ("MAP3K7", "IKBKB", 1, "kinase->kinase"),
    ("MAP3K7", "MAPK8", 1, "kinase->kinase"),
    ("MAP3K7", "MAPK14", 1, "kinase->kinase"),
    ("IKBKB", "RELA", 1, "kinase->tf"),
    ("MAPK8", "JUN", 1, "kinase->tf"),
    ("MAPK8", "ATF2", 1, "kinase->tf"),
    ("MAPK14", "ATF2", 1, "kinase->tf"),
)
# Real kinases that are expressed but not part of the stimulated pathway.
DEFAULT_DECOY_KINASES: tuple[str, ...] = ("CDK2", "GSK3B", "PRKACA", "CSNK2A1")

CONDITIONS = ("control", "stimulated")
PRESETS = ("default", "small", "hard", "large")
SYNTHETIC_GENE_PREFIX = "SIMG"  # background genes beyond the real names: SIMG00001, ...
_CONFIDENCE_RANK = {"A": 0, "B": 1, "C": 2}


@dataclass(frozen=True)
class SimulationConfig:
    """Every size and effect of the simulation; the same config (incl. seed) gives the same data.

    Defaults are sized so that simulating takes seconds and training every target gene's model
    stays feasible on 2 CPU cores; :meth:`small` is a tiny version for tests.
    """

    seed: int = 0
    # sizes
    n_cells: int = 3000  # sized so `make run` trains every model in minutes on 2 cores
    n_target_genes: int = 24
    n_tfs: int = 60
    # TFs with at least one true target (the rest are present, motif-bearing decoys); None =
    # ceil(regulator_fraction * n_tfs), so changing n_tfs alone keeps a valid config
    n_regulators: int | None = None
    regulator_fraction: float = 0.4
    regulators_per_gene: tuple[int, int] = (1, 4)
    peaks_per_gene: tuple[int, int] = (20, 40)
    n_cell_types: int = 4
    n_batches: int = 2
    n_background_genes: int = 0  # real DoRothEA target names first, then synthetic SIMG names
    n_chromosomes: int = 5
    # genome / peaks
    peak_length: int = 256
    window: int = 500_000  # peaks linked to a gene lie within +-window of its TSS
    gc_content: float = 0.42
    functional_peaks_per_edge: tuple[int, int] = (1, 3)
    decoy_motif_peaks_per_gene: tuple[int, int] = (1, 3)
    motif_pvalue: float = 5e-5
    distance_scale: float = 200_000.0  # proximity = exp(-distance / scale)
    # TF activity
    programme_strength: float = 1.5  # activity of a TF switched on in a cell type
    programme_on_fraction: float = 0.35
    within_type_sd: float = 0.8
    n_latent_factors: int = 3
    shared_latent_fraction: float = 0.4  # share of within-type variance from shared factors
    tf_expression_coupling: float = 1.0
    # edges
    weight_range: tuple[float, float] = (0.4, 0.9)
    weak_edge_fraction: float = 0.15
    weak_weight_range: tuple[float, float] = (0.1, 0.25)
    type_specific_edge_fraction: float = 0.3
    repressor_regulator_fraction: float = 0.25  # regulators chosen among DoRothEA repressors
    # harder mechanisms (all off by default; see :meth:`hard`)
    missed_site_fraction: float = 0.0  # true edges whose sites score just under the scan threshold
    paralog_pairs: int = 0  # regulators given a co-expressed decoy paralog that binds the same sites
    paralog_correlation: float = 0.8  # activity correlation of a regulator and its paralog
    cooperative_gene_fraction: float = 0.0  # targets whose first two activators act only together
    # accessibility
    peak_tf_response: float = 1.0  # gamma: functional-peak openness per unit TF activity
    peak_effect: float = 0.3  # beta: target log-mean per unit functional-peak openness
    peak_type_sd: float = 0.4
    peak_noise_sd: float = 0.4
    closed_offset: float = 1.5  # type-restricted functional peaks are this much closer elsewhere
    chromatin_factors: int = 0  # per-cell chromatin states, independent of TF activity
    chromatin_factor_sd: float = 0.0  # openness sd they add to every peak
    atac_mean_count: float = 0.3
    # counts and technical effects
    target_mean_count: float = 2.0
    tf_mean_count: float = 3.0
    background_mean_count: float = 2.0  # median of background genes' means (log-normal)
    background_log_sd: float = 0.6
    rna_dispersion: float = 0.2
    atac_dispersion: float = 0.1
    library_sd: float = 0.35
    batch_library_shift: float = 0.5  # spread of per-batch mean log library size
    batch_gene_sd: float = 0.25  # per-batch, per-gene multiplicative effect (log scale)
    # signalling
    stimulated_fraction: float = 0.5
    signal_strength: float = 1.2  # activity added to pathway TFs at full stimulation
    signal_expression_coupling: float = 0.6
    hierarchy: tuple[tuple[str, str, int, str], ...] = DEFAULT_HIERARCHY
    decoy_kinases: tuple[str, ...] = DEFAULT_DECOY_KINASES
    # 'all': rna.layers['true_rate'] dense for every gene; 'targets': CSR holding only the
    # target genes' rates (the oracle needs no more, and cells x 20,000 genes would not fit)
    true_rate_genes: str = "all"

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"SimulationConfig: {message}")

        for name in (
            "n_cells",
            "n_target_genes",
            "n_tfs",
            "regulators",
            "n_cell_types",
            "n_batches",
            "n_chromosomes",
            "n_latent_factors",
        ):
            check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "regulators_per_gene",
            "peaks_per_gene",
            "functional_peaks_per_edge",
            "decoy_motif_peaks_per_gene",
            "weight_range",
            "weak_weight_range",
        ):
            lo, hi = getattr(self, name)
            check(0 <= lo <= hi, f"{name} must be (low, high) with 0 <= low <= high")
        check(self.regulators_per_gene[0] >= 1, "regulators_per_gene low must be >= 1")
        check(self.regulators <= self.n_tfs, "n_regulators must be <= n_tfs")
        pathway_tfs = _pathway_tfs(self.hierarchy)
        check(
            len(pathway_tfs) <= self.regulators,
            f"n_regulators must cover the hierarchy's {len(pathway_tfs)} TFs",
        )
        check(self.functional_peaks_per_edge[0] >= 1, "functional_peaks_per_edge low must be >= 1")
        need = (
            self.regulators_per_gene[1] * self.functional_peaks_per_edge[0]
            + self.decoy_motif_peaks_per_gene[0]
        )
        check(
            self.peaks_per_gene[0] >= need, f"peaks_per_gene low must be >= {need} to hold the planted sites"
        )
        check(self.peak_length >= 32, "peak_length must be >= 32")
        check(self.window >= 100 * self.peak_length, "window too small for the peaks")
        check(0 < self.gc_content < 1, "gc_content must be in (0, 1)")
        check(0 < self.stimulated_fraction < 1, "stimulated_fraction must be in (0, 1)")
        check(0 < self.motif_pvalue < 1, "motif_pvalue must be in (0, 1)")
        for name in ("missed_site_fraction", "cooperative_gene_fraction"):
            check(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1], got {getattr(self, name)}")
        check(0 <= self.paralog_correlation < 1, "paralog_correlation must be in [0, 1)")
        check(self.paralog_pairs >= 0, "paralog_pairs must be >= 0")
        check(
            self.paralog_pairs <= min(self.regulators - len(pathway_tfs), self.n_tfs - self.regulators),
            "paralog_pairs must be <= both the non-pathway regulators and the decoy TFs",
        )
        check(self.chromatin_factors >= 0, "chromatin_factors must be >= 0")
        check(
            self.true_rate_genes in ("all", "targets"),
            f"true_rate_genes must be 'all' or 'targets', got {self.true_rate_genes!r}",
        )

    @property
    def regulators(self) -> int:
        """Number of TFs that truly regulate targets (``n_regulators`` or the fraction)."""
        if self.n_regulators is not None:
            return self.n_regulators
        by_fraction = int(np.ceil(self.regulator_fraction * self.n_tfs))
        return max(len(_pathway_tfs(self.hierarchy)), by_fraction)

    @classmethod
    def small(cls, seed: int = 0, **overrides) -> SimulationConfig:
        """A tiny dataset (~600 cells, 12 targets, 16 TFs) that simulates in about a second."""
        params = dict(
            seed=seed,
            n_cells=600,
            n_target_genes=12,
            n_tfs=16,
            regulator_fraction=0.5,
            peaks_per_gene=(8, 12),
            n_cell_types=3,
            n_batches=2,
            n_chromosomes=2,
        )
        params.update(overrides)
        return cls(**params)

    @classmethod
    def hard(cls, seed: int = 0, **overrides) -> SimulationConfig:
        """The default sizes with the harder, more realistic mechanisms switched on.

        * candidates come from the motif scan, not the truth: 25 % of true edges bind through a
          site scoring just under the scan threshold, so a scan misses them unless a chance hit
          of the same TF lies in another linked peak;
        * 6 regulators get a decoy paralog (the eligible TF with the most similar JASPAR motif)
          whose activity correlates at 0.8 and whose motif sits beside each of the regulator's
          functional sites: a correlated decoy with the same motif evidence;
        * 30 % of targets with two activators need both (an AND gate, see :func:`_and_gate`);
        * half of the edges act in some cell types only; 35 % of regulators are repressors;
        * accessibility has its own cell-type programme, 2 chromatin states and noise, and
          follows TF activity weakly, so the peaks are no second copy of the TF signal.
        """
        params = dict(
            seed=seed,
            missed_site_fraction=0.25,
            paralog_pairs=6,
            cooperative_gene_fraction=0.3,
            type_specific_edge_fraction=0.5,
            repressor_regulator_fraction=0.35,
            peak_tf_response=0.4,
            peak_type_sd=0.8,
            peak_noise_sd=0.6,
            chromatin_factors=2,
            chromatin_factor_sd=0.4,
        )
        params.update(overrides)
        return cls(**params)

    @classmethod
    def large(cls, seed: int = 0, n_genes: int = 20_000, **overrides) -> SimulationConfig:
        """A 10x-multiome-sized dataset: 50,000 cells, ``n_genes`` genes of which 2,000 are
        targets with ground truth, ~100,000 peaks of 256 bp; sparsity like real data (RNA
        ~90 % zeros, ATAC ~97 %). Background genes fill ``n_genes`` (synthetic names beyond the
        real ones); ``true_rate`` holds the targets only."""
        params = dict(
            seed=seed,
            n_cells=50_000,
            n_target_genes=2_000,
            n_tfs=150,
            regulator_fraction=0.6,
            peaks_per_gene=(40, 60),
            n_cell_types=8,
            n_batches=4,
            n_chromosomes=22,
            target_mean_count=0.8,
            tf_mean_count=1.0,
            background_mean_count=0.02,
            background_log_sd=1.5,
            atac_mean_count=0.025,
            true_rate_genes="targets",
        )
        params.update(overrides)
        if "n_background_genes" not in overrides:
            probe = cls(**params)
            fixed = probe.n_target_genes + probe.n_tfs + len(_signalling_nodes(probe))
            params["n_background_genes"] = max(0, n_genes - fixed)
        return cls(**params)

    @classmethod
    def preset(cls, name: str, seed: int = 0, **overrides) -> SimulationConfig:
        """The named preset (one of :data:`PRESETS`) with ``seed`` and field overrides."""
        if name not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}")
        if name == "default":
            return cls(seed=seed, **overrides)
        return getattr(cls, name)(seed=seed, **overrides)

    def to_json(self) -> str:
        """JSON of every field (stored in the file so a dataset says how it was made)."""
        return json.dumps(asdict(self), sort_keys=True)


def _pathway_tfs(hierarchy) -> list[str]:
    return list(dict.fromkeys(t for _s, t, _sign, level in hierarchy if level.endswith("->tf")))


def _signalling_nodes(config: SimulationConfig) -> list[str]:
    """Receptor and kinases of the hierarchy (not its TFs), then the decoy kinases."""
    tfs = set(_pathway_tfs(config.hierarchy))
    nodes = [n for s, t, _sg, _lv in config.hierarchy for n in (s, t) if n not in tfs]
    return list(dict.fromkeys(nodes + list(config.decoy_kinases)))


# --------------------------------------------------------------------------------------------
# Gene and edge selection from real regulons
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _regulons() -> pd.DataFrame:
    """DoRothEA A-C edges, one row per (tf, target), keeping the most confident (cached; the
    callers only filter it, never modify it)."""
    d = dorothea()
    d = d[d["confidence"].isin(list(_CONFIDENCE_RANK))].copy()
    d["rank"] = d["confidence"].map(_CONFIDENCE_RANK)
    d = d.sort_values(["tf", "target", "rank"]).drop_duplicates(["tf", "target"])
    return d.reset_index(drop=True)


@lru_cache(maxsize=8)
def _eligible_tfs(pvalue: float, peak_length: int) -> tuple[str, ...]:
    """TFs with >= 10 A-C targets and a JASPAR motif that can reach the scan p-value (a motif
    too short to ever reach it could not be planted detectably)."""
    regulons, pfms = _regulons(), motif_lib.load_jaspar_pfms()
    sizes = regulons.groupby("tf").size()
    out = []
    for tf in sorted(sizes.index[sizes >= 10]):
        if tf not in pfms or pfms[tf].shape[1] > peak_length // 4:
            continue
        lo = motif_lib.pwm_log_odds(pfms[tf])
        best = motif_lib.discretise(lo).max(axis=0).sum() / motif_lib.DEFAULT_RESOLUTION
        if motif_lib.threshold_tail_probability(lo, best) <= pvalue:
            out.append(tf)
    return tuple(out)


def _choose(rng: np.random.Generator, pool: list[str], n: int, exclude=()) -> list[str]:
    pool = [x for x in pool if x not in set(exclude)]
    if n > len(pool):
        raise ValueError(f"asked for {n} items but only {len(pool)} are available")
    idx = rng.choice(len(pool), size=n, replace=False)
    return [pool[i] for i in sorted(idx)]


def _select_genes(config: SimulationConfig, rng: np.random.Generator, pfms):
    """Pick TFs, regulators, target genes and the true edges (signs from DoRothEA)."""
    regulons = _regulons()
    eligible = list(_eligible_tfs(config.motif_pvalue, config.peak_length))
    signalling = _signalling_nodes(config)
    pathway = _pathway_tfs(config.hierarchy)
    missing = [t for t in pathway if t not in eligible]
    if missing:
        raise ValueError(f"hierarchy TFs without a usable JASPAR motif / DoRothEA regulon: {missing}")
    eligible = [t for t in eligible if t not in signalling]

    n_repressed = regulons[regulons["mor"] < 0].groupby("tf").size()
    repressor_pool = [t for t in eligible if n_repressed.get(t, 0) >= 5 and t not in pathway]
    n_reg = config.regulators
    n_repressors = min(
        int(round(config.repressor_regulator_fraction * n_reg)), len(repressor_pool), n_reg - len(pathway)
    )
    repressors = _choose(rng, repressor_pool, n_repressors)
    others = _choose(rng, eligible, n_reg - len(pathway) - n_repressors, exclude=pathway + repressors)
    regulators = list(pathway) + repressors + others
    paralogs: list[tuple[str, str]] = []  # (regulator, its decoy paralog)
    with_paralog = [t for t in regulators if t not in pathway]
    for reg in _choose(rng, with_paralog, config.paralog_pairs) if config.paralog_pairs else []:
        taken = set(regulators) | {d for _r, d in paralogs}
        pool = [t for t in eligible if t not in taken]
        paralogs.append((reg, max(pool, key=lambda t: (_motif_similarity(pfms[reg], pfms[t]), t))))
    decoy_tfs = [d for _r, d in paralogs]
    decoy_tfs += _choose(rng, eligible, config.n_tfs - n_reg - len(paralogs), exclude=regulators + decoy_tfs)
    tfs = regulators + decoy_tfs

    # targets: never a TF with a JASPAR motif (so "TF" means the same thing everywhere) nor a
    # signalling node
    excluded = set(pfms) | set(signalling) | set(tfs)
    reg_edges = regulons[regulons["tf"].isin(regulators) & ~regulons["target"].isin(excluded)]
    by_tf = {tf: grp for tf, grp in reg_edges.groupby("tf")}
    n_regs = reg_edges.groupby("target").size()
    hi = config.regulators_per_gene[1]
    targets: list[str] = []
    chosen: set[str] = set()
    order = list(regulators)
    rng.shuffle(order)
    # round-robin: every regulator gets targets, repressors preferably their repressed ones
    while len(targets) < config.n_target_genes:
        progressed = False
        for tf in order:
            if len(targets) >= config.n_target_genes:
                break
            grp = by_tf.get(tf)
            if grp is None:
                continue
            grp = grp[~grp["target"].isin(chosen)]
            if tf in repressors and (grp["mor"] < 0).any():
                grp = grp[grp["mor"] < 0]
            if grp.empty:
                continue
            # favour genes with several regulators in the set, so genes get 1-4 regulators
            # rather than mostly one (DoRothEA targets are often specific to one TF)
            cands = sorted(grp["target"])
            w = np.minimum(n_regs.reindex(cands).to_numpy(), hi).astype(float) ** 2
            gene = cands[rng.choice(len(cands), p=w / w.sum())]
            targets.append(gene)
            chosen.add(gene)
            progressed = True
        if not progressed:
            raise ValueError(
                f"only {len(targets)} DoRothEA targets available for {config.n_target_genes} genes"
            )

    lo = config.regulators_per_gene[0]
    rows = []
    for gene in targets:
        e = reg_edges[reg_edges["target"] == gene].copy()
        e["tie"] = rng.random(len(e))
        e = e.sort_values(["rank", "tie"]).head(hi)
        rows.extend((r.tf, gene, int(np.sign(r.mor)) or 1) for r in e.itertuples())
    edges = pd.DataFrame(rows, columns=["tf", "gene", "sign"])
    counts = edges.groupby("gene").size()
    if counts.min() < lo:
        raise ValueError(f"some target genes have fewer than {lo} regulators")
    return tfs, regulators, targets, edges, paralogs


def _motif_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """How alike two PFMs are: the best, over offsets and both strands of ``b``, summed column
    agreement 1 - TV(p_a, p_b) divided by the longer width (1 = identical motifs)."""
    pa = a / a.sum(axis=0, keepdims=True)
    best = 0.0
    for pb in (b / b.sum(axis=0, keepdims=True), (b / b.sum(axis=0, keepdims=True))[::-1, ::-1]):
        wa, wb = pa.shape[1], pb.shape[1]
        for offset in range(-wb + 1, wa):
            ia = np.arange(max(0, offset), min(wa, offset + wb))
            agree = (1 - 0.5 * np.abs(pa[:, ia] - pb[:, ia - offset]).sum(axis=0)).sum()
            best = max(best, float(agree) / max(wa, wb))
    return best


# --------------------------------------------------------------------------------------------
# Genome layout, peaks and sequences
# --------------------------------------------------------------------------------------------
def _layout(config: SimulationConfig, rng: np.random.Generator, genes: list[str]) -> pd.DataFrame:
    """Place genes on chromosomes >= 2*window + 100 kb apart, so no two windows overlap and the
    distance-based peak_to_gene can be recomputed exactly from coordinates."""
    order = rng.permutation(len(genes))
    chrom_of = np.arange(len(genes)) % config.n_chromosomes
    chroms = np.empty(len(genes), dtype=object)
    tss = np.zeros(len(genes), dtype=np.int64)
    position = np.full(config.n_chromosomes, config.window + 1_000_000, dtype=np.int64)
    for slot, gi in enumerate(order):
        c = chrom_of[slot]
        chroms[gi] = f"chr{c + 1}"
        tss[gi] = position[c]
        position[c] += 2 * config.window + int(rng.integers(100_000, 600_000))
    return pd.DataFrame({"chrom": chroms, "tss": tss}, index=pd.Index(genes))


def _make_peaks(config, rng, layout: pd.DataFrame, targets: list[str]) -> pd.DataFrame:
    """Fixed-width peaks around each target's TSS: a promoter peak plus distal ones.

    Summits sit on a 400 bp grid (+- 60 bp jitter), so 256 bp peaks never overlap.
    """
    half = config.peak_length // 2
    grid, jitter = 400, 60
    kmax = (config.window - half - jitter) // grid
    rows = []
    for gene in targets:
        n = int(rng.integers(config.peaks_per_gene[0], config.peaks_per_gene[1] + 1))
        ks = rng.choice(np.setdiff1d(np.arange(-kmax, kmax + 1), [0]), size=n - 1, replace=False)
        ks = np.concatenate([[0], ks])
        centres = layout.at[gene, "tss"] + ks * grid + rng.integers(-jitter, jitter + 1, size=n)
        for centre in centres:
            start = int(centre) - half
            rows.append(
                (
                    gene,
                    layout.at[gene, "chrom"],
                    start,
                    start + config.peak_length,
                    abs(int(centre) - int(layout.at[gene, "tss"])),
                )
            )
    peaks = pd.DataFrame(rows, columns=["gene", "chrom", "start", "end", "distance"])
    peaks.index = pd.Index(
        [f"{c}:{s}-{e}" for c, s, e in zip(peaks.chrom, peaks.start, peaks.end)], name=None
    )
    return peaks


def _sample_site(rng, counts: np.ndarray, threshold: float, tries: int = 256, weak: bool = False) -> str:
    """A motif instance drawn from the PFM's base frequencies, conditioned on scoring at least
    the scan threshold (so every planted site is detectable at the scan p-value); ``weak``: the
    best-scoring draw that stays *under* it (a real but degenerate site that a scan misses)."""
    probs = counts / counts.sum(axis=0, keepdims=True)
    int_lo = motif_lib.discretise(motif_lib.pwm_log_odds(counts))
    width = counts.shape[1]
    cum = np.cumsum(probs, axis=0)
    draws = (rng.random((tries, width))[:, None, :] > cum[None, :, :]).sum(axis=1)
    draws = np.minimum(draws, 3)
    scores = int_lo[draws, np.arange(width)[None, :]].sum(axis=1)
    cut = int(round(threshold * motif_lib.DEFAULT_RESOLUTION))
    if weak:
        below = np.nonzero(scores < cut)[0]
        word = draws[below[np.argmax(scores[below])]] if below.size else int_lo.argmin(axis=0)
        return "".join(motif_lib.BASES[i] for i in word)
    ok = np.nonzero(scores >= cut)[0]
    word = draws[ok[0]] if ok.size else int_lo.argmax(axis=0)
    return "".join(motif_lib.BASES[i] for i in word)


def _plant_sequences(config, rng, peaks, edges, tfs, pfms, thresholds, paralogs):
    """Background sequences plus planted sites; returns sequences and the per-peak truth table.

    An edge with ``detectable`` False gets weak (sub-threshold) sites; a regulator with a
    paralog gets the paralog's site in the other half of each of its functional peaks."""
    n, length = len(peaks), config.peak_length
    gc = config.gc_content / 2
    probs = np.array([0.5 - gc, gc, gc, 0.5 - gc])
    letters = np.array(list(motif_lib.BASES))
    seqs = letters[rng.choice(4, size=(n, length), p=probs)]

    peak_index = {p: i for i, p in enumerate(peaks.index)}
    role = np.array(["background"] * n, dtype=object)
    site_tf = np.array([""] * n, dtype=object)
    strand = np.array([""] * n, dtype=object)
    position = np.full(n, -1, dtype=np.int64)
    prox = np.exp(-peaks["distance"].to_numpy() / config.distance_scale)
    functional: list[tuple[int, int]] = []  # (edge row, peak row)

    paralog_of = dict(paralogs)

    def place(i: int, tf: str, weak: bool, span: tuple[int, int]) -> tuple[str, int]:
        site = _sample_site(rng, pfms[tf], thresholds[tf], weak=weak)
        s = "+" if rng.random() < 0.5 else "-"
        if s == "-":
            site = motif_lib.reverse_complement(site)
        pos = int(rng.integers(span[0], span[1] - len(site) + 1))
        seqs[i, pos : pos + len(site)] = list(site)
        return s, pos

    def plant(i: int, tf: str, weak: bool = False) -> None:
        # a paralog's site shares the peak: the regulator's in the first half, its in the second
        half = tf in paralog_of
        s, pos = place(i, tf, weak, (0, length // 2 if half else length))
        if half:
            place(i, paralog_of[tf], False, (length // 2, length))
        site_tf[i], strand[i], position[i] = tf, s, pos

    for gene, gene_peaks in peaks.groupby("gene", sort=False):
        rows = np.array([peak_index[p] for p in gene_peaks.index])
        free = np.ones(len(rows), dtype=bool)
        gene_edges = edges[edges["gene"] == gene]
        lo_f, hi_f = config.functional_peaks_per_edge
        ks = rng.integers(lo_f, hi_f + 1, size=len(gene_edges))
        room = len(rows) - config.decoy_motif_peaks_per_gene[0]
        while ks.sum() > room and ks.max() > max(lo_f, 1):  # few peaks: trim the largest
            ks[int(np.argmax(ks))] -= 1
        for (e_row, tf, detectable), k in zip(
            zip(gene_edges.index, gene_edges["tf"], gene_edges["detectable"]), ks
        ):
            w = prox[rows] * free
            pick = rng.choice(len(rows), size=min(int(k), int(free.sum())), replace=False, p=w / w.sum())
            for j in pick:
                free[j] = False
                role[rows[j]] = "functional"
                plant(rows[j], tf, weak=not detectable)
                functional.append((e_row, rows[j]))
        regulators = set(gene_edges["tf"])
        decoy_pool = [t for t in tfs if t not in regulators]
        k = int(rng.integers(config.decoy_motif_peaks_per_gene[0], config.decoy_motif_peaks_per_gene[1] + 1))
        for j in rng.choice(np.nonzero(free)[0], size=min(k, int(free.sum())), replace=False):
            free[j] = False
            role[rows[j]] = "decoy_motif"
            plant(rows[j], decoy_pool[int(rng.integers(len(decoy_pool)))])

    sequences = np.array(["".join(r) for r in seqs], dtype=object)
    truth = pd.DataFrame(
        {
            "peak": peaks.index,
            "gene": peaks["gene"].to_numpy(),
            "role": role,
            "tf": site_tf,
            "strand": strand,
            "position": position,
            "distance": peaks["distance"].to_numpy(),
        }
    )
    return sequences, truth, functional


# --------------------------------------------------------------------------------------------
# Cells, activities and counts
# --------------------------------------------------------------------------------------------
_BLOCK_ELEMENTS = 1 << 25  # cells per block x max(genes, peaks): bounds every dense temporary


def _signalling_activity(config, s: np.ndarray) -> pd.DataFrame:
    """Propagate the stimulus s (per cell) down the hierarchy: each node averages its signed
    parents, so pathway activity is in [0, ~1.3] and zero in control cells."""
    receptor = config.hierarchy[0][0]
    act = {receptor: s}
    parents: dict[str, list[tuple[str, int]]] = {}
    for src, tgt, sign, _lv in config.hierarchy:
        parents.setdefault(tgt, []).append((src, sign))
    for _src, tgt, _sign, _lv in config.hierarchy:
        if tgt in act:
            continue
        act[tgt] = sum(sg * act[p] for p, sg in parents[tgt]) / len(parents[tgt])
    return pd.DataFrame(act)


def _and_gate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cooperative activation 4 sigmoid(2a) sigmoid(2b): 1 at a = b = 0, ~4 when both TFs are
    on, ~0 when either is off, so neither TF alone moves the target much."""
    return 4.0 * expit(2.0 * a) * expit(2.0 * b)


@dataclass
class _CountModel:
    """Every per-cell and per-feature quantity the counts depend on (nothing larger than cells
    x TFs), so counts are made one block of cells at a time and no cells x genes or cells x
    peaks matrix is ever built whole."""

    config: SimulationConfig
    ctype: np.ndarray  # (cells,) cell-type index
    batch: np.ndarray  # (cells,)
    activity: np.ndarray  # (cells, TFs)
    sig_act: np.ndarray  # (cells, len(sig_cols)) pathway activity of the signalling genes
    log_lib_rna: np.ndarray
    log_lib_atac: np.ndarray
    gene_base: np.ndarray  # (genes,) log mean
    gene_type: np.ndarray  # (types, genes) cell-type effect (decoy kinases, background)
    batch_gene: np.ndarray  # (batches, genes)
    tf_cols: np.ndarray  # gene column of each TF
    sig_cols: np.ndarray  # gene column of each signalling node with a pathway activity
    edge_weights: np.ndarray  # (types, TFs, targets) sign * weight of additive edges
    coop: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # gene col, tf a, tf b, weight
    base_open: np.ndarray  # (peaks,) float32
    type_open: np.ndarray  # (types, peaks) float32
    chrom_z: np.ndarray  # (cells, chromatin factors)
    chrom_load: np.ndarray  # (chromatin factors, peaks)
    f_peak: np.ndarray  # functional site i: its peak, TF, active types, gain, mean openness
    f_tf: np.ndarray
    f_active: np.ndarray  # (sites, types) bool
    f_gain: np.ndarray
    f_mean: np.ndarray
    f_effect: sp.csr_matrix  # (sites, targets) sign * beta * proximity

    def openness(self, rows: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Peak openness of the cells ``rows`` (float32, rows x peaks)."""
        cfg, k = self.config, self.ctype[rows]
        o = self.type_open[k]
        o += self.base_open[None, :]
        o += np.float32(cfg.peak_noise_sd) * noise
        if self.chrom_z.shape[1]:
            o += (self.chrom_z[rows] @ self.chrom_load).astype(np.float32)
        on = self.f_active[:, k].T
        o[:, self.f_peak] += (
            self.f_gain * self.activity[rows][:, self.f_tf] * on - cfg.closed_offset * ~on
        ).astype(np.float32)
        return o

    def rna_log_mean(self, rows: np.ndarray, functional_open: np.ndarray) -> np.ndarray:
        """Log NB means of the cells ``rows``, library and batch effects included (rows x genes).

        Targets: base + signed, weighted TF activity of their additive regulators (only in the
        edge's cell types) + cooperative pairs' AND gate + signed contribution of their
        functional peaks' openness. TFs and pathway genes follow their own activity; decoy
        kinases and background genes vary by cell type only.
        """
        cfg, k, a = self.config, self.ctype[rows], self.activity[rows]
        lm = self.gene_base[None, :] + self.gene_type[k] + self.batch_gene[self.batch[rows]]
        lm += self.log_lib_rna[rows, None]
        lm[:, self.tf_cols] += cfg.tf_expression_coupling * a
        lm[:, self.sig_cols] += cfg.signal_expression_coupling * self.sig_act[rows]
        n_targets = self.edge_weights.shape[2]
        for kk in np.unique(k):
            sel = k == kk
            lm[sel, :n_targets] += a[sel] @ self.edge_weights[kk]
        lm[:, :n_targets] += (self.f_effect.T @ (functional_open - self.f_mean).T).T
        gene, tf_a, tf_b, weight = self.coop
        lm[:, gene] += weight * _and_gate(a[:, tf_a], a[:, tf_b])
        return lm


def _background_genes(config: SimulationConfig, rng, pfms_all, taken: list[str]) -> list[str]:
    """Real DoRothEA target names not used elsewhere, then synthetic ``SIMG00001``... names
    once the real ones run out (a 10x run measures ~36,000 genes, more than DoRothEA names)."""
    n = config.n_background_genes
    if not n:
        return []
    pool = sorted(set(_regulons()["target"]) - set(pfms_all) - set(taken))
    real = _choose(rng, pool, min(n, len(pool)))
    return real + [f"{SYNTHETIC_GENE_PREFIX}{i:05d}" for i in range(1, n - len(real) + 1)]


def _cooperative_pairs(config, rng, edges: pd.DataFrame, targets: list[str]) -> list[tuple[int, int]]:
    """(edge row, partner edge row) for the first two activators of each cooperative gene."""
    if not config.cooperative_gene_fraction:
        return []
    activators = edges[edges["sign"] > 0].groupby("gene", sort=False)
    pairs = {g: list(grp.index[:2]) for g, grp in activators if len(grp) >= 2}
    pool = [g for g in targets if g in pairs]
    n = min(len(pool), int(round(config.cooperative_gene_fraction * len(targets))))
    return [tuple(pairs[g]) for g in (_choose(rng, pool, n) if n else [])]


def simulate(config: SimulationConfig | None = None):
    """Simulate a MuData in the DESIGN §2 contract, with ground truth in ``uns`` and layers.

    Same config (seed included) -> identical arrays and tables. Counts are made per block of
    cells from separate random streams (each count the inverse CDF of its own uniform), so the
    block size changes nothing but memory.
    """
    import anndata as ad
    import mudata as md

    config = config or SimulationConfig()
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(9)]
    rng_genes, rng_layout, rng_seq, rng_cells, rng_act, rng_counts, rng_open, rng_rna, rng_atac = streams

    pfms_all = motif_lib.load_jaspar_pfms()
    tfs, regulators, targets, edges, paralogs = _select_genes(config, rng_genes, pfms_all)
    pfms = {t: np.asarray(pfms_all[t]) for t in tfs}
    thresholds = dict(zip(tfs, motif_lib.motif_thresholds(pfms, config.motif_pvalue)))
    signalling = _signalling_nodes(config)
    background = _background_genes(config, rng_genes, pfms_all, targets + signalling)
    genes = targets + tfs + signalling + background
    if len(set(genes)) != len(genes):
        raise ValueError("gene names collide between roles")

    # edge attributes: weights (some weak), the cell types where the edge acts, cooperative
    # pairs (always act in every type) and whether its sites are detectable by a scan
    n_edges, K = len(edges), config.n_cell_types
    type_names = [f"type_{i + 1}" for i in range(K)]
    weak = rng_genes.random(n_edges) < config.weak_edge_fraction
    weight = np.where(
        weak,
        rng_genes.uniform(*config.weak_weight_range, n_edges),
        rng_genes.uniform(*config.weight_range, n_edges),
    )
    active = np.ones((n_edges, K), dtype=bool)
    for e in np.nonzero(rng_genes.random(n_edges) < config.type_specific_edge_fraction)[0]:
        if K < 2:
            break
        m = int(rng_genes.integers(1, K))
        active[e] = False
        active[e, rng_genes.choice(K, size=m, replace=False)] = True
    edge_pos = {e: i for i, e in enumerate(edges.index)}
    coop_pairs = _cooperative_pairs(config, rng_genes, edges, targets)
    partner = pd.Series("", index=edges.index, dtype=object)
    for e1, e2 in coop_pairs:
        active[[edge_pos[e1], edge_pos[e2]]] = True
        partner[e1], partner[e2] = edges.at[e2, "tf"], edges.at[e1, "tf"]
    detectable = np.ones(n_edges, dtype=bool)
    if config.missed_site_fraction:
        detectable = rng_genes.random(n_edges) >= config.missed_site_fraction
    edges = edges.assign(
        weight=weight,
        cell_types=[
            ";".join(type_names[k] for k in np.nonzero(a)[0]) if not a.all() else "all" for a in active
        ],
        detectable=detectable,
    )

    # genome
    layout = _layout(config, rng_layout, genes)
    peaks = _make_peaks(config, rng_layout, layout, targets)
    sequences, peak_truth, functional = _plant_sequences(
        config, rng_seq, peaks, edges, tfs, pfms, thresholds, paralogs
    )

    # cells
    C, T = config.n_cells, len(tfs)
    props = rng_cells.dirichlet(np.full(K, 8.0))
    ctype = rng_cells.choice(K, size=C, p=props)
    batch = rng_cells.integers(config.n_batches, size=C)
    stim = rng_cells.random(C) < config.stimulated_fraction
    signal = stim * np.exp(0.25 * rng_cells.standard_normal(C))
    sig_act = _signalling_activity(config, signal)

    # TF activity: cell-type programme + within-type variation + signalling input; a paralog
    # mixes in its regulator's activity
    on = rng_act.random((K, T)) < config.programme_on_fraction
    programme = config.programme_strength * on + 0.25 * rng_act.standard_normal((K, T))
    programme -= programme.mean(axis=0, keepdims=True)
    loadings = rng_act.standard_normal((config.n_latent_factors, T))
    loadings /= np.linalg.norm(loadings, axis=0, keepdims=True)
    z = rng_act.standard_normal((C, config.n_latent_factors))
    rho = config.shared_latent_fraction
    within = np.sqrt(rho) * (z @ loadings) + np.sqrt(1 - rho) * rng_act.standard_normal((C, T))
    activity = programme[ctype] + config.within_type_sd * within
    tf_col = {t: i for i, t in enumerate(tfs)}
    for tf in _pathway_tfs(config.hierarchy):
        activity[:, tf_col[tf]] += config.signal_strength * sig_act[tf].to_numpy()
    r = config.paralog_correlation
    for reg, par in paralogs:
        activity[:, tf_col[par]] = r * activity[:, tf_col[reg]] + np.sqrt(1 - r**2) * activity[:, tf_col[par]]

    # peaks: base + cell-type programme + chromatin states + noise; functional sites also
    # follow their TF (and are closed outside the edge's cell types)
    P = len(peaks)
    prox = np.exp(-peaks["distance"].to_numpy() / config.distance_scale)
    base_open = rng_act.normal(0.0, 0.5, P)
    type_open = rng_act.normal(0.0, config.peak_type_sd, (K, P))
    F = config.chromatin_factors
    chrom_load = rng_act.standard_normal((F, P)) * (config.chromatin_factor_sd / np.sqrt(max(F, 1)))
    chrom_z = rng_act.standard_normal((C, F))
    f_edge = np.array([edge_pos[e] for e, _p in functional], dtype=np.int64)
    f_peak = np.array([p for _e, p in functional], dtype=np.int64)
    f_tf = np.array([tf_col[t] for t in edges["tf"].to_numpy()[f_edge]], dtype=np.int64)
    f_active = active[f_edge]
    f_gain = config.peak_tf_response * prox[f_peak]
    # noise-free mean openness of each functional site over all cells, to centre its effect
    n_type = np.bincount(ctype, minlength=K)
    act_type = np.zeros((K, T))
    np.add.at(act_type, ctype, activity)
    f_mean = (
        base_open[f_peak]
        + n_type @ type_open[:, f_peak] / C
        + (f_gain * (act_type[:, f_tf] * f_active.T).sum(axis=0)) / C
        - config.closed_offset * (n_type[:, None] * ~f_active.T).sum(axis=0) / C
    )
    gcol = {g: i for i, g in enumerate(genes)}
    f_gene = np.array([gcol[g] for g in edges["gene"].to_numpy()[f_edge]], dtype=np.int64)
    f_sign = edges["sign"].to_numpy()[f_edge]
    f_effect = sp.csr_matrix(
        (f_sign * config.peak_effect * prox[f_peak], (np.arange(len(f_edge)), f_gene)),
        shape=(len(f_edge), len(targets)),
    )

    # library sizes with a per-batch shift (RNA and ATAC), per-gene batch effects and means
    G, nT = len(genes), len(targets)
    shifts = config.batch_library_shift * (
        np.linspace(-0.5, 0.5, config.n_batches) if config.n_batches > 1 else np.zeros(1)
    )
    log_lib_rna = shifts[batch] + config.library_sd * rng_counts.standard_normal(C)
    log_lib_atac = shifts[::-1][batch] + config.library_sd * rng_counts.standard_normal(C)
    batch_gene = rng_counts.normal(0.0, config.batch_gene_sd, (config.n_batches, G))
    n_sig, n_bg = len(signalling), len(background)
    gene_base = np.concatenate(
        [
            rng_counts.normal(np.log(config.target_mean_count), 0.6, nT),
            rng_counts.normal(np.log(config.tf_mean_count), 0.5, T + n_sig),
            rng_counts.normal(np.log(config.background_mean_count), config.background_log_sd, n_bg),
        ]
    )
    gene_type = np.zeros((K, G))
    decoy_cols = [gcol[n] for n in signalling if n not in sig_act]
    gene_type[:, decoy_cols] = rng_counts.normal(0.0, 0.5, (K, len(decoy_cols)))
    gene_type[:, G - n_bg :] = rng_counts.normal(0.0, 0.5, (K, n_bg))

    additive = np.ones(n_edges, dtype=bool)
    additive[[edge_pos[e] for pair in coop_pairs for e in pair]] = False
    edge_weights = np.zeros((K, T, nT))
    e_idx = np.nonzero(additive)[0]
    e_tf = np.array([tf_col[t] for t in edges["tf"].to_numpy()[e_idx]], dtype=np.int64)
    e_gene = np.array([gcol[g] for g in edges["gene"].to_numpy()[e_idx]], dtype=np.int64)
    for kk in range(K):
        on_k = active[e_idx, kk]
        edge_weights[kk, e_tf[on_k], e_gene[on_k]] = (edges["sign"].to_numpy() * weight)[e_idx][on_k]
    coop = (
        np.array([gcol[edges.at[e1, "gene"]] for e1, _e2 in coop_pairs], dtype=np.int64),
        np.array([tf_col[edges.at[e1, "tf"]] for e1, _e2 in coop_pairs], dtype=np.int64),
        np.array([tf_col[edges.at[e2, "tf"]] for _e1, e2 in coop_pairs], dtype=np.int64),
        np.array([(weight[edge_pos[e1]] + weight[edge_pos[e2]]) / 2 for e1, e2 in coop_pairs]),
    )
    sig_nodes = [n for n in signalling if n in sig_act]
    model = _CountModel(
        config=config,
        ctype=ctype,
        batch=batch,
        activity=activity,
        sig_act=sig_act[sig_nodes].to_numpy(),
        log_lib_rna=log_lib_rna,
        log_lib_atac=log_lib_atac.astype(np.float32),
        gene_base=gene_base,
        gene_type=gene_type,
        batch_gene=batch_gene,
        tf_cols=np.array([gcol[t] for t in tfs], dtype=np.int64),
        sig_cols=np.array([gcol[n] for n in sig_nodes], dtype=np.int64),
        edge_weights=edge_weights,
        coop=coop,
        base_open=base_open.astype(np.float32),
        type_open=type_open.astype(np.float32),
        chrom_z=chrom_z,
        chrom_load=chrom_load,
        f_peak=f_peak,
        f_tf=f_tf,
        f_active=f_active,
        f_gain=f_gain,
        f_mean=f_mean,
        f_effect=f_effect,
    )

    # counts, one block of cells at a time
    block = max(1, _BLOCK_ELEMENTS // max(P, G))
    rna_parts, atac_parts, rate_parts = [], [], []
    for start in range(0, C, block):
        rows = np.arange(start, min(C, start + block))
        openness = model.openness(rows, rng_open.standard_normal((len(rows), P), dtype=np.float32))
        rate = np.exp(np.minimum(model.rna_log_mean(rows, openness[:, f_peak]), np.log(1e4)))
        u = rng_rna.random(rate.shape, dtype=np.float32)
        rna_parts.append(sparse_nb_counts(u, rate, config.rna_dispersion))
        if config.true_rate_genes == "all":
            rate_parts.append(rate.astype(np.float32))
        else:
            part = sp.csr_matrix(rate[:, :nT].astype(np.float32))
            part.resize((len(rows), G))
            rate_parts.append(part)
        openness += np.float32(np.log(config.atac_mean_count))
        openness += model.log_lib_atac[rows, None]
        atac_mean = np.minimum(np.exp(openness, out=openness), np.float32(1e4), out=openness)
        u = rng_atac.random(atac_mean.shape, dtype=np.float32)
        atac_parts.append(sparse_nb_counts(u, atac_mean, config.atac_dispersion))
        del openness, atac_mean, u
    rna_counts = sp.vstack(rna_parts, format="csr")
    atac_counts = sp.vstack(atac_parts, format="csr")
    del rna_parts, atac_parts
    true_rate = (
        np.concatenate(rate_parts) if config.true_rate_genes == "all" else sp.vstack(rate_parts, format="csr")
    )
    del rate_parts

    # assemble
    obs_names = pd.Index([f"cell_{i:05d}" for i in range(C)])
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([type_names[k] for k in ctype], categories=type_names),
            "batch": pd.Categorical(
                [f"donor_{b + 1}" for b in batch],
                categories=[f"donor_{b + 1}" for b in range(config.n_batches)],
            ),
            "condition": pd.Categorical(
                np.where(stim, CONDITIONS[1], CONDITIONS[0]), categories=list(CONDITIONS)
            ),
        },
        index=obs_names,
    )
    rna_var = pd.DataFrame(
        {
            "chrom": layout.loc[genes, "chrom"].astype(str).to_numpy(),
            "tss": layout.loc[genes, "tss"].to_numpy(np.int64),
        },
        index=pd.Index(genes),
    )
    rna = ad.AnnData(rna_counts, obs=pd.DataFrame(index=obs_names), var=rna_var)
    rna.layers["true_rate"] = true_rate
    rna.obsm["true_tf_activity"] = pd.DataFrame(activity, index=obs_names, columns=tfs)
    rna.obsm["true_signalling_activity"] = pd.DataFrame(
        sig_act.to_numpy(), index=obs_names, columns=list(sig_act.columns)
    )
    atac_var = pd.DataFrame(
        {
            "chrom": peaks["chrom"].astype(str).to_numpy(),
            "start": peaks["start"].to_numpy(np.int64),
            "end": peaks["end"].to_numpy(np.int64),
            "sequence": sequences.astype(str),
        },
        index=peaks.index.copy(),
    )
    atac = ad.AnnData(atac_counts, obs=pd.DataFrame(index=obs_names), var=atac_var)

    # no pulling of modality columns into the global table (mudata 0.4 behaviour, no warning):
    # the global obs is exactly the three contract columns
    with md.set_options(pull_on_update=False):
        mdata = md.MuData({"rna": rna, "atac": atac})
        for col in obs.columns:
            mdata.obs[col] = obs[col]

    p2g = (
        peak_truth[["gene", "peak", "distance"]]
        .sort_values(["gene", "distance", "peak"])
        .reset_index(drop=True)
    )
    p2g["distance"] = p2g["distance"].astype(np.int64)
    mdata.uns["peak_to_gene"] = p2g
    mdata.uns["truth_tf_gene"] = (
        edges[["tf", "gene", "sign", "weight", "cell_types"]]
        .astype({"sign": np.int64, "weight": np.float64})
        .sort_values(["gene", "tf"])
        .reset_index(drop=True)
    )
    mdata.uns["truth_signalling"] = pd.DataFrame(
        list(config.hierarchy), columns=["source", "target", "sign", "level"]
    ).astype({"sign": np.int64})
    mdata.uns["truth_peaks"] = peak_truth.reset_index(drop=True)
    roles = (
        ["target"] * len(targets)
        + ["tf_regulator" if t in regulators else "tf_decoy" for t in tfs]
        + [
            "receptor"
            if n == config.hierarchy[0][0]
            else "decoy_kinase"
            if n in config.decoy_kinases
            else "kinase"
            for n in signalling
        ]
        + [
            "synthetic_background" if g.startswith(SYNTHETIC_GENE_PREFIX) else "background"
            for g in background
        ]
    )
    mdata.uns["truth_gene_roles"] = pd.DataFrame({"gene": genes, "role": roles})
    paralog_of = dict(paralogs)
    mdata.uns["truth_edge_mechanisms"] = (
        pd.DataFrame(
            {
                "tf": edges["tf"].to_numpy(),
                "gene": edges["gene"].to_numpy(),
                "site_detectable": edges["detectable"].to_numpy(bool),
                "cooperative_with": partner.to_numpy().astype(str),
                "paralog_decoy": [paralog_of.get(t, "") for t in edges["tf"]],
            }
        )
        .sort_values(["gene", "tf"])
        .reset_index(drop=True)
    )
    mdata.uns["simulation_config"] = config.to_json()
    return mdata


def write_simulated(path: str | os.PathLike, config: SimulationConfig | None = None) -> Path:
    """Simulate and write the .h5mu atomically (temp file in the same folder, then os.replace),
    so a killed run never leaves a torn dataset where a reader would pick it up."""
    path = Path(path)
    mdata = simulate(config)
    write_atomic(
        path,
        lambda tmp: mdata.write_h5mu(tmp, compression="gzip"),  # gzip: ~2.5x smaller
        suffix=".tmp.h5mu",
    )
    return path


def truth_table(mdata, key: str, columns: list[str]) -> pd.DataFrame:
    """The simulator's ``uns[key]`` truth as a table; empty with ``columns`` when ``mdata`` is None
    (a user's dataset has no truth, but the table must still exist for downstream joins)."""
    if mdata is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.DataFrame(mdata.uns[key]).reset_index(drop=True)


__all__ = [
    "CONDITIONS",
    "DEFAULT_DECOY_KINASES",
    "DEFAULT_HIERARCHY",
    "PRESETS",
    "SYNTHETIC_GENE_PREFIX",
    "SimulationConfig",
    "simulate",
    "truth_table",
    "write_simulated",
]
