"""Integrated Gradients of each gene's model with respect to TF expression.

What is computed is the reference's ``cn.ip.tf_attr`` (``shared/reference/cell2net.md`` §3):
Integrated Gradients (captum's default Gauss-Legendre rule, ``multiply_by_inputs``) of the
predicted Poisson log-rate, with a baseline equal to the input except that TF expression is
zero, over all metacells, model in eval mode. Attributions are in log-rate space, so each
metacell's row sums to f(x) − f(x with TFs zeroed) up to the quadrature error, reported as the
convergence delta (the reference discards it).

How it is computed differs, for speed (the reference runs captum two metacells at a time and
re-encodes every peak sequence for every metacell and every step):

* TF expression enters the model only at the head's first linear layer, and only TF expression
  moves along the integration path. Everything upstream (sequence encoder, peak MLP,
  attention) is therefore evaluated once per metacell, as the head pre-activation at the
  baseline ``c0``; along the path the pre-activation is ``c0 + α·W_tf·tf`` and only the small
  head (ReLU, BatchNorm, Linear) runs for each of the ``n_steps`` points, with autograd.
* All genes of a run (one :class:`~.gene_model.BatchedGeneModel`), all steps and all metacells
  go through one forward/backward, chunked to bound memory.

``engine="full"`` instead runs the model's own ``forward_encoded`` at every path point (the
sequence encoder still runs once); it is slower but relies on nothing but the model's public
forward, and the tests use it to check the fast engine. :func:`reference_ig` is the
reference's way (captum, batches of two metacells, one gene at a time) for the benchmark.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from regnet_assets.science.models.module import (
    BN_EPS,
    LN_EPS,
    BatchedGeneModel,
    ModelSpec,
    ReferenceGeneModel,
)
from regnet_assets.science.models.trainer import (
    CHECKPOINT_FORMAT,
    GeneInputs,
    GeneResult,
    StackedInputs,
    load_gene_model_file,
)

__all__ = [
    "GeneAttribution",
    "TFForward",
    "attribution_table",
    "batched_model_from_checkpoints",
    "gauss_legendre",
    "integrated_gradients",
    "reference_ig",
]


@dataclass
class GeneAttribution:
    """One gene's TF attributions over M metacells (log-rate space)."""

    gene: str
    tf_names: list[str]
    metacells: list[str]
    attributions: np.ndarray  # (M, T)
    delta: np.ndarray  # (M,) Σ_t attribution − (f(x) − f(baseline)), captum's convergence delta
    f_x: np.ndarray  # (M,) log-rate at the input
    f_baseline: np.ndarray  # (M,) log-rate with TF expression zeroed
    n_steps: int  # quadrature points; 0 = closed-form (exact) integral

    def to_frame(self) -> pd.DataFrame:
        """Long form: gene, metacell, tf, attribution (metacell-major)."""
        m, t = self.attributions.shape
        return pd.DataFrame(
            {
                "gene": np.full(m * t, self.gene, dtype=object),
                "metacell": np.repeat(np.asarray(self.metacells, dtype=object), t),
                "tf": np.tile(np.asarray(self.tf_names, dtype=object), m),
                "attribution": self.attributions.reshape(-1).astype(np.float64),
            }
        )


def attribution_table(attributions: Sequence[GeneAttribution]) -> pd.DataFrame:
    """Long table ``gene, metacell, tf, attribution`` over all genes (the input of ``grn``)."""
    frames = [a.to_frame() for a in attributions]
    if not frames:
        return pd.DataFrame({"gene": [], "metacell": [], "tf": [], "attribution": []}).astype(
            {"gene": object, "metacell": object, "tf": object, "attribution": np.float64}
        )
    return pd.concat(frames, ignore_index=True)


def gauss_legendre(n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights) on [0, 1]: captum's ``method="gausslegendre"`` rule, its default."""
    if int(n_steps) < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    x, w = np.polynomial.legendre.leggauss(int(n_steps))
    return 0.5 * (1.0 + x), 0.5 * w


# ====================================================================== models
ModelLike = Any  # BatchedGeneModel | GeneResult | checkpoint dict | path


