"""Training settings of the per-gene models (one dataclass, validated on construction)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


@dataclass
class TrainConfig:
    """Training settings. The defaults are the best setting measured by ``bench/bench_sweep.py``
    (bench/README.md); :meth:`reference` gives Cell2Net v0.13's tutorial values.

    Why the defaults differ from the tutorial (issue #13): its lr 1e-4 × 40 epochs is ~200
    Adam steps on a few hundred train metacells, so the TF weights stay near their random
    initialisation; the budget is therefore counted in optimiser ``steps`` (warm-up + cosine
    decay), and the checkpoint is the epoch of lowest valid Poisson loss (the model's own
    objective) rather than of highest valid Spearman, which saturates at the cell-type level and
    stops TF learning early. TF expression and covariates are standardised with the train
    split's statistics and a linear TF readout sits beside the head (see ``module``), started at
    the train split's Poisson lasso (``glm_start``: a sparse start keeps paralog decoys out of
    the ranking; bench_sweep AUPRC on the default preset 0.798 vs 0.748 from the ridge start,
    ``hard`` 0.583 vs 0.489, small 0.720 vs 0.729). TF expression feeds only that readout
    (``tf_in_head=False``): the head still sees peaks, sequences and covariates, but no second
    copy of the TFs to share their credit with. Measured on the small preset
    (``bench/bench_sweep.py``): AUPRC 0.732 vs 0.631 with TFs also in the head, test Spearman
    0.825 vs 0.775; the GLM start alone already gives AUPRC 0.727, so the ranking comes mostly
    from it, while training lifts test Spearman from 0.622.
    """

    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 16
    epochs: int = 40  # used when steps is None
    # optimiser-step budget; the run lasts ceil(steps / steps per epoch) epochs (None: epochs).
    # 200, not 400: the same AUPRC and test Spearman on the default preset in half the time
    # (bench/README.md, "Step budget"); a step's cost is the per-gene sequence encoder.
    steps: int | None = 200
    schedule: Literal["cosine", "plateau"] = "cosine"
    warmup_fraction: float = 0.05  # cosine: linear warm-up over this share of the steps
    checkpoint_metric: Literal["valid_loss", "valid_spearman"] = "valid_loss"
    patience: int | None = None  # stop a gene's run after this many epochs without improvement
    standardize_inputs: bool = True  # TF expression and covariates, with train-split statistics
    tf_linear: bool = True  # a linear readout on the TFs beside the Cell2Net head
    tf_in_head: bool = False  # TF expression also enters the head (as in the reference)
    glm_start: bool = True  # start the linear TF readout at the train split's Poisson GLM (glm_start)
    # the GLM start's L1 share of its penalty: 1 (lasso, penalty by CV on train) recovers the
    # network best (bench/README.md, "Sparse GLM start"); 0 is the ridge start used before
    glm_l1_ratio: float = 1.0
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
    # Genes stacked per batched computation (None: all genes in one run). On CPU the work is
    # compute-bound, so chunks of ~8 beat one huge batch (bench/README.md); on a GPU raise it.
    genes_per_batch: int | None = 8
    eval_batch_elements: int = 1 << 23  # memory cap for the eval pass (G·rows·P·hidden)
    # float64 makes "alone == batched" hold to ~1e-10. In float32 training is chaotic at the
    # rounding level (Adam normalises tiny, noise-dominated gradients into ±lr steps): batched
    # and alone drift apart about as much as alone runs whose inputs differ by one ulp.
    dtype: Literal["float32", "float64"] = "float32"
    # per-gene dropout streams: "generator" (torch.Generator per gene), "hash" (vectorised
    # counter-based, no per-gene launches), "auto" = hash on CUDA, generator on CPU
    dropout_rng: Literal["auto", "generator", "hash"] = "auto"

    def __post_init__(self):
        self.n_filters = tuple(self.n_filters)
        checks = [
            ("lr", self.lr > 0 and math.isfinite(self.lr), "must be > 0"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("batch_size", _is_int(self.batch_size) and self.batch_size >= 1, "must be an integer >= 1"),
            ("epochs", _is_int(self.epochs) and self.epochs >= 1, "must be an integer >= 1"),
            (
                "steps",
                self.steps is None or (_is_int(self.steps) and self.steps >= 1),
                "must be None or >= 1",
            ),
            ("schedule", self.schedule in ("cosine", "plateau"), "must be 'cosine' or 'plateau'"),
            ("warmup_fraction", 0 <= self.warmup_fraction < 1, "must be in [0, 1)"),
            (
                "checkpoint_metric",
                self.checkpoint_metric in ("valid_loss", "valid_spearman"),
                "must be 'valid_loss' or 'valid_spearman'",
            ),
            (
                "patience",
                self.patience is None or (_is_int(self.patience) and self.patience >= 1),
                "must be None or an integer >= 1",
            ),
            ("glm_l1_ratio", 0 <= self.glm_l1_ratio <= 1, "must be in [0, 1]"),
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
        if not (self.tf_in_head or self.tf_linear):
            raise ValueError(
                "TrainConfig.tf_in_head must be True when tf_linear is False (TFs would enter nowhere)"
            )
        if self.min_lr > self.lr:
            raise ValueError(f"TrainConfig.min_lr must be <= lr ({self.lr}), got {self.min_lr}")

    @classmethod
    def reference(cls, **overrides) -> TrainConfig:
        """Cell2Net v0.13's tutorial values (the defaults before issue #13), for comparison: lr
        1e-4, batch 32, 40 epochs, reduce-on-plateau, the best valid-Spearman epoch, raw inputs,
        no linear TF readout."""
        params = dict(
            lr=1e-4,
            batch_size=32,
            epochs=40,
            steps=None,
            schedule="plateau",
            checkpoint_metric="valid_spearman",
            patience=None,
            standardize_inputs=False,
            tf_linear=False,
            tf_in_head=True,
            glm_start=False,
        )
        return cls(**{**params, **overrides})

    @classmethod
    def preset(cls, name: str, **overrides) -> TrainConfig:
        """``"default"`` (the measured best) or ``"reference"`` (:meth:`reference`)."""
        if name == "default":
            return cls(**overrides)
        if name == "reference":
            return cls.reference(**overrides)
        raise ValueError(f"TrainConfig preset must be 'default' or 'reference', got {name!r}")

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["n_filters"] = list(self.n_filters)
        return d
