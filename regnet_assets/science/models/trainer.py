"""The batched trainer: many genes' models trained in one computation, one result per gene.

``train_genes`` trains many genes in one batched computation (``module.BatchedGeneModel``)
so that each gene gets exactly what training it alone would give (same init, dropout masks,
minibatch order and per-gene optimiser/scheduler state), up to floating-point noise.
Fixes of the reference's bugs (``shared/reference/cell2net.md`` §2): the best epoch's weights are
a real copy, and the validation loss is averaged over validation samples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from regnet_assets.science.common.correlation import spearman
from regnet_assets.science.models.checkpoint import GeneCheckpoint
from regnet_assets.science.models.config import TrainConfig
from regnet_assets.science.models.inference import predict_log_rates
from regnet_assets.science.models.inputs import GeneInputs, StackedInputs
from regnet_assets.science.models.module import (
    BatchedGeneModel,
    ModelSpec,
    gene_seed,
    init_gene_state,
    poisson_nll,
)
from regnet_assets.science.models.optim import BatchedAdam, BatchedPlateau


@dataclass
class GeneResult:
    """One trained gene: sizes, best epoch, losses, history, predictions and its checkpoint."""

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
    checkpoint: GeneCheckpoint  # the best epoch's weights and this record, as saved
    device: str
    seconds: float  # this gene's share of its batched run's wall time


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
        log_rates = predict_log_rates(model, data, config.eval_batch_elements)
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
    final = predict_log_rates(model, data, config.eval_batch_elements).cpu().numpy()
    seconds = (time.perf_counter() - t0) / g_count

    results = []
    for g, x in enumerate(inputs):
        hist = pd.DataFrame(history[g])
        best_row = hist.iloc[best_epoch[g] - 1]
        summary = {
            "gene": x.gene,
            "n_peaks": n_peaks[g],
            "n_tfs": n_tfs[g],
            "n_params": model.n_params(g),
            "best_epoch": best_epoch[g],
            "epochs_run": config.epochs,
            "train_loss": float(best_row["train_loss"]),
            "valid_loss": float(best_row["valid_loss"]),
            "valid_spearman": float(best_row["valid_spearman"]),
            "device": str(device),
            "seconds": seconds,
        }
        predictions = _predictions_frame(x, np.exp(final[g]))
        checkpoint = GeneCheckpoint(
            gene=x.gene,
            spec=spec,
            peak_names=list(x.peak_names),
            tf_names=list(x.tf_names),
            covariate_names=list(x.covariate_names) if x.covariate_names else None,
            state_dict={k: v.cpu() for k, v in best_states[g].items()},
            best_epoch=best_epoch[g],
            train_config=config.to_dict(),
            summary=summary,
            history=hist,
            predictions=predictions,
        )
        results.append(GeneResult(**summary, history=hist, predictions=predictions, checkpoint=checkpoint))
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