def _state_of(obj) -> dict:
    """A per-gene checkpoint dict (``training`` format) from a result, dict or path."""
    if isinstance(obj, GeneResult):
        return obj.state
    if isinstance(obj, (str, os.PathLike)):
        return load_gene_model_file(obj)[1]["state"]
    if isinstance(obj, dict):
        if obj.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a {CHECKPOINT_FORMAT} checkpoint (format={obj.get('format')!r})")
        return obj
    raise TypeError(f"expected a GeneResult, checkpoint dict or path, got {type(obj).__name__}")


def _gene_entries(models, inputs: Sequence[GeneInputs]) -> list[tuple[ModelSpec, dict]]:
    """(spec, unpadded state_dict) per gene, checked against the inputs' peaks and TFs."""
    if isinstance(models, BatchedGeneModel):
        if models.n_genes != len(inputs):
            raise ValueError(
                f"the batched model holds {models.n_genes} genes but {len(inputs)} inputs were given"
            )
        out = [(models.spec, models.gene_state_dict(g)) for g in range(models.n_genes)]
        shapes = list(zip(models.n_peaks, models.n_tfs))
    else:
        models = list(models)
        if len(models) != len(inputs):
            raise ValueError(f"{len(models)} models but {len(inputs)} inputs")
        out, shapes = [], []
        for obj, x in zip(models, inputs):
            if isinstance(obj, BatchedGeneModel):
                if obj.n_genes != 1:
                    raise ValueError("a model in the list must be a one-gene BatchedGeneModel")
                out.append((obj.spec, obj.gene_state_dict(0)))
                shapes.append((obj.n_peaks[0], obj.n_tfs[0]))
                continue
            state = _state_of(obj)
            for key in ("peak_names", "tf_names"):
                if list(state[key]) != list(getattr(x, key)):
                    raise ValueError(f"{x.gene}: inputs.{key} differ from the checkpoint's")
            out.append((ModelSpec.from_dict(state["spec"]), state["state_dict"]))
            shapes.append((int(state["n_peaks"]), int(state["n_tfs"])))
    for (p, t), x in zip(shapes, inputs):
        if (p, t) != (len(x.peak_names), len(x.tf_names)):
            raise ValueError(
                f"{x.gene}: the model expects {p} peaks and {t} TFs, inputs have "
                f"{len(x.peak_names)} and {len(x.tf_names)}"
            )
    return out


def batched_model_from_checkpoints(checkpoints: Sequence[ModelLike], device="cpu") -> BatchedGeneModel:
    """One eval-mode :class:`BatchedGeneModel` from several genes' checkpoints (same spec)."""
    entries = []
    for obj in checkpoints:
        if isinstance(obj, BatchedGeneModel):
            entries += [
                (obj.spec, obj.gene_state_dict(g), obj.n_peaks[g], obj.n_tfs[g]) for g in range(obj.n_genes)
            ]
        else:
            s = _state_of(obj)
            entries.append(
                (ModelSpec.from_dict(s["spec"]), s["state_dict"], int(s["n_peaks"]), int(s["n_tfs"]))
            )
    if not entries:
        raise ValueError("no checkpoints given")
    return _build(
        [(spec, st) for spec, st, _, _ in entries], [e[2] for e in entries], [e[3] for e in entries], device
    )


def _build(entries, n_peaks, n_tfs, device) -> BatchedGeneModel:
    specs = {json.dumps(spec.to_dict(), sort_keys=True) for spec, _ in entries}
    if len(specs) != 1:
        raise ValueError("all genes of one batched model need the same ModelSpec")
    model = BatchedGeneModel(entries[0][0], list(n_peaks), list(n_tfs))
    for g, (_, state) in enumerate(entries):
        model.load_gene_state(g, state)
    return model.to(device).eval()


