"""The batched trainer: many genes' models trained in one computation, one result per gene.

``train_genes`` trains many genes in one batched computation (``module.BatchedGeneModel``)
so that each gene gets exactly what training it alone would give (same init, dropout masks,
minibatch order and per-gene optimiser/scheduler state), up to floating-point noise.
Fixes of the reference's bugs (``shared/reference/cell2net.md`` §2): the best epoch's weights are
a real copy, and the validation loss is averaged over validation samples.

Differences from the reference by default (``TrainConfig``; ``TrainConfig.reference()`` restores
it): a step budget with warm-up + cosine decay, the checkpoint at the lowest valid Poisson
loss (optionally with early-stopping ``patience``), and TF expression and covariates
standardised with the train split's statistics (stored in the weights as buffers). The valid
split drives checkpoint and schedule only; the test split is predicted, never looked at.
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
from regnet_assets.science.models.glm_start import poisson_glm_start
from regnet_assets.science.models.inference import predict_log_rates
from regnet_assets.science.models.inputs import GeneInputs, StackedInputs
from regnet_assets.science.models.module import (
    BatchedGeneModel,
    ModelSpec,
    gene_seed,
    init_gene_state,
    poisson_nll,
)
from regnet_assets.science.models.optim import BatchedAdam, BatchedPlateau, cosine_lr


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
        if len(x.target) != len(ref.target) or not np.array_equal(x.split_labels(), ref.split_labels()):
            raise ValueError(
                f"{x.gene}: all genes of a run must share the same metacells and train/valid/test split"
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
        tf_linear=config.tf_linear,
        tf_in_head=config.tf_in_head,
    )


def _standardisation(x: GeneInputs, train: np.ndarray) -> dict[str, torch.Tensor]:
    """Train-split mean and SD (ddof 0; 1 where constant) of TF expression and covariates."""
    out = {}
    for name, values in (("tf", x.tf_exp), ("cov", x.covariates)):
        v = np.asarray(values, np.float64)[train]
        sd = v.std(0)
        out[f"{name}_shift"] = torch.as_tensor(v.mean(0), dtype=torch.float32)
        out[f"{name}_scale"] = torch.as_tensor(np.where(sd > 1e-8, sd, 1.0), dtype=torch.float32)
    return out


def _glm_state(x: GeneInputs, state: dict, train: np.ndarray, config: TrainConfig) -> dict[str, torch.Tensor]:
    """Linear readout and output bias at the train split's Poisson GLM, head output at zero."""

    def z(v, k):
        return (np.asarray(v, np.float64) - state[f"{k}_shift"].numpy()) / state[f"{k}_scale"].numpy()

    coef, intercept = poisson_glm_start(
        z(x.tf_exp, "tf"),
        z(x.covariates, "cov"),
        x.target,
        train,
        np.asarray(x.valid, bool),
        config.glm_l1_ratio,
        config.seed,
    )
    return {
        "tf_lin_w": torch.as_tensor(coef),
        "head2_b": torch.tensor([intercept], dtype=torch.float32),
        "head2_w": torch.zeros_like(state["head2_w"]),
    }


def train_genes(
    inputs: list[GeneInputs],
    config: TrainConfig | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[dict], None] | None = None,
) -> list[GeneResult]:
    """Train one model per gene, batched (``config.genes_per_batch`` genes per computation).

    Every epoch: a training pass over shuffled train metacells (the same order for all genes),
    then an eval pass over all metacells recording train/valid loss and valid Spearman per gene.
    Each gene keeps a copy of its weights at its best epoch by ``config.checkpoint_metric``
    (lowest valid loss, or highest valid Spearman with NaN as −inf) and is finally predicted
    with them; the run stops early once every gene has gone ``config.patience`` epochs without
    improving. ``progress`` is called after every epoch with a dict (chunk, n_chunks, epoch,
    epochs, genes, valid_spearman, log_rates (G, M) of that epoch).
    """
    config = config or TrainConfig()
    _check_inputs(inputs)
    device = torch.device(device)
    n_train = int(np.sum(inputs[0].train))
    n_valid = int(np.sum(inputs[0].valid))
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
        if config.standardize_inputs:
            state.update(_standardisation(x, train_mask))
        if config.glm_start and spec.tf_linear:
            state.update(_glm_state(x, state, train_mask, config))
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
    by_loss = config.checkpoint_metric == "valid_loss"
    sched = BatchedPlateau(
        g_count,
        config.scheduler_patience,
        config.scheduler_factor,
        config.min_lr,
        config.scheduler_threshold,
        mode="min" if by_loss else "max",
    )
    order_gen = torch.Generator().manual_seed(int(config.seed))
    train_idx = torch.as_tensor(np.flatnonzero(train_mask), device=device)
    valid_idx = np.flatnonzero(inputs[0].valid)
    train_np = np.flatnonzero(train_mask)
    y_np = data.y.cpu().numpy()
    bs = config.batch_size
    per_epoch = len(train_np) // bs if config.drop_last else math.ceil(len(train_np) / bs)
    epochs = config.epochs if config.steps is None else math.ceil(config.steps / per_epoch)
    total_steps = epochs * per_epoch if config.steps is None else config.steps
    n_steps = 0

    best_score = np.full(g_count, -np.inf)
    best_epoch = [0] * g_count
    best: dict[str, torch.Tensor] | None = None  # stacked copy of every gene's best-epoch state
    history: list[list[dict]] = [[] for _ in range(g_count)]
    epochs_run = 0
    for epoch in range(1, epochs + 1):
        epochs_run = epoch
        model.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=order_gen).to(device)]
        stop = len(perm) - len(perm) % bs if config.drop_last else len(perm)
        batch_losses = []
        for i in range(0, stop, bs):
            if n_steps >= total_steps:
                break
            n_steps += 1
            if config.schedule == "cosine":
                opt.lr.fill_(
                    cosine_lr(n_steps, total_steps, config.lr, config.min_lr, config.warmup_fraction)
                )
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
        valid_loss = nll[:, valid_idx].mean(1)
        metric = -valid_loss if by_loss else valid_rho
        score = np.where(np.isfinite(metric), metric, -np.inf)
        improved = (score > best_score) | (epoch == 1)
        if improved.any():
            best_score[improved] = score[improved]
            for g in np.flatnonzero(improved):
                best_epoch[g] = epoch
            best = _snapshot(model, best, improved)
        if config.schedule == "plateau":
            sched.step(valid_loss if by_loss else score, opt.lr)
        if progress is not None:
            progress(
                {
                    "chunk": chunk_info[0],
                    "n_chunks": chunk_info[1],
                    "epoch": epoch,
                    "epochs": epochs,
                    "genes": [x.gene for x in inputs],
                    "valid_spearman": valid_rho.copy(),
                    "log_rates": lr_np,
                }
            )
        stalled = epoch - np.asarray(best_epoch) >= (config.patience or np.inf)
        if stalled.all() or n_steps >= total_steps:
            break

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
            "epochs_run": epochs_run,
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
            "split": x.split_labels(),
            "observed": np.asarray(x.target, np.float64),
            "predicted": predicted.astype(np.float64),
        }
    )
