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

The ``hard`` preset (:meth:`SimulationConfig.hard`) adds what makes real data hard: some edges
act through low-affinity sites the scan misses (so the candidate list lacks them), co-expressed
paralogs whose real motifs the regulators' sites also hit, cooperative pairs (a gene responds
to the smaller of two TFs' activities), more type-specific and repressive edges, and peak
openness that follows TF activity only in part. Truth: ``uns['truth_cooperative']``,
``uns['truth_paralogs']`` and the role ``functional_weak`` in ``uns['truth_peaks']``.
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

from regnet_assets.atomic import write_atomic
from regnet_assets.science.dataset import motifs as motif_lib
from regnet_assets.science.dataset.reference_data import dorothea

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
PRESETS = ("default", "small", "large", "hard")
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
    n_background_genes: int = 0  # beyond the unused real DoRothEA names (~4,400): SIMG00001, ...
    background_mean_count: float | None = None  # None = target_mean_count
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
    # accessibility
    peak_tf_response: float = 1.0  # gamma: functional-peak openness per unit TF activity
    peak_effect: float = 0.3  # beta: target log-mean per unit functional-peak openness
    peak_type_sd: float = 0.4
    peak_noise_sd: float = 0.4
    closed_offset: float = 1.5  # type-restricted functional peaks are this much closer elsewhere
    atac_mean_count: float = 0.3
    # counts and technical effects
    target_mean_count: float = 2.0
    tf_mean_count: float = 3.0
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
    # sampling: False = one dense cells x features draw (sizes up to ~10^8 entries); True =
    # chunks of cells, sparse counts, nothing cells x peaks or cells x genes ever dense
    sparse_counts: bool = False
    chunk_cells: int = 1024  # part of the config: the chunking sets which random draws go where
    # what makes real data hard (all off by default; :meth:`hard` switches them on). Their random
    # draws come from streams of their own, so switched off they leave the data bit-identical.
    # share of true edges acting through low-affinity sites, between the thresholds of
    # weak_site_pvalue and motif_pvalue: the scan misses them unless a chance hit rescues them
    weak_site_edge_fraction: float = 0.0
    weak_site_pvalue: float = 1e-3
    # share of regulators with a co-expressed paralog: a decoy TF whose real JASPAR motif is
    # hit by the regulator's planted sites, with activity paralog_coexpression-correlated to it
    paralog_fraction: float = 0.0
    paralog_coexpression: float = 0.8
    # share of target genes whose two same-sign regulators act only together (AND: the effect
    # follows the smaller of the two activities)
    cooperative_gene_fraction: float = 0.0

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
        check(self.chunk_cells >= 1, "chunk_cells must be >= 1")
        for name in ("weak_site_edge_fraction", "paralog_fraction", "cooperative_gene_fraction"):
            check(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1]")
        check(0 <= self.paralog_coexpression <= 1, "paralog_coexpression must be in [0, 1]")
        check(
            self.motif_pvalue < self.weak_site_pvalue < 1,
            "weak_site_pvalue must be in (motif_pvalue, 1)",
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
    def large(cls, seed: int = 0, **overrides) -> SimulationConfig:
        """10x-Multiome-sized: 50,000 cells, 20,000 genes (2,000 targets with truth, 200 TFs),
        ~100,000 peaks of 256 bp, sparse counts (~3-4 % non-zero in ATAC, ~10 % in RNA, as in
        real data), sampled in chunks so memory stays a few GB."""
        params = dict(
            seed=seed,
            n_cells=50_000,
            n_target_genes=2_000,
            n_tfs=200,
            regulator_fraction=0.5,
            peaks_per_gene=(40, 60),
            n_cell_types=8,
            n_batches=4,
            n_chromosomes=22,
            n_background_genes=20_000 - 2_000 - 200 - len(_signalling_nodes(cls())),
            background_mean_count=0.02,
            atac_mean_count=0.03,
            sparse_counts=True,
        )
        params.update(overrides)
        return cls(**params)

    @classmethod
    def hard(cls, seed: int = 0, **overrides) -> SimulationConfig:
        """The default sizes with what makes real data hard, where linear and motif-only baselines
        should fail: the scan misses weak-site edges, co-expressed paralogs share the regulators'
        sites, cooperative pairs act together, more edges are cell-type specific or repressive,
        and accessibility follows TF activity only in part."""
        params = dict(
            seed=seed,
            weak_site_edge_fraction=0.4,
            paralog_fraction=0.25,
            paralog_coexpression=0.8,
            cooperative_gene_fraction=0.3,
            type_specific_edge_fraction=0.5,
            repressor_regulator_fraction=0.4,
            peak_tf_response=0.5,
            peak_type_sd=0.6,
            peak_noise_sd=0.6,
        )
        params.update(overrides)
        return cls(**params)

    @classmethod
    def preset(cls, name: str, seed: int = 0, **overrides) -> SimulationConfig:
        """The named preset: ``default`` (make run), ``small`` (tests), ``large`` (real size) or
        ``hard`` (default size, realistic difficulties)."""
        if name not in PRESETS:
            raise ValueError(f"simulator preset must be one of {list(PRESETS)}, got {name!r}")
        return cls(seed=seed, **overrides) if name == "default" else getattr(cls, name)(seed, **overrides)

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
    decoy_tfs = _choose(rng, eligible, config.n_tfs - n_reg, exclude=regulators)
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
    return tfs, regulators, targets, edges


def _add_paralogs(config, rng, tfs: list[str], regulators: list[str], edges, pfms):
    """(TFs, ``{regulator: paralog}``): paralogs for ``paralog_fraction`` of the regulators with
    targets, taking the place of as many plain decoys (the TF count stays ``n_tfs``)."""
    signalling = set(_signalling_nodes(config))
    eligible = _eligible_tfs(config.motif_pvalue, config.peak_length)
    pool = [t for t in eligible if t not in signalling and t not in regulators]
    decoys = [t for t in tfs if t not in regulators]
    with_targets = [r for r in regulators if r in set(edges["tf"])]
    n = min(int(round(config.paralog_fraction * len(with_targets))), len(decoys))
    paralogs = _choose_paralogs(config, rng, with_targets, pool, pfms, n)
    new = [t for t in paralogs.values() if t not in decoys]
    dropped = set(_choose(rng, [t for t in decoys if t not in paralogs.values()], len(new)))
    return regulators + [t for t in decoys if t not in dropped] + new, paralogs


def _choose_paralogs(config, rng, regulators: list[str], pool: list[str], pfms, n: int) -> dict[str, str]:
    """``{regulator: paralog}`` for ``n`` of the regulators: the pool TF whose real
    JASPAR motif (no wider than the regulator's) is hit inside most of the regulator's sites.

    Real paralog families (ESR1/ESR2, MYC/MYCN, the ETS or GATA factors) share motifs, so a scan
    cannot tell which one binds; sites planted for the regulator are then drawn to hit both.
    A regulator gets no paralog when fewer than half of its sites would hit any pool TF.
    """
    names = regulators + pool
    cutoffs = motif_lib.motif_thresholds({t: pfms[t] for t in names}, config.motif_pvalue)
    threshold = {t: _as_int(x) for t, x in zip(names, cutoffs)}
    motif = {t: _int_motif(pfms[t]) for t in names}
    out: dict[str, str] = {}
    for reg in rng.permutation(regulators):
        if len(out) >= n:
            break
        words = _words(rng, _probs(pfms[reg]), 256)
        words = words[_word_scores(motif[reg], words) >= threshold[reg]]
        best, best_rate = None, 0.5
        for tf in pool:
            if tf in out.values() or motif[tf].shape[1] > motif[reg].shape[1] or not len(words):
                continue
            rate = np.mean(_best_inside(motif[tf], words) >= threshold[tf])
            if rate > best_rate:
                best, best_rate = tf, rate
        if best is not None:
            out[str(reg)] = best
    return out


def _cooperative_partners(config, rng, edges: pd.DataFrame) -> np.ndarray:
    """Each edge's cooperative partner TF ("" for none): for ``cooperative_gene_fraction`` of the
    target genes, two of their regulators with the same sign act only together (an AND gate, so
    a model that adds up TF effects cannot fit it)."""
    partner = np.full(len(edges), "", dtype=object)
    pos = {e: i for i, e in enumerate(edges.index)}
    pairs = {}  # gene -> rows of its same-sign groups of two or more edges
    for gene, group in edges.groupby("gene", sort=False):
        groups = [list(g.index) for _sign, g in group.groupby("sign") if len(g) >= 2]
        if groups:
            pairs[gene] = groups
    n = min(len(pairs), int(round(config.cooperative_gene_fraction * config.n_target_genes)))
    for gene in _choose(rng, list(pairs), n):
        groups = pairs[gene]
        rows = groups[int(rng.integers(len(groups)))]
        a, b = (rows[i] for i in rng.choice(len(rows), size=2, replace=False))
        partner[pos[a]], partner[pos[b]] = edges.at[b, "tf"], edges.at[a, "tf"]
    return partner


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


def _probs(counts: np.ndarray) -> np.ndarray:
    """Base frequencies (4 x width) of a count matrix."""
    return counts / counts.sum(axis=0, keepdims=True)


def _int_motif(counts: np.ndarray) -> np.ndarray:
    """The discretised log-odds matrix the scanner scores with."""
    return motif_lib.discretise(motif_lib.pwm_log_odds(counts))


def _as_int(threshold: float) -> int:
    """A scan threshold on the discretised score grid."""
    return int(round(threshold * motif_lib.DEFAULT_RESOLUTION))


def _words(rng, probs: np.ndarray, tries: int) -> np.ndarray:
    """``tries`` words (base indices, tries x width), each column drawn from ``probs``."""
    cum = np.cumsum(probs, axis=0)
    draws = (rng.random((tries, probs.shape[1]))[:, None, :] > cum[None, :, :]).sum(axis=1)
    return np.minimum(draws, 3)


def _word_scores(int_motif: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Forward-strand score of each word (as wide as the motif)."""
    return int_motif[words, np.arange(int_motif.shape[1])[None, :]].sum(axis=1)


def _best_inside(int_motif: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Best score of a motif (no wider than the words) over the windows inside each word, on
    both strands: what the scan finds in a peak holding the word, whatever its flanks."""
    width = int_motif.shape[1]
    both = np.concatenate([words, 3 - words[:, ::-1]], axis=1)  # 3 - base = complement
    windows = np.lib.stride_tricks.sliding_window_view(both, width, axis=1)
    inside = np.r_[0 : words.shape[1] - width + 1, words.shape[1] : 2 * words.shape[1] - width + 1]
    scores = int_motif[windows[:, inside], np.arange(width)].sum(axis=2)
    return scores.max(axis=1)


def _sample_site(rng, counts: np.ndarray, threshold: float, tries: int = 256, shared=()) -> str:
    """A motif instance drawn from the PFM's base frequencies, conditioned on scoring at least
    the scan threshold (so every planted site is detectable at the scan p-value).

    ``shared``: (discretised motif, integer threshold) of paralogs the site must hit too, inside
    itself, so the scan sees the paralog wherever it sees the regulator.
    """
    int_lo = _int_motif(counts)
    draws = _words(rng, _probs(counts), tries)
    ok = _word_scores(int_lo, draws) >= _as_int(threshold)
    for motif, cutoff in shared:
        ok &= _best_inside(motif, draws) >= cutoff
    ok = np.nonzero(ok)[0]
    word = draws[ok[0]] if ok.size else int_lo.argmax(axis=0)
    return "".join(motif_lib.BASES[i] for i in word)


def _sample_weak_site(rng, counts: np.ndarray, threshold: float, floor: float, tries: int = 1024) -> str:
    """A low-affinity site, as real regulators often use: drawn from the PFM mixed half and half
    with a flat background, scoring (both strands) at least ``floor`` but below the scan
    threshold, so the scan misses it. Failing that, the best word below the threshold."""
    int_lo = _int_motif(counts)
    draws = _words(rng, 0.5 * _probs(counts) + 0.125, tries)
    best = _best_inside(int_lo, draws)
    below = best < _as_int(threshold)
    ok = np.nonzero(below & (best >= _as_int(floor)))[0]
    pick = ok[0] if ok.size else int(np.argmax(np.where(below, best, np.iinfo(np.int64).min)))
    return "".join(motif_lib.BASES[i] for i in draws[pick])


def _plant_sequences(config, rng, peaks, edges, tfs, pfms, thresholds, paralogs=None, floors=None):
    """Background sequences plus planted sites; returns sequences and the per-peak truth table.

    Edges flagged ``weak_site`` get low-affinity sites (role ``functional_weak``, floor
    ``floors[tf]``); a regulator with a paralog gets sites that hit the paralog's motif too.
    """
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

    shared = {
        reg: [(_int_motif(pfms[par]), _as_int(thresholds[par]))] for reg, par in (paralogs or {}).items()
    }

    def plant(i: int, tf: str, weak: bool = False) -> None:
        if weak:
            site = _sample_weak_site(rng, pfms[tf], thresholds[tf], floors[tf])
        else:
            site = _sample_site(rng, pfms[tf], thresholds[tf], shared=shared.get(tf, ()))
        s = "+" if rng.random() < 0.5 else "-"
        if s == "-":
            site = motif_lib.reverse_complement(site)
        pos = int(rng.integers(0, length - len(site) + 1))
        seqs[i, pos : pos + len(site)] = list(site)
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
        for (e_row, tf, weak), k in zip(gene_edges[["tf", "weak_site"]].itertuples(), ks):
            w = prox[rows] * free
            pick = rng.choice(len(rows), size=min(int(k), int(free.sum())), replace=False, p=w / w.sum())
            for j in pick:
                free[j] = False
                role[rows[j]] = "functional_weak" if weak else "functional"
                plant(rows[j], tf, weak)
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
def _nb(rng: np.random.Generator, mean: np.ndarray, dispersion: float) -> np.ndarray:
    """Negative binomial via Gamma-Poisson: var = mean + dispersion * mean**2."""
    if dispersion <= 0:
        return rng.poisson(mean).astype(np.float32)
    shape = 1.0 / dispersion
    lam = rng.gamma(shape, mean * dispersion)
    return rng.poisson(lam).astype(np.float32)


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


def _coexpress_paralogs(config, activity: np.ndarray, tf_col: dict, paralogs: dict) -> np.ndarray:
    """Mix each regulator's activity into its paralog's (correlation ~ ``paralog_coexpression``,
    same scale): paralogs are co-expressed, so expression alone cannot tell them apart."""
    c = config.paralog_coexpression
    for reg, par in paralogs.items():
        own = activity[:, tf_col[par]]
        activity[:, tf_col[par]] = c * activity[:, tf_col[reg]] + np.sqrt(1 - c**2) * own
    return activity


def _gene_effects(config, rng, genes, targets, tfs, signalling, background, sig_act) -> tuple:
    """Each gene's base log-mean and per-cell-type offset (K x genes), drawn once for all cells."""
    K, gcol = config.n_cell_types, {g: i for i, g in enumerate(genes)}
    base, type_effect = np.zeros(len(genes)), np.zeros((K, len(genes)))
    for g in targets:
        base[gcol[g]] = rng.normal(np.log(config.target_mean_count), 0.6)
    for t in tfs:
        base[gcol[t]] = rng.normal(np.log(config.tf_mean_count), 0.5)
    for node in signalling:
        base[gcol[node]] = rng.normal(np.log(config.tf_mean_count), 0.5)
        if node not in sig_act:  # decoy kinases: cell-type differences, no condition effect
            type_effect[:, gcol[node]] = rng.normal(0, 0.5, K)
    mean = config.target_mean_count if config.background_mean_count is None else config.background_mean_count
    for g in background:
        base[gcol[g]] = rng.normal(np.log(mean), 0.6)
        type_effect[:, gcol[g]] = rng.normal(0, 0.5, K)
    return base, type_effect


def _rna_log_means(
    config,
    effects,
    genes,
    targets,
    tfs,
    signalling,
    edges,
    active,
    ctype,
    activity,
    centred_open,
    functional,
    prox,
    sig_act,
) -> np.ndarray:
    """Log NB means before batch and library effects, cells x ``genes`` (the first genes of the
    effects' order: targets, TFs, signalling, then background).

    Targets: base + signed, weighted TF activity of their true regulators (only in the edge's
    cell types; for a cooperative pair, the smaller of the pair's two activities) + signed
    contribution of their functional peaks' openness (``centred_open[:, j]`` for the j-th
    functional pair). TFs and pathway genes follow their own activity; decoy
    kinases and background genes vary by cell type only.
    """
    base, type_effect = effects
    tf_col = {t: i for i, t in enumerate(tfs)}
    gcol = {g: i for i, g in enumerate(genes)}
    log_mu = np.zeros((len(ctype), len(genes)))
    for g in targets:
        log_mu[:, gcol[g]] = base[gcol[g]]
    for i, row in enumerate(edges.itertuples()):
        in_type = active[i][ctype]
        a = activity[:, tf_col[row.tf]]
        if row.partner:  # AND: the gene responds only as far as both TFs are active
            a = np.minimum(a, activity[:, tf_col[row.partner]])
        log_mu[:, gcol[row.gene]] += row.sign * row.weight * a * in_type
    for j, (e_row, p) in enumerate(functional):
        gene, sign = edges.at[e_row, "gene"], edges.at[e_row, "sign"]
        log_mu[:, gcol[gene]] += sign * config.peak_effect * prox[p] * centred_open[:, j]
    for t in tfs:
        log_mu[:, gcol[t]] = base[gcol[t]] + config.tf_expression_coupling * activity[:, tf_col[t]]
    for node in signalling:
        c = gcol[node]
        if node in sig_act:
            log_mu[:, c] = base[c] + config.signal_expression_coupling * sig_act[node]
        else:
            log_mu[:, c] = base[c] + type_effect[:, c][ctype]
    rest = np.arange(len(targets) + len(tfs) + len(signalling), len(genes))
    log_mu[:, rest] = base[rest] + type_effect[:, rest][ctype]
    return log_mu


def _poisson_sparse(rng, group: np.ndarray, scale: np.ndarray, rates: np.ndarray) -> sp.csr_matrix:
    """Independent Poisson counts with means ``scale[c] * rates[group[c], j]``, cells x columns,
    drawn without forming that matrix: a cell's total is Poisson(sum of its means) and, given
    the total, the counts are multinomial over the columns -- exactly the same distribution,
    at a cost proportional to the number of counts instead of cells x columns."""
    n, m = len(group), rates.shape[1]
    totals = rng.poisson(scale * rates.sum(axis=1)[group])
    rows = np.repeat(np.arange(n), totals)
    cum = np.cumsum(rates, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(rows.size)
    cols = np.empty(rows.size, dtype=np.int64)
    of_row = group[rows]
    for g in range(len(rates)):
        sel = of_row == g
        cols[sel] = np.searchsorted(cum[g], u[sel], side="right")
    codes, counts = np.unique(rows * m + np.minimum(cols, m - 1), return_counts=True)
    return sp.csr_matrix((counts.astype(np.float32), (codes // m, codes % m)), shape=(n, m))


@dataclass
class _CountModel:
    """Everything drawn once for all cells; :meth:`sample` draws the counts of some cells.

    Dense features (every one in dense mode; in sparse mode the motif-bearing peaks and the
    targets, TFs and signalling genes) follow the full model with cell-level noise and NB counts.
    The sparse remainder -- peaks without a planted site and background genes, whose means only
    depend on cell type (and batch) and library size -- is drawn as Poisson counts with the
    same means by :func:`_poisson_sparse` (without the NB / cell-noise overdispersion: nothing
    downstream of these features depends on it, and it keeps sampling proportional to counts).
    """

    config: SimulationConfig
    genes: list
    targets: list
    tfs: list
    signalling: list
    edges: pd.DataFrame
    active: np.ndarray
    functional: list
    ctype: np.ndarray
    batch: np.ndarray
    activity: np.ndarray
    sig_act: pd.DataFrame
    prox: np.ndarray
    base_open: np.ndarray
    type_open: np.ndarray
    effects: tuple
    batch_gene: np.ndarray
    log_lib_rna: np.ndarray
    log_lib_atac: np.ndarray
    dense_peaks: np.ndarray
    n_dense_genes: int

    def openness(self, rows, noise: np.ndarray) -> np.ndarray:
        """Openness of the cells ``rows`` at the dense peaks (noise: cells x dense peaks)."""
        c, ct, peaks = self.config, self.ctype[rows], self.dense_peaks
        o = self.base_open[peaks][None, :] + self.type_open[:, peaks][ct] + c.peak_noise_sd * noise
        tf_col, col = {t: i for i, t in enumerate(self.tfs)}, {p: j for j, p in enumerate(peaks)}
        edge_pos = {e: i for i, e in enumerate(self.edges.index)}
        for e_row, p in self.functional:
            in_type = self.active[edge_pos[e_row]][ct]
            tf_activity = self.activity[rows, tf_col[self.edges.at[e_row, "tf"]]]
            o[:, col[p]] += c.peak_tf_response * self.prox[p] * tf_activity * in_type
            o[:, col[p]] -= c.closed_offset * ~in_type
        return o

    def mean_functional_openness(self) -> np.ndarray:
        """Population mean openness of each functional pair's peak without the cell noise (whose
        mean is 0): the centre of the peak's effect on its gene when cells come in chunks."""
        c, tf_col = self.config, {t: i for i, t in enumerate(self.tfs)}
        type_share = np.bincount(self.ctype, minlength=c.n_cell_types) / len(self.ctype)
        edge_pos = {e: i for i, e in enumerate(self.edges.index)}
        out = np.empty(len(self.functional))
        for j, (e_row, p) in enumerate(self.functional):
            in_type = self.active[edge_pos[e_row]][self.ctype]
            tf_activity = self.activity[:, tf_col[self.edges.at[e_row, "tf"]]]
            out[j] = (
                self.base_open[p]
                + type_share @ self.type_open[:, p]
                + c.peak_tf_response * self.prox[p] * np.mean(tf_activity * in_type)
                - c.closed_offset * np.mean(~in_type)
            )
        return out

    def sample(self, rows, rng_noise, rng_counts, functional_mean=None):
        """(RNA counts, true rates, ATAC counts) of the cells ``rows`` as CSR matrices.

        ``functional_mean`` None centres functional-peak openness on these cells' own mean
        (exact when ``rows`` is every cell)."""
        c, n = self.config, len(rows)
        ct, b = self.ctype[rows], self.batch[rows]
        open_dense = self.openness(rows, rng_noise.standard_normal((n, len(self.dense_peaks))))
        col = {p: j for j, p in enumerate(self.dense_peaks)}
        at_functional = open_dense[:, [col[p] for _e, p in self.functional]]
        centre = at_functional.mean(axis=0) if functional_mean is None else functional_mean
        genes = self.genes[: self.n_dense_genes]
        log_mu = _rna_log_means(
            c,
            self.effects,
            genes,
            self.targets,
            self.tfs,
            self.signalling,
            self.edges,
            self.active,
            ct,
            self.activity[rows],
            at_functional - centre,
            self.functional,
            self.prox,
            self.sig_act.iloc[rows],
        )
        log_mu += self.batch_gene[b][:, : len(genes)] + self.log_lib_rna[rows, None]
        true_rate = np.exp(np.minimum(log_mu, np.log(1e4)))
        rna = sp.csr_matrix(_nb(rng_counts, true_rate, c.rna_dispersion))
        atac_rate = np.exp(np.log(c.atac_mean_count) + open_dense + self.log_lib_atac[rows, None])
        atac = sp.csr_matrix(_nb(rng_counts, np.minimum(atac_rate, 1e4), c.atac_dispersion))
        true_rate = sp.csr_matrix(true_rate.astype(np.float32))
        n_genes, n_peaks = len(self.genes), len(self.base_open)
        if len(genes) == n_genes and len(self.dense_peaks) == n_peaks:
            return rna, true_rate, atac

        # sparse remainder: background genes by (cell type, batch), plain peaks by cell type
        base, type_effect = self.effects
        bg = np.arange(len(genes), n_genes)
        group = ct * c.n_batches + b
        rates = np.exp(
            (type_effect[:, bg][:, None, :] + self.batch_gene[None, :, bg]).reshape(-1, len(bg)) + base[bg]
        )
        rna = sp.hstack([rna, _poisson_sparse(rng_counts, group, np.exp(self.log_lib_rna[rows]), rates)])
        true_rate = sp.hstack([true_rate, sp.csr_matrix((n, len(bg)), dtype=np.float32)])
        plain = np.setdiff1d(np.arange(n_peaks), self.dense_peaks)
        # exp(sd^2 / 2): the mean of the cell noise's lognormal factor, so means match dense mode
        log_rate = np.log(c.atac_mean_count) + c.peak_noise_sd**2 / 2 + self.base_open[plain]
        rates = np.exp(log_rate + self.type_open[:, plain])
        rest = _poisson_sparse(rng_counts, ct, np.exp(self.log_lib_atac[rows]), rates)
        # columns back in peak order: dense peaks then plain peaks, permuted to their positions
        order = np.argsort(np.concatenate([self.dense_peaks, plain]))
        atac = sp.hstack([atac, rest]).tocsc()[:, order].tocsr()
        return rna.tocsr(), true_rate.tocsr(), atac


def _sample_in_chunks(model: _CountModel, seed: np.random.SeedSequence):
    """Sparse mode: counts of ``chunk_cells`` cells at a time, each chunk with its own stream,
    stacked as CSR; the same config gives the same matrices."""
    n_cells, size = len(model.ctype), model.config.chunk_cells
    starts = range(0, n_cells, size)
    functional_mean = model.mean_functional_openness()
    parts: tuple[list, list, list] = ([], [], [])
    for start, child in zip(starts, seed.spawn(len(starts))):
        rng = np.random.default_rng(child)
        rows = np.arange(start, min(start + size, n_cells))
        for part, matrix in zip(parts, model.sample(rows, rng, rng, functional_mean)):
            part.append(matrix)
    out = []
    for part in parts:  # stack one matrix at a time and free its chunks: peak memory ~ data + 1
        out.append(sp.vstack(part, format="csr"))
        part.clear()
    return tuple(out)


def simulate(config: SimulationConfig | None = None):
    """Simulate a MuData in the DESIGN §2 contract, with ground truth in ``uns`` and layers.

    Same config (seed included) -> identical arrays and tables.
    """
    import anndata as ad
    import mudata as md

    config = config or SimulationConfig()
    # the 7th seeds the chunks of sparse mode; the 8th the hard effects (the first 7 are the
    # same as with spawn(7): adding it changed no draw of the other streams)
    seeds = np.random.SeedSequence(config.seed).spawn(8)
    streams = [np.random.default_rng(s) for s in seeds[:6]] + [seeds[6]]
    rng_genes, rng_layout, rng_seq, rng_cells, rng_act, rng_counts = streams[:6]
    rng_paralogs, rng_pairs, rng_weak = (np.random.default_rng(s) for s in seeds[7].spawn(3))

    pfms_all = motif_lib.load_jaspar_pfms()
    tfs, regulators, targets, edges = _select_genes(config, rng_genes, pfms_all)
    paralogs: dict[str, str] = {}
    if config.paralog_fraction:
        tfs, paralogs = _add_paralogs(config, rng_paralogs, tfs, regulators, edges, pfms_all)
    pfms = {t: np.asarray(pfms_all[t]) for t in tfs}
    thresholds = dict(zip(tfs, motif_lib.motif_thresholds(pfms, config.motif_pvalue)))
    floors = None
    if config.weak_site_edge_fraction:
        floors = dict(zip(tfs, motif_lib.motif_thresholds(pfms, config.weak_site_pvalue)))
    signalling = _signalling_nodes(config)
    background: list[str] = []
    if config.n_background_genes:
        regulons = _regulons()
        pool = sorted(set(regulons["target"]) - set(pfms_all) - set(targets) - set(signalling))
        n_real = min(config.n_background_genes, len(pool))
        synthetic = [f"SIMG{i:05d}" for i in range(1, config.n_background_genes - n_real + 1)]
        background = _choose(rng_genes, pool, n_real) + synthetic
    genes = targets + tfs + signalling + background
    if len(set(genes)) != len(genes):
        raise ValueError("gene names collide between roles")

    # edge attributes: weights (some weak) and the cell types where the edge acts
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
    edges = edges.assign(
        weight=weight,
        cell_types=[
            ";".join(type_names[k] for k in np.nonzero(a)[0]) if not a.all() else "all" for a in active
        ],
        partner=_cooperative_partners(config, rng_pairs, edges),
        weak_site=rng_weak.random(n_edges) < config.weak_site_edge_fraction,
    )

    # genome
    layout = _layout(config, rng_layout, genes)
    peaks = _make_peaks(config, rng_layout, layout, targets)
    sequences, peak_truth, functional = _plant_sequences(
        config, rng_seq, peaks, edges, tfs, pfms, thresholds, paralogs, floors
    )

    # cells
    C, T = config.n_cells, len(tfs)
    props = rng_cells.dirichlet(np.full(K, 8.0))
    ctype = rng_cells.choice(K, size=C, p=props)
    batch = rng_cells.integers(config.n_batches, size=C)
    stim = rng_cells.random(C) < config.stimulated_fraction
    signal = stim * np.exp(0.25 * rng_cells.standard_normal(C))
    sig_act = _signalling_activity(config, signal)

    # TF activity: cell-type programme + within-type variation + signalling input
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
    activity = _coexpress_paralogs(config, activity, tf_col, paralogs)

    # peak openness: per-peak base and cell-type offsets here; cell noise and TF response per chunk
    P = len(peaks)
    prox = np.exp(-peaks["distance"].to_numpy() / config.distance_scale)
    base_open = rng_act.normal(0.0, 0.5, P)
    type_open = rng_act.normal(0.0, config.peak_type_sd, (K, P))

    # library sizes with a per-batch shift (RNA and ATAC)
    shifts = config.batch_library_shift * (
        np.linspace(-0.5, 0.5, config.n_batches) if config.n_batches > 1 else np.zeros(1)
    )
    log_lib_rna = shifts[batch] + config.library_sd * rng_counts.standard_normal(C)
    log_lib_atac = shifts[::-1][batch] + config.library_sd * rng_counts.standard_normal(C)
    batch_gene = rng_counts.normal(0.0, config.batch_gene_sd, (config.n_batches, len(genes)))
    effects = _gene_effects(config, rng_counts, genes, targets, tfs, signalling, background, sig_act)

    motif_peaks = peak_truth["role"].to_numpy() != "background"
    model = _CountModel(
        config=config,
        genes=genes,
        targets=targets,
        tfs=tfs,
        signalling=signalling,
        edges=edges,
        active=active,
        functional=functional,
        ctype=ctype,
        batch=batch,
        activity=activity,
        sig_act=sig_act,
        prox=prox,
        base_open=base_open,
        type_open=type_open,
        effects=effects,
        batch_gene=batch_gene,
        log_lib_rna=log_lib_rna,
        log_lib_atac=log_lib_atac,
        dense_peaks=np.nonzero(motif_peaks)[0] if config.sparse_counts else np.arange(P),
        n_dense_genes=len(genes) - len(background) if config.sparse_counts else len(genes),
    )
    if config.sparse_counts:
        rna_counts, true_rate, atac_counts = _sample_in_chunks(model, streams[-1])
    else:  # one chunk of every cell, every feature dense (the default's exact draws)
        rna_counts, true_rate, atac_counts = model.sample(np.arange(C), rng_act, rng_counts)
        rna_counts, atac_counts = rna_counts.tocsr(), atac_counts.tocsr()
        true_rate = true_rate.toarray().astype(np.float32)

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
    coop = edges[edges["partner"] != ""]
    mdata.uns["truth_cooperative"] = (
        coop.loc[coop["tf"] < coop["partner"], ["gene", "tf", "partner"]]
        .astype(str)
        .sort_values(["gene", "tf"])
        .reset_index(drop=True)
    )
    mdata.uns["truth_paralogs"] = pd.DataFrame(
        {"tf": list(paralogs), "paralog": list(paralogs.values())}, dtype=str
    )
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
        + ["background"] * len(background)
    )
    mdata.uns["truth_gene_roles"] = pd.DataFrame({"gene": genes, "role": roles})
    mdata.uns["simulation_config"] = config.to_json()
    return mdata


def write_simulated(path: str | os.PathLike, config: SimulationConfig | None = None) -> Path:
    """Simulate and write the .h5mu atomically (temp file in the same folder, then os.replace),
    so a killed run never leaves a torn dataset where a reader would pick it up."""
    from regnet_assets.science.dataset.reading import quiet_mudata

    path = Path(path)
    mdata = simulate(config)
    with quiet_mudata():
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
    "SimulationConfig",
    "simulate",
    "truth_table",
    "write_simulated",
]