# ====================================================================== inputs
def _check_inputs(inputs: Sequence[GeneInputs], spec_of: list[ModelSpec]) -> None:
    if not inputs:
        raise ValueError("inputs is empty")
    names = [x.gene for x in inputs]
    if len(set(names)) != len(names):
        raise ValueError("gene names in inputs must be unique")
    m = len(inputs[0].tf_exp)
    for x, spec in zip(inputs, spec_of):
        x.validate()
        if len(x.tf_exp) != m:
            raise ValueError(f"{x.gene}: all genes must share the same metacells ({len(x.tf_exp)} != {m})")
        if spec.use_sequence:
            if x.peak_seq is None:
                raise ValueError(f"{x.gene}: the model uses sequences but inputs.peak_seq is None")
            if np.shape(x.peak_seq)[1] != spec.seq_len:
                raise ValueError(
                    f"{x.gene}: sequence length {np.shape(x.peak_seq)[1]}, the model expects {spec.seq_len}"
                )
        if np.shape(x.covariates)[1] != spec.n_covariates:
            raise ValueError(
                f"{x.gene}: {np.shape(x.covariates)[1]} covariates, the model expects {spec.n_covariates}"
            )


def _metacell_names(x: GeneInputs) -> list[str]:
    return (
        [str(c) for c in x.metacells] if x.metacells is not None else [str(i) for i in range(len(x.tf_exp))]
    )


# ====================================================================== split forward
def _tf_columns(model: BatchedGeneModel) -> torch.Tensor:
    """Columns of the padded head input holding TF expression (see ``forward_encoded``)."""
    d, pm = model.spec.n_dims, model.p_max
    return (d + 1) * pm + torch.arange(model.t_max)


