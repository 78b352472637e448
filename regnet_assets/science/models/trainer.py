"""Per-gene inputs, the batched trainer, results, and per-gene checkpoints.

``build_gene_inputs`` turns a metacell MuData into one :class:`GeneInputs` per gene;
``train_genes`` trains many genes in one batched computation (``gene_model.BatchedGeneModel``)
so that each gene gets exactly what training it alone would give (same init, dropout masks,
minibatch order and per-gene optimiser/scheduler state), up to floating-point noise.
Fixes of the reference's bugs (``shared/reference/cell2net.md`` §2): the best epoch's weights are
a real copy, and the validation loss is averaged over validation samples.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from regnet_assets.atomic import write_atomic
from regnet_assets.science.common.correlation import pearson, spearman
from regnet_assets.science.common.normalise import log_cp10k, row_totals
from regnet_assets.science.common.obs import obs_column
from regnet_assets.science.models.module import (
    BatchedGeneModel,
    ModelSpec,
    distance_weight,
    gene_seed,
    init_gene_state,
    poisson_nll,
    sequence_onehot,
)

CHECKPOINT_FORMAT = "regnet.gene_model/1"
_BASE_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _c in enumerate("ACGT"):
    _BASE_CODE[ord(_c)] = _BASE_CODE[ord(_c.lower())] = _i


# ====================================================================== inputs
@dataclass
class GeneInputs:
    """Everything one gene's model sees, for M metacells (shared by all genes of a run)."""

    gene: str
    peak_names: list[str]  # P peaks, sorted by distance
    peak_seq: np.ndarray | None  # (P, L) uint8: 0..3 = A,C,G,T, 4 = N
    peak_acc: np.ndarray  # (M, P) log1p(CP10k) accessibility
    peak_dist: np.ndarray  # (P,) bp to TSS
    tf_names: list[str]  # T candidate TFs
    tf_exp: np.ndarray  # (M, T) log1p(CP10k) TF expression
    covariates: np.ndarray  # (M, C)
    target: np.ndarray  # (M,) raw counts of the gene
    train: np.ndarray  # (M,) bool, True = train metacell
    metacells: list[str] | None = None  # metacell names (M,), for the predictions table
    covariate_names: list[str] | None = None

    def validate(self) -> None:
        """Raise ValueError naming the field whose shape or content is inconsistent."""
        m, p, t = len(self.target), len(self.peak_names), len(self.tf_names)

        def check(name, arr, shape):
            if tuple(np.shape(arr)) != shape:
                raise ValueError(f"{self.gene}: {name} has shape {np.shape(arr)}, expected {shape}")

        check("peak_acc", self.peak_acc, (m, p))
        check("peak_dist", self.peak_dist, (p,))
        check("tf_exp", self.tf_exp, (m, t))
        check("train", self.train, (m,))
        if np.ndim(self.covariates) != 2 or len(self.covariates) != m:
            raise ValueError(f"{self.gene}: covariates must be (M={m}, C), got {np.shape(self.covariates)}")
        if self.peak_seq is not None:
            if np.ndim(self.peak_seq) != 2 or len(self.peak_seq) != p:
                raise ValueError(f"{self.gene}: peak_seq must be (P={p}, L), got {np.shape(self.peak_seq)}")
            if np.size(self.peak_seq) and int(np.max(self.peak_seq)) > 4:
                raise ValueError(f"{self.gene}: peak_seq codes must be in 0..4")
        if self.metacells is not None and len(self.metacells) != m:
            raise ValueError(f"{self.gene}: metacells has {len(self.metacells)} names, expected {m}")
        for name in ("peak_acc", "tf_exp", "covariates", "target", "peak_dist"):
            if not np.all(np.isfinite(np.asarray(getattr(self, name), dtype=float))):
                raise ValueError(f"{self.gene}: {name} has non-finite values")
        if np.any(np.asarray(self.target) < 0):
            raise ValueError(f"{self.gene}: target has negative counts")


def encode_sequences(seqs) -> np.ndarray:
    """Equal-length A/C/G/T/N strings → (P, L) uint8 codes (anything else counts as N)."""
    seqs = [str(s) for s in seqs]
    lengths = {len(s) for s in seqs}
    if len(lengths) > 1:
        raise ValueError(f"atac.var['sequence'] must have one fixed length, found {sorted(lengths)[:5]}")
    if not seqs:
        return np.zeros((0, 0), np.uint8)
    raw = np.frombuffer("".join(seqs).encode("ascii", "replace"), dtype=np.uint8)
    return _BASE_CODE[raw].reshape(len(seqs), lengths.pop())


def _columns(x, idx) -> np.ndarray:
    sub = x[:, idx]
    return (sub.toarray() if sp.issparse(sub) else np.asarray(sub)).astype(np.float64)


