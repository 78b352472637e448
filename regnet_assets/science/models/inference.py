"""Eval-mode predictions of trained gene models: the log-rates a batched run evaluates every
epoch, and count-scale predictions of one gene from its checkpoint.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from regnet_assets.science.models.checkpoint import GeneCheckpoint
from regnet_assets.science.models.config import TrainConfig
from regnet_assets.science.models.inputs import GeneInputs, StackedInputs
from regnet_assets.science.models.module import BatchedGeneModel


def predict_log_rates(model: BatchedGeneModel, data: StackedInputs, max_elements: int) -> torch.Tensor:
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


def predict(checkpoint: GeneCheckpoint, inputs: GeneInputs, device=None) -> np.ndarray:
    """Count-scale predictions exp(log-rate) for all M metacells of ``inputs``.

    The inputs' peak and TF names must be the checkpoint's.
    """
    checkpoint.check_names(inputs.peak_names, inputs.tf_names, inputs.gene)
    model = checkpoint.module(device or "cpu")
    inputs.validate()
    inputs.check_fits(model.spec)
    ref = next(model.parameters())
    view = inputs if model.spec.use_sequence else replace(inputs, peak_seq=None)
    data = StackedInputs([view], model.spec, ref.device, ref.dtype)
    out = predict_log_rates(model, data, TrainConfig.eval_batch_elements)
    return np.exp(out[0].cpu().numpy().astype(np.float64))