@torch.no_grad()
def _baseline_preactivation(model: BatchedGeneModel, enc, acc, dist_w, cov) -> torch.Tensor:
    """Head pre-activation (G, B, H) at TF expression 0: everything that stays fixed on the path.

    Mirrors ``BatchedGeneModel.forward_encoded`` in eval mode (no dropout) up to the head's first
    linear layer; ``test_attribution`` checks that the two agree, so a change to the model's
    forward is caught there.
    """
    g, b, p = acc.shape
    spec = model.spec
    d, h, s = spec.n_dims, spec.n_heads, spec.seq_features
    w1 = model.merge1_w
    if enc is not None:
        hs = torch.baddbmm(model.merge1_b.unsqueeze(1), enc, w1[:, :, :s].transpose(1, 2))
        x = hs.unsqueeze(1) + acc.unsqueeze(-1) * w1[:, None, None, :, s]
    else:
        x = model.merge1_b[:, None, None, :] + acc.unsqueeze(-1) * w1[:, None, None, :, 0]
    x = F.relu(x)
    x = torch.baddbmm(model.merge2_b.unsqueeze(1), x.reshape(g, b * p, -1), model.merge2_w.transpose(1, 2))
    x = F.relu(x).reshape(g, b, p, d)
    y = F.layer_norm(x, (d,), eps=LN_EPS) * model.ln1_w[:, None, None] + model.ln1_b[:, None, None]
    qkv = torch.baddbmm(model.qkv_b.unsqueeze(1), y.reshape(g, b * p, d), model.qkv_w.transpose(1, 2))
    q, k, v = qkv.reshape(g * b, p, 3, h, d // h).permute(2, 0, 3, 1, 4)
    keep = model.peak_mask.bool()[:, None, None, None, :].expand(g, b, 1, 1, p).reshape(g * b, 1, 1, p)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    o = torch.baddbmm(
        model.out_b.unsqueeze(1), o.transpose(1, 2).reshape(g, b * p, d), model.out_w.transpose(1, 2)
    )
    x = x + o.reshape(g, b, p, d)
    y = F.layer_norm(x, (d,), eps=LN_EPS) * model.ln2_w[:, None, None] + model.ln2_b[:, None, None]
    y = torch.baddbmm(model.ffn1_b.unsqueeze(1), y.reshape(g, b * p, d), model.ffn1_w.transpose(1, 2))
    y = torch.baddbmm(model.ffn2_b.unsqueeze(1), y, model.ffn2_w.transpose(1, 2))
    x = x + F.relu(y).reshape(g, b, p, d)
    pmask = model.peak_mask
    feat = torch.cat(
        [
            (x * pmask[:, None, :, None]).reshape(g, b, p * d),
            (dist_w * pmask).unsqueeze(1).expand(g, b, p),
            torch.zeros(g, b, model.t_max, dtype=acc.dtype, device=acc.device),
            cov,
        ],
        dim=-1,
    )
    return torch.baddbmm(model.head1_b.unsqueeze(1), feat, model.head1_w.transpose(1, 2))


def _head(model: BatchedGeneModel, z: torch.Tensor) -> torch.Tensor:
    """Eval-mode head after the first linear layer: (G, N, H) pre-activation → (G, N) log-rate."""
    z = F.relu(z)
    scale = torch.rsqrt(model.hbn_var + BN_EPS) * model.hbn_w
    z = (z - model.hbn_mean.unsqueeze(1)) * scale.unsqueeze(1) + model.hbn_b.unsqueeze(1)
    return torch.baddbmm(model.head2_b.unsqueeze(1), z, model.head2_w.transpose(1, 2)).squeeze(-1)


@torch.enable_grad()
def _head_ig(model, c0, tf, alphas, weights):
    """IG on the head only. c0 (G, m, H), tf (G, m, T) → attributions (G, m, T), f(x), f(b)."""
    g, m, t = tf.shape
    s = len(alphas)
    w_tf = model.head1_w[:, :, _tf_columns(model).to(tf.device)] * model.tf_mask.unsqueeze(1)  # (G, H, T)
    w_tf = w_tf.detach()
    # captum's path points: baseline + α·(input − baseline), α-major, baseline 0
    path = (alphas.view(1, s, 1, 1) * tf.unsqueeze(1)).reshape(g, s * m, t).requires_grad_(True)
    c_rep = c0.unsqueeze(1).expand(g, s, m, c0.shape[-1]).reshape(g, s * m, -1)
    z = c_rep + torch.bmm(path, w_tf.transpose(1, 2))
    out = _head(model, z)
    (grad,) = torch.autograd.grad(out.sum(), path)
    total = (grad.reshape(g, s, m, t) * weights.view(1, s, 1, 1)).sum(1)
    with torch.no_grad():
        f_x = _head(model, c0 + torch.bmm(tf, w_tf.transpose(1, 2)))
        f_b = _head(model, c0)
    return (total * tf).detach(), f_x, f_b


def _exact_head_ig(model, c0, tf):
    """Exact IG for the ReLU head: along the path the pre-activation ``c0 + α·u`` is linear in α,
    so each hidden unit's gradient is constant except for one switch at α = −c0/u; integrating
    the active fraction of [0, 1] in closed form gives attributions with zero convergence delta."""
    w_tf = (model.head1_w[:, :, _tf_columns(model).to(tf.device)] * model.tf_mask.unsqueeze(1)).detach()
    with torch.no_grad():
        u = torch.bmm(tf, w_tf.transpose(1, 2))  # (G, m, H)
        root = -c0 / torch.where(u == 0, torch.ones_like(u), u)
        active = torch.where(u > 0, (1 - root).clamp(0, 1), root.clamp(0, 1))
        active = torch.where(u == 0, (c0 > 0).to(u.dtype), active)
        v = model.head2_w[:, 0, :] * torch.rsqrt(model.hbn_var + BN_EPS) * model.hbn_w  # (G, H)
        grad = torch.bmm(active * v.unsqueeze(1), w_tf)  # (G, m, T): ∫ ∂f/∂tf dα
        return grad * tf, _head(model, c0 + u), _head(model, c0)


@torch.enable_grad()
def _full_ig(model, enc, acc, dist, tf, cov, alphas, weights):
    """IG through the model's own ``forward_encoded`` at every path point (checks the fast engine)."""
    g, m, t = tf.shape
    s = len(alphas)
    rep = lambda a: a.unsqueeze(1).expand(g, s, *a.shape[1:]).reshape(g, s * a.shape[1], *a.shape[2:])  # noqa: E731
    path = (alphas.view(1, s, 1, 1) * tf.unsqueeze(1)).reshape(g, s * m, t).requires_grad_(True)
    out = model.forward_encoded(enc, rep(acc), dist, path, rep(cov))
    (grad,) = torch.autograd.grad(out.sum(), path)
    total = (grad.reshape(g, s, m, t) * weights.view(1, s, 1, 1)).sum(1)
    with torch.no_grad():
        f_x = model.forward_encoded(enc, acc, dist, tf, cov)
        f_b = model.forward_encoded(enc, acc, dist, torch.zeros_like(tf), cov)
    return (total * tf).detach(), f_x, f_b


# ====================================================================== public API
def integrated_gradients(
    models,
    inputs: Sequence[GeneInputs],
    n_steps: int = 100,
    device: str | torch.device = "cpu",
    *,
    genes_per_chunk: int | None = None,
    max_elements: int = 1 << 23,
    engine: str = "head",
    method: str = "gausslegendre",
    dtype: torch.dtype = torch.float32,
) -> list[GeneAttribution]:
    """TF-expression Integrated Gradients for every gene and every metacell of ``inputs``.

    ``models``: one :class:`BatchedGeneModel` holding the genes of ``inputs`` in order, or one
    model per gene (``GeneResult``, its ``state`` dict, a checkpoint path, or a one-gene
    ``BatchedGeneModel``). Genes are batched ``genes_per_chunk`` at a time (None: as many as keep
    the sequence encoder's largest tensor within ~4·``max_elements`` values; genes with different
    ModelSpecs go to different chunks); metacells are chunked so that no other intermediate
    exceeds ~``max_elements`` values.
    ``engine``: ``"head"`` (fast, see module doc) or ``"full"`` (the model's own forward at every
    step). Equal to captum's ``IntegratedGradients(multiply_by_inputs=True)`` with its default
    ``gausslegendre`` method, baseline TF expression 0, in eval mode.

    ``method="exact"`` (head engine only) integrates the path in closed form instead: the head
    is piecewise linear along the path, so quadrature converges only as O(1/n_steps) across
    its ReLU switches (delta ≈ 1% of f(x) − f(baseline) at 100 steps on trained models), while
    the closed form is complete to float precision and needs no steps.
    """
    if method not in ("gausslegendre", "exact"):
        raise ValueError(f"method must be 'gausslegendre' or 'exact', got {method!r}")
    if method == "exact" and engine != "head":
        raise ValueError("method='exact' needs engine='head'")
    if engine not in ("head", "full"):
        raise ValueError(f"engine must be 'head' or 'full', got {engine!r}")
    if genes_per_chunk is not None and genes_per_chunk < 1:
        raise ValueError(f"genes_per_chunk must be None or >= 1, got {genes_per_chunk}")
    if max_elements < 1:
        raise ValueError(f"max_elements must be >= 1, got {max_elements}")
    inputs = list(inputs)
    device = torch.device(device)
    a_np, w_np = gauss_legendre(n_steps)
    alphas = torch.tensor(a_np, dtype=dtype, device=device)
    weights = torch.tensor(w_np, dtype=dtype, device=device)

    if genes_per_chunk is None:
        genes_per_chunk = _auto_genes_per_chunk(models, inputs, max_elements)
    direct = isinstance(models, BatchedGeneModel) and genes_per_chunk >= models.n_genes
    if direct:
        if models.n_genes != len(inputs):
            raise ValueError(
                f"the batched model holds {models.n_genes} genes but {len(inputs)} inputs were given"
            )
        for g, x in enumerate(inputs):
            if (models.n_peaks[g], models.n_tfs[g]) != (len(x.peak_names), len(x.tf_names)):
                raise ValueError(
                    f"{x.gene}: the model expects {models.n_peaks[g]} peaks and {models.n_tfs[g]} TFs"
                )
        _check_inputs(inputs, [models.spec] * len(inputs))
        chunks = [(list(range(len(inputs))), models)]
    else:
        entries = _gene_entries(models, inputs)
        _check_inputs(inputs, [e[0] for e in entries])
        groups: dict[str, list[int]] = {}
        for i, (spec, _) in enumerate(entries):
            groups.setdefault(json.dumps(spec.to_dict(), sort_keys=True), []).append(i)
        step = genes_per_chunk
        chunks = [(idx[j : j + step], None) for idx in groups.values() for j in range(0, len(idx), step)]

    results: list[GeneAttribution | None] = [None] * len(inputs)
    for idx, model in chunks:
        if model is None:
            model = _build(
                [entries[i] for i in idx],
                [len(inputs[i].peak_names) for i in idx],
                [len(inputs[i].tf_names) for i in idx],
                device,
            )
        for i, out in zip(
            idx,
            _attribute_chunk(
                model, [inputs[i] for i in idx], alphas, weights, device, max_elements, engine, method, dtype
            ),
        ):
            results[i] = out
    return results  # type: ignore[return-value]


def _auto_genes_per_chunk(models, inputs, max_elements: int) -> int:
    """Genes per chunk bounding the encoder's im2col tensor (G·P·L·3·F0 values), the largest one."""
    if isinstance(models, BatchedGeneModel):
        spec = models.spec
    else:
        first = next(iter(models), None)
        spec = (
            first.spec
            if isinstance(first, BatchedGeneModel)
            else ModelSpec.from_dict(_state_of(first)["spec"])
        )
    if not spec.use_sequence:
        return len(inputs)
    per_gene = max(len(x.peak_names) for x in inputs) * spec.seq_len * 3 * max(spec.n_filters[0], 4)
    return max(1, min(len(inputs), 4 * max_elements // per_gene))


def _attribute_chunk(
    model: BatchedGeneModel, inputs, alphas, weights, device, max_elements, engine, method, dtype
):
    param = next(model.parameters())
    if param.device != device or param.dtype != dtype:
        model = copy.deepcopy(model).to(device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        data = StackedInputs(inputs, model.spec, device, dtype)
        g, m, p = data.acc.shape
        s, t, hh = len(alphas), model.t_max, model.spec.head_hidden
        trunk = p * max(model.spec.merge_hidden, 4 * model.spec.n_dims)
        with torch.no_grad():
            enc = model.encode(data.seq) if model.spec.use_sequence else None
        attr, fx, fb = [], [], []
        if engine == "head":
            rows = max(1, max_elements // (g * trunk))
            c0 = torch.cat(
                [
                    _baseline_preactivation(
                        model, enc, data.acc[:, i : i + rows], data.dist, data.cov[:, i : i + rows]
                    )
                    for i in range(0, m, rows)
                ],
                dim=1,
            )
            rows = max(1, max_elements // (g * (1 if method == "exact" else s) * max(hh, t)))
            for i in range(0, m, rows):
                if method == "exact":
                    a, f1, f0 = _exact_head_ig(model, c0[:, i : i + rows], data.tf[:, i : i + rows])
                else:
                    a, f1, f0 = _head_ig(
                        model, c0[:, i : i + rows], data.tf[:, i : i + rows], alphas, weights
                    )
                attr.append(a), fx.append(f1), fb.append(f0)
        else:
            rows = max(1, max_elements // (g * s * trunk))
            for i in range(0, m, rows):
                sl = slice(i, i + rows)
                a, f1, f0 = _full_ig(
                    model, enc, data.acc[:, sl], data.dist, data.tf[:, sl], data.cov[:, sl], alphas, weights
                )
                attr.append(a), fx.append(f1), fb.append(f0)
        attr_all = torch.cat(attr, 1).cpu().double().numpy()
        fx_all = torch.cat(fx, 1).cpu().double().numpy()
        fb_all = torch.cat(fb, 1).cpu().double().numpy()
    finally:
        model.train(was_training)
    out = []
    for k, x in enumerate(inputs):
        a = attr_all[k, :, : len(x.tf_names)]
        out.append(
            GeneAttribution(
                gene=x.gene,
                tf_names=list(x.tf_names),
                metacells=_metacell_names(x),
                attributions=a,
                delta=a.sum(1) - (fx_all[k] - fb_all[k]),
                f_x=fx_all[k],
                f_baseline=fb_all[k],
                n_steps=0 if method == "exact" else len(alphas),
            )
        )
    return out


# ====================================================================== captum paths
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


def _one_gene_model(model: ModelLike, x: GeneInputs, device) -> BatchedGeneModel:
    ((spec, state),) = _gene_entries([model], [x])
    return _build([(spec, state)], [len(x.peak_names)], [len(x.tf_names)], device)


def reference_ig(
    model: ModelLike,
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
    one = _one_gene_model(model, inputs, device)
    _check_inputs([inputs], [one.spec])
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
    names = _metacell_names(inputs)
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