def build_gene_inputs(
    metacells,
    peak_to_gene: pd.DataFrame,
    candidates: pd.DataFrame,
    genes: list[str],
    covariates=("total_counts_rna_log", "total_counts_atac_log"),
) -> tuple[list[GeneInputs], dict[str, str]]:
    """One :class:`GeneInputs` per buildable gene, plus ``{gene: reason}`` for skipped genes.

    ``metacells``: MuData with summed raw counts in ``mod['rna'].X`` / ``mod['atac'].X``, an
    ``obs['split']`` of train/valid and the covariate columns (global or per-modality obs),
    optionally ``mod['atac'].var['sequence']``. ``peak_to_gene``: columns gene, peak, distance;
    ``candidates``: columns gene, tf.

    Accessibility and TF expression are log1p(counts per 10k of the metacell's total), whereas
    the reference feeds raw counts: raw counts differ by orders of magnitude between peaks and
    between metacells, so the largest features dominate the optimisation and the fitted model
    depends on sequencing depth; depth itself is still available through the covariates. A gene
    with fewer than 3 linked peaks or no candidate TF (other than itself) is skipped.
    """
    rna, atac = metacells.mod["rna"], metacells.mod["atac"]
    index = pd.Index(rna.obs_names)
    if not index.is_unique:
        raise ValueError("rna.obs_names must be unique")
    missing_cells = index.difference(pd.Index(atac.obs_names))
    if len(missing_cells):
        raise ValueError(
            f"{len(missing_cells)} metacells of rna are missing from atac, e.g. {missing_cells[0]!r}"
        )
    atac_rows = pd.Index(atac.obs_names).get_indexer(index)
    split = obs_column(metacells, "split", index)
    if split is None or split.isna().any():
        raise ValueError("obs['split'] is missing (expected values 'train'/'valid' for every metacell)")
    bad = set(split.astype(str)) - {"train", "valid"}
    if bad:
        raise ValueError(f"obs['split'] has values other than train/valid: {sorted(bad)[:5]}")
    train = (split.astype(str) == "train").to_numpy()
    cov_cols = []
    for name in covariates:
        col = obs_column(metacells, name, index)
        if col is None or col.isna().any():
            raise ValueError(f"covariate obs['{name}'] is missing (expected a number for every metacell)")
        cov_cols.append(pd.to_numeric(col).to_numpy(np.float32))
    cov = np.stack(cov_cols, axis=1) if cov_cols else np.zeros((len(index), 0), np.float32)
    for frame, cols, label in (
        (peak_to_gene, ("gene", "peak", "distance"), "peak_to_gene"),
        (candidates, ("gene", "tf"), "candidates"),
    ):
        lacking = [c for c in cols if c not in frame.columns]
        if lacking:
            raise ValueError(f"{label} lacks columns {lacking}")

    rna_x = rna.X
    atac_x = atac.X[atac_rows] if not np.array_equal(atac_rows, np.arange(len(index))) else atac.X
    rna_tot, atac_tot = row_totals(rna_x), row_totals(atac_x)
    # per-gene column slices: CSC makes them cheap
    rna_x = rna_x.tocsc() if sp.issparse(rna_x) else rna_x
    atac_x = atac_x.tocsc() if sp.issparse(atac_x) else atac_x
    rna_var, atac_var = pd.Index(rna.var_names), pd.Index(atac.var_names)
    sequences = None
    if "sequence" in atac.var.columns:
        sequences = encode_sequences(atac.var["sequence"].astype(str).to_list())

    links = peak_to_gene[peak_to_gene["gene"].isin(genes)]
    links = links.assign(distance=links["distance"].abs()).sort_values(
        ["gene", "distance", "peak"], kind="stable"
    )
    links = links.drop_duplicates(["gene", "peak"], keep="first")  # keep the minimum distance
    unknown = set(links["peak"]) - set(atac_var)
    if unknown:
        raise ValueError(
            f"peak_to_gene names {len(unknown)} peaks absent from atac.var_names, e.g. {sorted(unknown)[0]!r}"
        )
    by_gene_links = dict(tuple(links.groupby("gene", sort=False)))
    cands = candidates[candidates["gene"].isin(genes)]
    by_gene_tfs = {
        g: list(dict.fromkeys(df["tf"].astype(str))) for g, df in cands.groupby("gene", sort=False)
    }
    metacell_names = [str(x) for x in index]

    built, skipped = [], {}
    for gene in dict.fromkeys(genes):
        if gene not in rna_var:
            skipped[gene] = "gene not in rna.var_names"
            continue
        gl = by_gene_links.get(gene)
        n_peaks = 0 if gl is None else len(gl)
        if n_peaks < 3:
            skipped[gene] = f"{n_peaks} linked peaks (< 3)"
            continue
        tfs = [t for t in by_gene_tfs.get(gene, []) if t != gene and t in rna_var]
        if not tfs:
            skipped[gene] = "no candidate TFs"
            continue
        peak_idx = atac_var.get_indexer(gl["peak"])
        built.append(
            GeneInputs(
                gene=gene,
                peak_names=gl["peak"].astype(str).to_list(),
                peak_seq=None if sequences is None else sequences[peak_idx],
                peak_acc=log_cp10k(_columns(atac_x, peak_idx), atac_tot, np.float32),
                peak_dist=gl["distance"].to_numpy(np.float32),
                tf_names=tfs,
                tf_exp=log_cp10k(_columns(rna_x, rna_var.get_indexer(tfs)), rna_tot, np.float32),
                covariates=cov,
                target=_columns(rna_x, [rna_var.get_loc(gene)])[:, 0].astype(np.float32),
                train=train.copy(),
                metacells=metacell_names,
                covariate_names=list(covariates),
            )
        )
    return built, skipped


