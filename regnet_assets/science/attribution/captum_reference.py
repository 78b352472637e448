"""The reference's way of attributing, kept as the benchmark baseline and a cross-check:
captum ``IntegratedGradients`` on one gene at a time, a few metacells a call.

:class:`TFForward` is one gene's log-rate as a function of TF expression (sequences encoded
once); ``reference_ig(module="reference")`` runs captum on
:class:`~regnet_assets.science.models.reference_module.ReferenceGeneModel`, which re-encodes
every metacell's sequences at every step exactly like ``cn.ip.tf_attr``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from regnet_assets.science.attribution.ig import (
    GeneAttribution,
    batched_model_from_checkpoints,
    check_checkpoints,
    check_inputs,
)
from regnet_assets.science.models.checkpoint import GeneCheckpoint
from regnet_assets.science.models.inputs import GeneInputs, StackedInputs
from regnet_assets.science.models.module import BatchedGeneModel
from regnet_assets.science.models.reference_module import ReferenceGeneModel


class TFForward(nn.Module):
    """One gene's log-rate as a function of TF expression, for captum.

    ``forward(tf (B, T), acc (B, P), cov (B, C)) → (B,)``; the gene's sequences and distances
    are fixed, and its sequence encoding is computed once (eval mode: it does not depend on B).
    """

    def __init__(self, model: BatchedGeneModel, x: GeneInputs, device="cpu"):
        super().__init__()
        if model.n_genes != 1:
            raise ValueError("TFForward needs a one-gene BatchedGeneModel")
        self.model = model.to(device).eval()
        data = StackedInputs([x], model.spec, device, torch.float32)
        with torch.no_grad():
            self.enc = model.encode(data.seq) if model.spec.use_sequence else None
        self.dist = data.dist

    def forward(self, tf, acc, cov):
        return self.model.forward_encoded(
            self.enc, acc.unsqueeze(0), self.dist, tf.unsqueeze(0), cov.unsqueeze(0)
        )[0]


class _ReferenceForward(nn.Module):
    """The reference module's call shape: (peak_seq (B,P,L,4), peak_acc, peak_dist (B,P), tf_exp, cov).

    Every metacell's sequence copies are encoded, as upstream; ``peak_seq``/``peak_dist`` rows are
    identical, so row 0 stands for all of them.
    """

    def __init__(self, ref: ReferenceGeneModel):
        super().__init__()
        self.ref = ref

    def forward(self, seq, acc, dist, tf, cov):
        return self.ref(seq[0] if seq is not None else None, acc, dist[0], tf, cov)


def reference_ig(
    checkpoint: GeneCheckpoint,
    inputs: GeneInputs,
    n_steps: int = 100,
    batch_size: int = 2,
    device: str | torch.device = "cpu",
    *,
    module: str = "reference",
    metacells: Sequence[int] | None = None,
) -> GeneAttribution:
    """The reference's way: captum ``IntegratedGradients`` on one gene, ``batch_size`` metacells a call.

    ``module="reference"``: captum on :class:`ReferenceGeneModel` with inputs (peak_seq, peak_acc,
    peak_dist, tf_exp), baselines equal to them except tf_exp = 0, covariates as additional
    arguments (exactly ``cn.ip.tf_attr``, so every step re-encodes every metacell's sequences).
    ``module="batched"``: captum on :class:`TFForward` (sequences encoded once), tf_exp the only
    input. ``metacells``: row indices to attribute (default all), for timing on a subset.
    """
    if module not in ("reference", "batched"):
        raise ValueError(f"module must be 'reference' or 'batched', got {module!r}")
    from captum.attr import IntegratedGradients

    device = torch.device(device)
    check_checkpoints([checkpoint], [inputs])
    check_inputs([inputs], [checkpoint])
    one = batched_model_from_checkpoints([checkpoint], device)
    rows = np.arange(len(inputs.tf_exp)) if metacells is None else np.asarray(metacells, dtype=int)
    data = StackedInputs([inputs], one.spec, device, torch.float32)
    acc, tf, cov = data.acc[0, rows], data.tf[0, rows], data.cov[0, rows]
    if module == "reference":
        ref = ReferenceGeneModel(one.spec, one.n_peaks[0], one.n_tfs[0])
        ref.load_gene_state(one.gene_state_dict(0))
        fwd = _ReferenceForward(ref.to(device).eval())
        seq1 = data.seq[0] if data.seq is not None else None
    else:
        fwd = TFForward(one, inputs, device)
    if module == "reference" and seq1 is None:
        func = lambda a_, d_, t_, c_: fwd(None, a_, d_, t_, c_)  # noqa: E731
    else:
        func = fwd
    ig = IntegratedGradients(func, multiply_by_inputs=True)
    attrs, deltas, fx, fb = [], [], [], []
    for i in range(0, len(rows), batch_size):
        sl = slice(i, i + batch_size)
        b = len(rows[sl])
        if module == "reference":
            dist_b = data.dist[0].unsqueeze(0).expand(b, -1).contiguous()
            ins: tuple = (acc[sl], dist_b, tf[sl])
            if seq1 is not None:
                ins = (seq1.unsqueeze(0).expand(b, *seq1.shape).contiguous(),) + ins
            bases = ins[:-1] + (torch.zeros_like(tf[sl]),)
            extra: tuple = (cov[sl],)
        else:
            ins, bases, extra = (tf[sl],), (torch.zeros_like(tf[sl]),), (acc[sl], cov[sl])
        out, delta = ig.attribute(
            ins,
            baselines=bases,
            additional_forward_args=extra,
            n_steps=n_steps,
            return_convergence_delta=True,
        )
        with torch.no_grad():
            fx.append(func(*ins, *extra))
            fb.append(func(*bases, *extra))
        attrs.append(out[-1].detach())
        deltas.append(delta.detach())
    names = inputs.metacell_names()
    return GeneAttribution(
        gene=inputs.gene,
        tf_names=list(inputs.tf_names),
        metacells=[names[r] for r in rows],
        attributions=torch.cat(attrs).cpu().double().numpy(),
        delta=torch.cat(deltas).cpu().double().numpy(),
        f_x=torch.cat(fx).cpu().double().numpy(),
        f_baseline=torch.cat(fb).cpu().double().numpy(),
        n_steps=n_steps,
    )
