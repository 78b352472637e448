"""Per-gene optimiser and learning-rate scheduler over stacked (G, …) parameters.

Each gene gets exactly the state ``torch.optim.Adam`` / ``ReduceLROnPlateau`` would give it
alone, while all genes step in a few fused tensor ops.
"""

from __future__ import annotations

import math

import numpy as np
import torch


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
    """``ReduceLROnPlateau(mode=mode, threshold_mode='rel', cooldown=0)`` per gene."""

    def __init__(
        self,
        n_genes: int,
        patience: int,
        factor: float,
        min_lr: float,
        threshold: float = 1e-4,
        eps: float = 1e-8,
        mode: str = "max",
    ):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.patience, self.factor, self.min_lr, self.threshold, self.eps = (
            patience,
            factor,
            min_lr,
            threshold,
            eps,
        )
        self.mode = mode
        self.best = np.full(n_genes, -np.inf if mode == "max" else np.inf)
        self.bad = np.zeros(n_genes, dtype=int)

    def step(self, metric: np.ndarray, lr: torch.Tensor) -> None:
        metric = np.asarray(metric, dtype=float)
        # NaN compares False, as in torch
        if self.mode == "max":
            better = metric > self.best * (1 + self.threshold)
        else:
            better = metric < self.best * (1 - self.threshold)
        self.best = np.where(better, metric, self.best)
        self.bad = np.where(better, 0, self.bad + 1)
        reduce = self.bad > self.patience
        if reduce.any():
            old = lr.detach().cpu().double().numpy()
            new = np.maximum(old * self.factor, self.min_lr)
            change = reduce & (old - new > self.eps)
            lr.copy_(torch.as_tensor(np.where(change, new, old), dtype=lr.dtype))
            self.bad[reduce] = 0


def cosine_lr(step: int, total: int, lr: float, min_lr: float, warmup_fraction: float) -> float:
    """Learning rate for 1-based optimiser ``step`` of ``total``: linear warm-up over
    ``warmup_fraction`` of the steps, then cosine decay from ``lr`` to ``min_lr``."""
    warm = int(round(warmup_fraction * total))
    if step <= warm:
        return lr * step / warm
    progress = (step - warm) / max(total - warm, 1)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