# ====================================================================== configuration
def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


@dataclass
class TrainConfig:
    """Training settings; defaults are the reference's v0.13 tutorial values."""

    lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 32
    epochs: int = 40
    scheduler_patience: int = 5
    scheduler_factor: float = 0.1
    scheduler_threshold: float = 1e-4  # torch ReduceLROnPlateau default (relative)
    min_lr: float = 1e-5
    dropout: float = 0.25
    attn_dropout: float = 0.1
    n_filters: tuple[int, ...] = (64, 32, 32, 16)
    n_dims: int = 16
    n_heads: int = 4
    seed: int = 0
    use_sequence: bool = True
    drop_last: bool = True
    # Start the output bias at log(mean train count): not in the reference, whose lr 1e-4 needs
    # thousands of steps just to reach the gene's scale; ranks are unaffected at init.
    init_bias_from_target: bool = True
    genes_per_batch: int | None = None  # None: all genes in one batched run
    eval_batch_elements: int = 1 << 23  # memory cap for the eval pass (G·rows·P·hidden)
    # float64 makes "alone == batched" hold to ~1e-10. In float32 training is chaotic at the
    # rounding level (Adam normalises tiny, noise-dominated gradients into ±lr steps): batched
    # and alone drift apart about as much as alone runs whose inputs differ by one ulp.
    dtype: str = "float32"
    # per-gene dropout streams: "generator" (torch.Generator per gene), "hash" (vectorised
    # counter-based, no per-gene launches), "auto" = hash on CUDA, generator on CPU
    dropout_rng: str = "auto"

    def __post_init__(self):
        self.n_filters = tuple(self.n_filters)
        checks = [
            ("lr", self.lr > 0 and math.isfinite(self.lr), "must be > 0"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("batch_size", _is_int(self.batch_size) and self.batch_size >= 1, "must be an integer >= 1"),
            ("epochs", _is_int(self.epochs) and self.epochs >= 1, "must be an integer >= 1"),
            ("scheduler_patience", self.scheduler_patience >= 0, "must be >= 0"),
            ("scheduler_factor", 0 < self.scheduler_factor < 1, "must be in (0, 1)"),
            ("scheduler_threshold", self.scheduler_threshold >= 0, "must be >= 0"),
            ("min_lr", 0 <= self.min_lr, "must be >= 0"),
            ("dropout", 0 <= self.dropout < 1, "must be in [0, 1)"),
            ("attn_dropout", 0 <= self.attn_dropout < 1, "must be in [0, 1)"),
            (
                "n_filters",
                len(self.n_filters) >= 1 and all(int(f) >= 1 for f in self.n_filters),
                "must be a non-empty sequence of positive integers",
            ),
            ("n_dims", _is_int(self.n_dims) and self.n_dims >= 1, "must be an integer >= 1"),
            ("n_heads", _is_int(self.n_heads) and self.n_heads >= 1, "must be an integer >= 1"),
            (
                "genes_per_batch",
                self.genes_per_batch is None or self.genes_per_batch >= 1,
                "must be None or >= 1",
            ),
            ("eval_batch_elements", self.eval_batch_elements >= 1, "must be >= 1"),
            ("dtype", self.dtype in ("float32", "float64"), "must be 'float32' or 'float64'"),
            (
                "dropout_rng",
                self.dropout_rng in ("auto", "generator", "hash"),
                "must be auto, generator or hash",
            ),
        ]
        for name, ok, why in checks:
            if not ok:
                raise ValueError(f"TrainConfig.{name} {why}, got {getattr(self, name)!r}")
        if self.n_dims % self.n_heads:
            raise ValueError(f"TrainConfig.n_heads must divide n_dims ({self.n_dims}), got {self.n_heads}")
        if self.min_lr > self.lr:
            raise ValueError(f"TrainConfig.min_lr must be <= lr ({self.lr}), got {self.min_lr}")

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["n_filters"] = list(self.n_filters)
        return d


# ====================================================================== optimiser / scheduler
class BatchedAdam:
    """Adam over stacked per-gene parameters with a per-gene learning-rate vector.

    Same update as ``torch.optim.Adam`` (L2 weight decay added to the gradient); all genes step
    together, so the bias-correction step count is shared. ``lr`` is a (G,) tensor the
    per-gene scheduler edits in place.
    """

    def __init__(self, params, lr: torch.Tensor, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params = [p for p in params if p.requires_grad]
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps, self.weight_decay = eps, weight_decay
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        bc1 = 1 - self.beta1**self.step_count
        bc2_sqrt = math.sqrt(1 - self.beta2**self.step_count)
        params = [p for p in self.params if p.grad is not None]
        idx = [i for i, p in enumerate(self.params) if p.grad is not None]
        grads = [p.grad for p in params]
        m = [self.exp_avg[i] for i in idx]
        v = [self.exp_avg_sq[i] for i in idx]
        if self.weight_decay:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        torch._foreach_lerp_(m, grads, 1 - self.beta1)
        torch._foreach_mul_(v, self.beta2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - self.beta2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, bc2_sqrt)
        torch._foreach_add_(denom, self.eps)
        upd = torch._foreach_div(m, denom)
        step = -self.lr / bc1
        torch._foreach_mul_(upd, [step.view(-1, *([1] * (p.dim() - 1))) for p in params])
        torch._foreach_add_(params, upd)


class BatchedPlateau:
    """``ReduceLROnPlateau(mode='max', threshold_mode='rel', cooldown=0)`` per gene."""

    def __init__(
        self,
        n_genes: int,
        patience: int,
        factor: float,
        min_lr: float,
        threshold: float = 1e-4,
        eps: float = 1e-8,
    ):
        self.patience, self.factor, self.min_lr, self.threshold, self.eps = (
            patience,
            factor,
            min_lr,
            threshold,
            eps,
        )
        self.best = np.full(n_genes, -np.inf)
        self.bad = np.zeros(n_genes, dtype=int)

    def step(self, metric: np.ndarray, lr: torch.Tensor) -> None:
        metric = np.asarray(metric, dtype=float)
        better = metric > self.best * (1 + self.threshold)  # NaN compares False, as in torch
        self.best = np.where(better, metric, self.best)
        self.bad = np.where(better, 0, self.bad + 1)
        reduce = self.bad > self.patience
        if reduce.any():
            old = lr.detach().cpu().double().numpy()
            new = np.maximum(old * self.factor, self.min_lr)
            change = reduce & (old - new > self.eps)
            lr.copy_(torch.as_tensor(np.where(change, new, old), dtype=lr.dtype))
            self.bad[reduce] = 0


# ====================================================================== results
@dataclass
class GeneResult:
    """One trained gene: sizes, best epoch, losses, history, predictions and weights."""

    gene: str
    n_peaks: int
    n_tfs: int
    n_params: int  # this gene's own parameters (no padding)
    best_epoch: int  # 1-based
    epochs_run: int
    train_loss: float  # at best epoch (eval-mode mean Poisson NLL over train metacells)
    valid_loss: float  # at best epoch, mean over valid metacells
    valid_spearman: float  # at best epoch
    history: (
        pd.DataFrame
    )  # epoch, train_loss, valid_loss, valid_spearman, train_spearman, lr, train_batch_loss
    predictions: pd.DataFrame  # metacell, split, observed, predicted (count scale)
    state: dict  # self-contained per-gene checkpoint (see save_gene_model)
    device: str
    seconds: float  # this gene's share of its batched run's wall time


def correlation_row(predictions: pd.DataFrame) -> dict:
    """Train/valid Spearman and Pearson between observed and predicted counts (scipy)."""
    out = {}
    for split in ("train", "valid"):
        sel = predictions[predictions["split"] == split]
        obs, pred = sel["observed"].to_numpy(), sel["predicted"].to_numpy()
        out[f"{split}_spearman"] = spearman(obs, pred)
        out[f"{split}_pearson"] = pearson(obs, pred)
        out[f"n_{split}"] = int(len(sel))
    return out


# ====================================================================== trainer
def _check_inputs(inputs: list[GeneInputs]) -> None:
    if not inputs:
        raise ValueError("inputs is empty")
    names = [x.gene for x in inputs]
    if len(set(names)) != len(names):
        raise ValueError("gene names in inputs must be unique")
    for x in inputs:
        x.validate()
    ref = inputs[0]
    for x in inputs[1:]:
        if len(x.target) != len(ref.target) or not np.array_equal(x.train, ref.train):
            raise ValueError(
                f"{x.gene}: all genes of a run must share the same metacells and train/valid split"
            )
        if np.shape(x.covariates)[1] != np.shape(ref.covariates)[1]:
            raise ValueError(f"{x.gene}: all genes of a run need the same number of covariates")
    has_seq = [x.peak_seq is not None for x in inputs]
    if any(has_seq) and not all(has_seq):
        raise ValueError("either every gene of a run has peak_seq or none has")
    if all(has_seq) and len({np.shape(x.peak_seq)[1] for x in inputs}) > 1:
        raise ValueError("peak_seq lengths differ between genes")


def _spec_for(inputs: list[GeneInputs], config: TrainConfig) -> ModelSpec:
    use_seq = config.use_sequence and inputs[0].peak_seq is not None
    return ModelSpec(
        n_covariates=int(np.shape(inputs[0].covariates)[1]),
        seq_len=int(np.shape(inputs[0].peak_seq)[1]) if use_seq else None,
        n_filters=config.n_filters,
        n_dims=config.n_dims,
        n_heads=config.n_heads,
        dropout=config.dropout,
        attn_dropout=config.attn_dropout,
    )


class StackedInputs:
    """Padded per-gene input tensors for one batched run."""

    def __init__(self, inputs: list[GeneInputs], spec: ModelSpec, device, dtype=torch.float32):
        g, m = len(inputs), len(inputs[0].target)
        pmax = max(len(x.peak_names) for x in inputs)
        tmax = max(len(x.tf_names) for x in inputs)
        acc = np.zeros((g, m, pmax), np.float32)
        tf = np.zeros((g, m, tmax), np.float32)
        dist = np.zeros((g, pmax), np.float32)
        for i, x in enumerate(inputs):
            p, t = len(x.peak_names), len(x.tf_names)
            acc[i, :, :p] = x.peak_acc
            tf[i, :, :t] = x.tf_exp
            dist[i, :p] = distance_weight(np.asarray(x.peak_dist, np.float64)).numpy()
        self.acc = torch.as_tensor(acc, device=device, dtype=dtype)
        self.tf = torch.as_tensor(tf, device=device, dtype=dtype)
        self.dist = torch.as_tensor(dist, device=device, dtype=dtype)
        cov = np.stack([np.asarray(x.covariates, np.float32) for x in inputs])
        self.cov = torch.as_tensor(cov, device=device, dtype=dtype)
        y = np.stack([np.asarray(x.target, np.float32) for x in inputs])
        self.y = torch.as_tensor(y, device=device, dtype=dtype)
        self.seq = None
        if spec.use_sequence:
            codes = np.full((g, pmax, spec.seq_len), 4, np.uint8)  # padded peaks: all N = zeros
            for i, x in enumerate(inputs):
                codes[i, : len(x.peak_names)] = x.peak_seq
            self.seq = sequence_onehot(codes, device=device).to(dtype)


def _predict_log_rates(model: BatchedGeneModel, data: StackedInputs, max_elements: int) -> torch.Tensor:
    """Eval-mode log-rates (G, M); the sequence encoder runs once for all metacells."""
    model.eval()
    with torch.no_grad():
        enc = model.encode(data.seq) if model.spec.use_sequence else None
        g, m, p = data.acc.shape
        rows = max(1, max_elements // (g * p * max(model.spec.merge_hidden, 4 * model.spec.n_dims)))
        outs = [
            model.forward_encoded(
                enc, data.acc[:, i : i + rows], data.dist, data.tf[:, i : i + rows], data.cov[:, i : i + rows]
            )
            for i in range(0, m, rows)
        ]
    return torch.cat(outs, dim=1)


def train_genes(
    inputs: list[GeneInputs],
    config: TrainConfig | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[dict], None] | None = None,
) -> list[GeneResult]:
    """Train one model per gene, batched (``config.genes_per_batch`` genes per computation).

    Every epoch: a training pass over shuffled train metacells (the same order for all genes),
    then an eval pass over all metacells recording train/valid loss and valid Spearman per gene.
    Each gene keeps a copy of its weights at its best valid-Spearman epoch (NaN counts as −inf)
    and is finally predicted with them. ``progress`` is called after every epoch with a dict
    (chunk, n_chunks, epoch, epochs, genes, valid_spearman, log_rates (G, M) of that epoch).
    """
    config = config or TrainConfig()
    _check_inputs(inputs)
    device = torch.device(device)
    n_train = int(np.sum(inputs[0].train))
    n_valid = len(inputs[0].train) - n_train
    if n_train < (config.batch_size if config.drop_last else 1):
        raise ValueError(f"{n_train} train metacells < batch_size {config.batch_size} (drop_last=True)")
    if n_valid < 2:
        raise ValueError(f"need at least 2 valid metacells for a Spearman, got {n_valid}")
    step = config.genes_per_batch or len(inputs)
    chunks = [inputs[i : i + step] for i in range(0, len(inputs), step)]
    results = []
    for c, chunk in enumerate(chunks):
        results += _train_chunk(chunk, config, device, progress, (c, len(chunks)))
    return results


def _train_chunk(inputs, config: TrainConfig, device, progress, chunk_info) -> list[GeneResult]:
    t0 = time.perf_counter()
    spec = _spec_for(inputs, config)
    n_peaks = [len(x.peak_names) for x in inputs]
    n_tfs = [len(x.tf_names) for x in inputs]
    g_count = len(inputs)
    model = BatchedGeneModel(spec, n_peaks, n_tfs)
    train_mask = np.asarray(inputs[0].train, bool)
    for g, x in enumerate(inputs):
        state = init_gene_state(
            spec, n_peaks[g], n_tfs[g], torch.Generator().manual_seed(gene_seed(config.seed, x.gene))
        )
        if config.init_bias_from_target:
            state["head2_b"] = torch.tensor([math.log(max(float(np.mean(x.target[train_mask])), 1e-3))])
        model.load_gene_state(g, state)
    dtype = getattr(torch, config.dtype)
    model.to(device=device, dtype=dtype)
    rng_mode = (
        config.dropout_rng
        if config.dropout_rng != "auto"
        else ("hash" if device.type == "cuda" else "generator")
    )
    model.set_dropout_rng([gene_seed(config.seed, x.gene, "dropout") for x in inputs], rng_mode)
    data = StackedInputs(inputs, spec, device, dtype)
    opt = BatchedAdam(
        model.parameters(),
        lr=torch.full((g_count,), config.lr, device=device, dtype=dtype),
        weight_decay=config.weight_decay,
    )
    sched = BatchedPlateau(
        g_count, config.scheduler_patience, config.scheduler_factor, config.min_lr, config.scheduler_threshold
    )
    order_gen = torch.Generator().manual_seed(int(config.seed))
    train_idx = torch.as_tensor(np.flatnonzero(train_mask), device=device)
    valid_idx = np.flatnonzero(~train_mask)
    train_np = np.flatnonzero(train_mask)
    y_np = data.y.cpu().numpy()
    bs = config.batch_size

    best_score = np.full(g_count, -np.inf)
    best_epoch = [0] * g_count
    best: dict[str, torch.Tensor] | None = None  # stacked copy of every gene's best-epoch state
    history: list[list[dict]] = [[] for _ in range(g_count)]
    for epoch in range(1, config.epochs + 1):
        model.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=order_gen).to(device)]
        stop = len(perm) - len(perm) % bs if config.drop_last else len(perm)
        batch_losses = []
        for i in range(0, stop, bs):
            idx = perm[i : i + bs]
            out = model(data.seq, data.acc[:, idx], data.dist, data.tf[:, idx], data.cov[:, idx])
            loss_g = poisson_nll(out, data.y[:, idx]).mean(1)  # (G,) each gene's mean NLL
            loss_g.sum().backward()  # genes don't interact: the sum gives each gene its own gradient
            opt.step()
            opt.zero_grad()
            batch_losses.append(loss_g.detach())
        batch_loss = torch.stack(batch_losses).mean(0).cpu().numpy()
        log_rates = _predict_log_rates(model, data, config.eval_batch_elements)
        lr_now = opt.lr.detach().cpu().numpy().copy()
        nll = poisson_nll(log_rates, data.y).cpu().numpy()
        lr_np = log_rates.cpu().numpy()
        valid_rho = np.empty(g_count)
        for g in range(g_count):
            valid_rho[g] = spearman(y_np[g, valid_idx], lr_np[g, valid_idx])
            history[g].append(
                {
                    "epoch": epoch,
                    "train_loss": float(nll[g, train_np].mean()),
                    "valid_loss": float(nll[g, valid_idx].mean()),
                    "valid_spearman": valid_rho[g],
                    "train_spearman": spearman(y_np[g, train_np], lr_np[g, train_np]),
                    "lr": float(lr_now[g]),
                    "train_batch_loss": float(batch_loss[g]),
                }
            )
        score = np.where(np.isfinite(valid_rho), valid_rho, -np.inf)
        improved = (score > best_score) | (epoch == 1)
        if improved.any():
            best_score[improved] = score[improved]
            for g in np.flatnonzero(improved):
                best_epoch[g] = epoch
            best = _snapshot(model, best, improved)
        sched.step(score, opt.lr)
        if progress is not None:
            progress(
                {
                    "chunk": chunk_info[0],
                    "n_chunks": chunk_info[1],
                    "epoch": epoch,
                    "epochs": config.epochs,
                    "genes": [x.gene for x in inputs],
                    "valid_spearman": valid_rho.copy(),
                    "log_rates": lr_np,
                }
            )

    model.load_state_dict(best)
    best_states = [model.gene_state_dict(g) for g in range(g_count)]
    final = _predict_log_rates(model, data, config.eval_batch_elements).cpu().numpy()
    seconds = (time.perf_counter() - t0) / g_count

    results = []
    for g, x in enumerate(inputs):
        hist = pd.DataFrame(history[g])
        best_row = hist.iloc[best_epoch[g] - 1]
        state = {
            "format": CHECKPOINT_FORMAT,
            "gene": x.gene,
            "peak_names": list(x.peak_names),
            "tf_names": list(x.tf_names),
            "covariate_names": list(x.covariate_names) if x.covariate_names else None,
            "spec": spec.to_dict(),
            "n_peaks": n_peaks[g],
            "n_tfs": n_tfs[g],
            "state_dict": {k: v.cpu() for k, v in best_states[g].items()},
            "best_epoch": best_epoch[g],
            "train_config": config.to_dict(),
        }
        results.append(
            GeneResult(
                gene=x.gene,
                n_peaks=n_peaks[g],
                n_tfs=n_tfs[g],
                n_params=model.n_params(g),
                best_epoch=best_epoch[g],
                epochs_run=config.epochs,
                train_loss=float(best_row["train_loss"]),
                valid_loss=float(best_row["valid_loss"]),
                valid_spearman=float(best_row["valid_spearman"]),
                history=hist,
                predictions=_predictions_frame(x, np.exp(final[g])),
                state=state,
                device=str(device),
                seconds=seconds,
            )
        )
    return results


@torch.no_grad()
def _snapshot(model: BatchedGeneModel, best: dict | None, improved: np.ndarray) -> dict:
    """Copy the improved genes' slices of every parameter/buffer into ``best`` (a real copy,
    never a reference to the live weights, the reference's bug); one op per tensor, not per gene."""
    state = model.state_dict()
    if best is None:
        return {k: v.detach().clone() for k, v in state.items()}
    idx = torch.as_tensor(np.flatnonzero(improved), device=next(iter(state.values())).device)
    for k, v in state.items():
        best[k].index_copy_(0, idx, v.detach().index_select(0, idx))
    return best


def _predictions_frame(x: GeneInputs, predicted: np.ndarray) -> pd.DataFrame:
    names = x.metacells if x.metacells is not None else list(range(len(x.target)))
    return pd.DataFrame(
        {
            "metacell": names,
            "split": np.where(np.asarray(x.train, bool), "train", "valid"),
            "observed": np.asarray(x.target, np.float64),
            "predicted": predicted.astype(np.float64),
        }
    )


# ====================================================================== checkpoints
def module_from_state(state: dict, device="cpu") -> BatchedGeneModel:
    """Rebuild one gene's model (a G=1 :class:`BatchedGeneModel`) in eval mode from its state."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a {CHECKPOINT_FORMAT} checkpoint (format={state.get('format')!r})")
    spec = ModelSpec.from_dict(state["spec"])
    model = BatchedGeneModel(spec, [state["n_peaks"]], [state["n_tfs"]])
    dtype = next(iter(state["state_dict"].values())).dtype
    model.to(dtype=dtype)
    model.load_gene_state(0, state["state_dict"])
    return model.to(device).eval()


def save_gene_model(path, result: GeneResult) -> Path:
    """Write one gene's checkpoint atomically (temp file + ``os.replace``) with ``torch.save``.

    Only tensors and plain Python containers are stored, so it loads with ``weights_only=True``.
    """
    path = Path(path)
    preds = result.predictions
    payload = {
        "state": result.state,
        "history": {c: result.history[c].tolist() for c in result.history.columns},
        "predictions": {
            "metacell": [m if isinstance(m, int) else str(m) for m in preds["metacell"].tolist()],
            "split": preds["split"].astype(str).tolist(),
            "observed": preds["observed"].astype(float).tolist(),
            "predicted": preds["predicted"].astype(float).tolist(),
        },
        "summary": {
            "gene": result.gene,
            "n_peaks": result.n_peaks,
            "n_tfs": result.n_tfs,
            "n_params": result.n_params,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "train_loss": result.train_loss,
            "valid_loss": result.valid_loss,
            "valid_spearman": result.valid_spearman,
            "device": result.device,
            "seconds": result.seconds,
        },
    }
    write_atomic(path, lambda tmp: torch.save(payload, tmp))
    return path


def load_gene_model_file(path, device="cpu") -> tuple[BatchedGeneModel, dict[str, Any]]:
    """(one gene's module in eval mode, metadata incl. state, history and predictions frames)."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    state = payload["state"]
    meta = dict(payload["summary"])
    meta.update(
        state=state,
        peak_names=state["peak_names"],
        tf_names=state["tf_names"],
        covariate_names=state["covariate_names"],
        spec=state["spec"],
        history=pd.DataFrame(payload["history"]),
        predictions=pd.DataFrame(payload["predictions"]),
    )
    return module_from_state(state, device), meta


def predict(module_or_checkpoint, inputs: GeneInputs, device=None) -> np.ndarray:
    """Count-scale predictions exp(log-rate) for all M metacells of ``inputs``.

    Accepts a one-gene :class:`BatchedGeneModel`, a :class:`GeneResult`, its ``state`` dict, or a
    checkpoint path. With a checkpoint, peak and TF names must match ``inputs``.
    """
    obj = module_or_checkpoint
    if isinstance(obj, GeneResult):
        obj = obj.state
    if isinstance(obj, (str, os.PathLike)):
        obj = load_gene_model_file(obj)[1]["state"]
    if isinstance(obj, dict):
        for key in ("peak_names", "tf_names"):
            if list(obj[key]) != list(getattr(inputs, key)):
                raise ValueError(f"{inputs.gene}: inputs.{key} differ from the checkpoint's")
        obj = module_from_state(obj, device or "cpu")
    model: BatchedGeneModel = obj
    if model.n_genes != 1:
        raise ValueError("predict expects a one-gene model")
    if model.n_peaks[0] != len(inputs.peak_names) or model.n_tfs[0] != len(inputs.tf_names):
        raise ValueError(
            f"{inputs.gene}: the model expects {model.n_peaks[0]} peaks and {model.n_tfs[0]} TFs"
        )
    if model.spec.use_sequence and inputs.peak_seq is None:
        raise ValueError(f"{inputs.gene}: the model uses sequences but inputs.peak_seq is None")
    inputs.validate()
    if model.spec.use_sequence and np.shape(inputs.peak_seq)[1] != model.spec.seq_len:
        raise ValueError(
            f"{inputs.gene}: sequence length {np.shape(inputs.peak_seq)[1]}, "
            f"the model expects {model.spec.seq_len}"
        )
    if np.shape(inputs.covariates)[1] != model.spec.n_covariates:
        raise ValueError(
            f"{inputs.gene}: {np.shape(inputs.covariates)[1]} covariates, "
            f"the model expects {model.spec.n_covariates}"
        )
    ref = next(model.parameters())
    view = inputs if model.spec.use_sequence else _without_seq(inputs)
    data = StackedInputs([view], model.spec, ref.device, ref.dtype)
    was_training = model.training
    out = _predict_log_rates(model, data, TrainConfig.eval_batch_elements)
    model.train(was_training)
    return np.exp(out[0].cpu().numpy().astype(np.float64))


def _without_seq(x: GeneInputs) -> GeneInputs:
    return replace(x, peak_seq=None)


# ====================================================================== synthetic data
def synthetic_gene_inputs(
    n_genes: int,
    n_metacells: int = 400,
    peaks: tuple[int, int] = (20, 40),
    tfs: tuple[int, int] = (5, 15),
    seq_len: int | None = 256,
    valid_fraction: float = 0.2,
    signal: float = 1.0,
    seed: int = 0,
) -> list[GeneInputs]:
    """Small synthetic genes for tests and benchmarks (not a biological simulator).

    Each gene's log-rate is ``log(20) + signal·(0.8·z(TF 0) + 0.5·z(acc peak 0) − 0.5·z(acc
    peak 1))``; with ``signal=0`` the target is pure noise. Metacells and the split are shared.
    """
    rng = np.random.default_rng(seed)
    m = n_metacells
    train = np.zeros(m, bool)
    train[rng.permutation(m)[: m - max(2, int(round(valid_fraction * m)))]] = True
    depth = rng.normal(4.0, 0.2, size=(m, 2)).astype(np.float32)
    names = [f"mc{i}" for i in range(m)]
    out = []
    for g in range(n_genes):
        p = int(rng.integers(peaks[0], peaks[1] + 1))
        t = int(rng.integers(tfs[0], tfs[1] + 1))
        acc = np.log1p(rng.gamma(1.5, 2.0, size=(m, p))).astype(np.float32)
        tf = np.log1p(rng.gamma(2.0, 3.0, size=(m, t))).astype(np.float32)

        def z(v):
            return (v - v.mean()) / (v.std() + 1e-8)

        eta = np.log(20.0) + signal * (0.8 * z(tf[:, 0]) + 0.5 * z(acc[:, 0]) - 0.5 * z(acc[:, 1]))
        y = rng.poisson(np.exp(eta)).astype(np.float32)
        out.append(
            GeneInputs(
                gene=f"G{g:05d}",
                peak_names=[f"chr1:{g * 10_000 + 300 * j}-{g * 10_000 + 300 * j + 256}" for j in range(p)],
                peak_seq=None if seq_len is None else rng.integers(0, 4, size=(p, seq_len), dtype=np.uint8),
                peak_acc=acc,
                peak_dist=np.sort(rng.integers(0, 500_000, size=p)).astype(np.float32),
                tf_names=[f"TF{j}" for j in range(t)],
                tf_exp=tf,
                covariates=depth,
                target=y,
                train=train.copy(),
                metacells=names,
                covariate_names=["total_counts_rna_log", "total_counts_atac_log"],
            )
        )
    return out
