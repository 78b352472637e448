"""Cell2Net-style per-gene expression model, batched over genes.

One :class:`BatchedGeneModel` holds the parameters of G independent per-gene models stacked
along a leading gene dimension, with each gene's peaks padded to ``P_max`` and TFs to ``T_max``
and masked. Per-gene models are tiny, so on a GPU what costs when training them one at a time
is the per-gene overhead (kernel launches, Python); stacking turns G small computations into one
large one (DESIGN §4) while each gene still computes exactly what its own unbatched model would:

* padded peaks are excluded from BatchNorm statistics, masked out of attention keys and zeroed
  before the head, so padding never changes a gene's output (and its padded head weights get an
  exactly-zero gradient);
* parameters are initialised per gene from a generator seeded by ``(seed, gene name)`` with the
  gene's own (unpadded) shapes and fan-ins;
* dropout masks are drawn per gene from that gene's own random stream with its own shapes.

Two parameters have a mathematically zero gradient (a conv bias right before BatchNorm, and the
attention key bias, which softmax cancels); we compute them exactly as zero instead of as
rounding noise, because Adam would turn that noise into ±lr steps. Outputs are unchanged.

Architecture (following the reference ``PeaksTF2GeneExpressionPoisson``, cell2net v0.13; see
``shared/reference/cell2net.md`` §2):

1. sequence encoder shared by the gene's peaks: stem conv 4→F0 (k=5, 'same') + ELU, then one
   stage per entry of ``n_filters`` (conv k=3 + BatchNorm + ELU + MaxPool(2), plus a residual
   ``ELU(conv1x1(y)) + y``), channels F0→F1→…→F_last→F_last, flattened channel-major;
2. per-peak MLP on [sequence features, accessibility]: →126, ReLU, →n_dims, ReLU;
3. one pre-LN transformer block across the gene's peaks (no positional encoding); its MLP is
   Linear, Linear, ReLU, Dropout(0.1) in that order, exactly as the reference;
4. head on [flattened peak embeddings, exp(-distance/500 kb), TF expression, covariates]:
   Linear→32, ReLU, BatchNorm1d, Dropout, Linear→1 = Poisson log-rate.

Three differences from the reference, for identifiable TF effects (issue #13; all are identity
/ absent under ``TrainConfig.reference()``):

* TF expression and covariates enter **standardised** with the train split's mean and SD,
  stored as per-gene buffers (``tf_shift``/``tf_scale``, ``cov_shift``/``cov_scale``) so that
  prediction and attribution apply the same transform. It is an affine map folded into the
  head's first layer, so the model is still linear in raw TF expression there and attribution
  keeps its raw-zero baseline (``tf_head_weights`` returns the per-raw-unit slopes).
* ``ModelSpec.tf_linear`` adds a **linear readout on the standardised TFs** to the log-rate,
  beside the Cell2Net head: a TF's direct effect then has one place to go instead of being
  shared among ~500 head inputs (peak embeddings carry a second copy of TF activity through
  target-site openness), which is what made the reference's TF credit unidentifiable.
* With ``ModelSpec.tf_in_head=False`` (the product default) the TFs feed **only** that readout:
  the head's TF inputs are zero, so it models peak context, sequence and covariates and cannot
  take a share of the TF credit. The trainer starts the readout at a Poisson GLM (``glm_start``).

**Speed insight.** Peak sequences are identical for every metacell, so the encoder runs once
per step on the gene's P sequences and its output is broadcast over the B metacells, where the
reference encodes B×P copies. This is mathematically identical: BatchNorm statistics over B
identical copies equal those over the P sequences (we even pass the copy count so that the
unbiased running variance uses the reference's sample count B·P·L), and the gradient of the
broadcast sums over the copies just as the reference's does. The encoder's first merge layer is
split the same way (sequence part once per peak, accessibility part per metacell). Together
this removes a factor ≈B from the dominant cost.

``reference_module.ReferenceGeneModel`` is the same model from plain ``torch.nn`` layers, encoding
the B×P copies like the reference.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

DISTANCE_SCALE_BP = 500_000.0
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
LN_EPS = 1e-5


_M32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """32-bit integer hash (xorshift-multiply finaliser) on int64 tensors; no int64 overflow."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x5BD1E995) & _M32
    return x ^ (x >> 16)


def _uniform(h: torch.Tensor) -> torch.Tensor:
    """Hash values → float32 uniforms in [0, 1) from their top 24 bits."""
    return (h >> 8).to(torch.float32) * (1.0 / (1 << 24))


def gene_seed(seed: int, gene: str, purpose: str = "init") -> int:
    """Stable 32-bit seed for one gene; crc32, because Python's ``hash()`` is salted per process."""
    return zlib.crc32(f"{int(seed)}\x00{gene}\x00{purpose}".encode())


def distance_weight(distance_bp):
    """exp(-|d|/500 kb): the reference's distance prior, fed to the head."""
    return torch.exp(-torch.as_tensor(distance_bp, dtype=torch.float32).abs() / DISTANCE_SCALE_BP)


@dataclass(frozen=True)
class ModelSpec:
    """Architecture hyper-parameters shared by every gene of one batched model."""

    n_covariates: int
    seq_len: int | None = None  # None: no sequence branch
    n_filters: tuple[int, ...] = (64, 32, 32, 16)
    stem_kernel: int = 5
    n_dims: int = 16
    n_heads: int = 4
    merge_hidden: int = 126
    ffn_hidden: int = 64
    head_hidden: int = 32
    dropout: float = 0.25
    attn_dropout: float = 0.1
    tf_linear: bool = False  # a linear readout on the (standardised) TFs beside the head
    tf_in_head: bool = True  # TF expression also enters the head's first layer (the reference)

    def __post_init__(self):
        object.__setattr__(self, "n_filters", tuple(int(f) for f in self.n_filters))
        if self.n_dims % self.n_heads:
            raise ValueError(f"n_dims ({self.n_dims}) must be divisible by n_heads ({self.n_heads})")
        if self.seq_len is not None and self.seq_len // 2 ** len(self.n_filters) < 1:
            raise ValueError(f"seq_len {self.seq_len} too short for {len(self.n_filters)} pooling stages")

    @property
    def use_sequence(self) -> bool:
        return self.seq_len is not None

    @property
    def stages(self) -> list[tuple[int, int]]:
        """(in, out) channels per stage: F0→F1, …, F_last→F_last (the reference's layout)."""
        dims = list(self.n_filters) + [self.n_filters[-1]]
        return [(dims[i], dims[i + 1]) for i in range(len(self.n_filters))]

    @property
    def seq_features(self) -> int:
        """Flattened encoder output per peak (16 channels × 16 positions by default), 0 without sequence."""
        if self.seq_len is None:
            return 0
        length = self.seq_len
        for _ in self.stages:
            length //= 2
        return self.n_filters[-1] * length

    def head_features(self, n_peaks: int, n_tfs: int) -> int:
        return self.n_dims * n_peaks + n_peaks + n_tfs + self.n_covariates

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n_filters"] = list(self.n_filters)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        return cls(**{**d, "n_filters": tuple(d["n_filters"])})


@dataclass(frozen=True)
class _Entry:
    shape: tuple[int, ...]
    init: str  # kaiming | bias | xavier | ones | zeros
    fan_in: int = 1
    fan_out: int = 1
    buffer: bool = False
    per_tf: bool = False  # one value per TF: padded TFs hold the init value (1 or 0)


def gene_param_spec(spec: ModelSpec, n_peaks: int, n_tfs: int) -> dict[str, _Entry]:
    """One gene's own (unpadded) parameter and buffer shapes, in initialisation order."""
    e: dict[str, _Entry] = {}
    if spec.use_sequence:
        f0, k = spec.n_filters[0], spec.stem_kernel
        e["stem_w"] = _Entry((f0, 4, k), "kaiming", 4 * k)
        e["stem_b"] = _Entry((f0,), "bias", 4 * k)
        for i, (cin, cout) in enumerate(spec.stages):
            e[f"s{i}_conv_w"] = _Entry((cout, cin, 3), "kaiming", 3 * cin)
            e[f"s{i}_conv_b"] = _Entry((cout,), "bias", 3 * cin)
            e[f"s{i}_bn_w"] = _Entry((cout,), "ones")
            e[f"s{i}_bn_b"] = _Entry((cout,), "zeros")
            e[f"s{i}_bn_mean"] = _Entry((cout,), "zeros", buffer=True)
            e[f"s{i}_bn_var"] = _Entry((cout,), "ones", buffer=True)
            e[f"s{i}_res_w"] = _Entry((cout, cout, 1), "kaiming", cout)
            e[f"s{i}_res_b"] = _Entry((cout,), "bias", cout)
    m_in, hm, d, hf, hh = (
        spec.seq_features + 1,
        spec.merge_hidden,
        spec.n_dims,
        spec.ffn_hidden,
        spec.head_hidden,
    )
    e["merge1_w"] = _Entry((hm, m_in), "kaiming", m_in)
    e["merge1_b"] = _Entry((hm,), "bias", m_in)
    e["merge2_w"] = _Entry((d, hm), "kaiming", hm)
    e["merge2_b"] = _Entry((d,), "bias", hm)
    e["ln1_w"] = _Entry((d,), "ones")
    e["ln1_b"] = _Entry((d,), "zeros")
    e["qkv_w"] = _Entry((3 * d, d), "xavier", d, 3 * d)  # as nn.MultiheadAttention
    e["qkv_b"] = _Entry((3 * d,), "zeros")
    e["out_w"] = _Entry((d, d), "kaiming", d)
    e["out_b"] = _Entry((d,), "zeros")
    e["ln2_w"] = _Entry((d,), "ones")
    e["ln2_b"] = _Entry((d,), "zeros")
    e["ffn1_w"] = _Entry((hf, d), "kaiming", d)
    e["ffn1_b"] = _Entry((hf,), "bias", d)
    e["ffn2_w"] = _Entry((d, hf), "kaiming", hf)
    e["ffn2_b"] = _Entry((d,), "bias", hf)
    f = spec.head_features(n_peaks, n_tfs)
    e["head1_w"] = _Entry((hh, f), "kaiming", f)
    e["head1_b"] = _Entry((hh,), "bias", f)
    e["hbn_w"] = _Entry((hh,), "ones")
    e["hbn_b"] = _Entry((hh,), "zeros")
    e["hbn_mean"] = _Entry((hh,), "zeros", buffer=True)
    e["hbn_var"] = _Entry((hh,), "ones", buffer=True)
    e["head2_w"] = _Entry((1, hh), "kaiming", hh)
    e["head2_b"] = _Entry((1,), "bias", hh)
    if spec.tf_linear:
        e["tf_lin_w"] = _Entry((n_tfs,), "zeros", per_tf=True)
    # input standardisation (identity until the trainer sets the train split's statistics)
    e["tf_shift"] = _Entry((n_tfs,), "zeros", buffer=True, per_tf=True)
    e["tf_scale"] = _Entry((n_tfs,), "ones", buffer=True, per_tf=True)
    e["cov_shift"] = _Entry((spec.n_covariates,), "zeros", buffer=True)
    e["cov_scale"] = _Entry((spec.n_covariates,), "ones", buffer=True)
    return e


def count_gene_params(spec: ModelSpec, n_peaks: int, n_tfs: int) -> int:
    """Trainable parameters of one gene's own model (no padding)."""
    return sum(math.prod(x.shape) for x in gene_param_spec(spec, n_peaks, n_tfs).values() if not x.buffer)


def init_gene_state(
    spec: ModelSpec, n_peaks: int, n_tfs: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Fresh per-gene state drawn from ``generator`` with torch's default init distributions.

    Drawn with the gene's own shapes, so a gene gets the same initial weights alone or batched.
    """
    out = {}
    for name, x in gene_param_spec(spec, n_peaks, n_tfs).items():
        t = torch.empty(x.shape)
        if x.init == "kaiming" or x.init == "bias":  # kaiming_uniform(a=√5) and Linear's bias: ±1/√fan_in
            bound = 1.0 / math.sqrt(x.fan_in)
            t.uniform_(-bound, bound, generator=generator)
        elif x.init == "xavier":
            bound = math.sqrt(6.0 / (x.fan_in + x.fan_out))
            t.uniform_(-bound, bound, generator=generator)
        elif x.init == "ones":
            t.fill_(1.0)
        else:
            t.zero_()
        out[name] = t
    return out


def sequence_onehot(codes, device=None) -> torch.Tensor:
    """(…, L) uint8 codes 0..3 = A,C,G,T, 4 = N  →  (…, L, 4) float one-hot with N = zeros."""
    codes = torch.as_tensor(codes, device=device).long()
    return F.one_hot(codes, 5)[..., :4].float()


class BatchedGeneModel(nn.Module):
    """G per-gene models in one module; every parameter has a leading gene dimension.

    ``forward(seq, acc, dist_w, tf, cov)`` takes ``seq`` (G, P_max, L, 4) one-hot or None,
    ``acc`` (G, B, P_max), ``dist_w`` (G, P_max), ``tf`` (G, B, T_max), ``cov`` (G, B, C) and
    returns the Poisson log-rate (G, B). Genes never interact: the output and gradients of gene g
    depend only on gene g's parameters and inputs.
    """

    def __init__(self, spec: ModelSpec, n_peaks: list[int], n_tfs: list[int]):
        super().__init__()
        if len(n_peaks) != len(n_tfs) or not n_peaks:
            raise ValueError("n_peaks and n_tfs must be non-empty lists of equal length")
        if min(n_peaks) < 1:
            raise ValueError("every gene needs at least one peak")
        self.spec = spec
        self.n_genes = len(n_peaks)
        self.n_peaks = [int(p) for p in n_peaks]
        self.n_tfs = [int(t) for t in n_tfs]
        self.p_max, self.t_max = max(self.n_peaks), max(self.n_tfs)
        g = self.n_genes
        self._entries = gene_param_spec(spec, self.p_max, self.t_max)
        for name, x in self._entries.items():
            t = torch.zeros((g, *x.shape))
            if x.buffer:
                self.register_buffer(name, t)
            else:
                self.register_parameter(name, nn.Parameter(t))
        pm = torch.zeros(g, self.p_max)
        tm = torch.zeros(g, self.t_max)
        for i, (p, t_) in enumerate(zip(self.n_peaks, self.n_tfs)):
            pm[i, :p] = 1.0
            tm[i, :t_] = 1.0
        self.register_buffer("peak_mask", pm, persistent=False)
        self.register_buffer("tf_mask", tm, persistent=False)
        keep = torch.ones(3 * spec.n_dims)
        keep[spec.n_dims : 2 * spec.n_dims] = 0.0
        self.register_buffer("qkv_bias_keep", keep, persistent=False)
        self.register_buffer("n_peaks_t", torch.tensor(self.n_peaks, dtype=torch.float32), persistent=False)
        self.dropout_generators: list[torch.Generator] | None = None  # see set_dropout_rng

    # ------------------------------------------------------------------ per-gene state
    def _head_index(self, g: int) -> torch.Tensor:
        """Columns of the padded head input that gene g's own head input maps to."""
        p, t, d, pm, tm = self.n_peaks[g], self.n_tfs[g], self.spec.n_dims, self.p_max, self.t_max
        c = self.spec.n_covariates
        idx = [
            torch.arange(d * p),
            d * pm + torch.arange(p),
            (d + 1) * pm + torch.arange(t),
            (d + 1) * pm + tm + torch.arange(c),
        ]
        return torch.cat(idx)

    def gene_state_dict(self, g: int) -> dict[str, torch.Tensor]:
        """A detached copy (never a view) of gene g's unpadded parameters and buffers."""
        out = {}
        for name in self._entries:
            t = getattr(self, name)[g].detach()
            if name == "head1_w":
                t = t[:, self._head_index(g).to(t.device)]
            elif self._entries[name].per_tf:
                t = t[: self.n_tfs[g]]
            out[name] = t.clone()
        return out

    @torch.no_grad()
    def load_gene_state(self, g: int, state: dict[str, torch.Tensor]) -> None:
        """Write one gene's unpadded state into slot g; padded head columns are set to zero."""
        own = gene_param_spec(self.spec, self.n_peaks[g], self.n_tfs[g])
        missing = set(own) ^ set(state)
        if missing:
            raise ValueError(f"gene state keys differ from the architecture: {sorted(missing)}")
        for name, x in own.items():
            src = torch.as_tensor(state[name])
            if tuple(src.shape) != x.shape:
                raise ValueError(f"{name}: shape {tuple(src.shape)}, expected {x.shape}")
            dst = getattr(self, name)
            if name == "head1_w":
                dst[g].zero_()
                dst[g][:, self._head_index(g).to(dst.device)] = src.to(dst)
            elif x.per_tf:
                dst[g].fill_(1.0 if x.init == "ones" else 0.0)
                dst[g][: len(src)] = src.to(dst)
            else:
                dst[g].copy_(src)

    def n_params(self, g: int) -> int:
        return count_gene_params(self.spec, self.n_peaks[g], self.n_tfs[g])

    # ------------------------------------------------------------------ encoder
    def _seq_bn(self, x: torch.Tensor, i: int, n_copies: int, conv_bias: torch.Tensor) -> torch.Tensor:
        """BatchNorm on (P, G, C, L) over each gene's valid peaks × positions only (masked stats).

        ``x`` comes without the preceding conv's bias. In training mode BatchNorm cancels that
        bias exactly, so we leave it out of the arithmetic and give it an exactly-zero gradient
        (rounding noise there would otherwise become ±lr Adam steps); it still enters the
        running mean, exactly as in the reference.
        """
        w, b = getattr(self, f"s{i}_bn_w"), getattr(self, f"s{i}_bn_b")
        rm, rv = getattr(self, f"s{i}_bn_mean"), getattr(self, f"s{i}_bn_var")
        if self.training:
            m = self.peak_mask.t()[:, :, None, None]  # (P, G, 1, 1)
            n = (self.n_peaks_t * x.shape[3]).unsqueeze(1)  # (G, 1)
            mean = (x * m).sum((0, 3)) / n + 0.0 * conv_bias  # bias: exact zero gradient (docstring)
            xc = x - mean[None, :, :, None]
            var = (xc * xc * m).sum((0, 3)) / n
            with torch.no_grad():
                n_ref = n * n_copies  # the reference normalises B identical copies
                rm.mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * (mean + conv_bias))
                rv.mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * var * n_ref / (n_ref - 1))
            scale = torch.rsqrt(var + BN_EPS) * w
            return xc * scale[None, :, :, None] + b[None, :, :, None]
        scale = torch.rsqrt(rv + BN_EPS) * w
        return (x + (conv_bias - rm)[None, :, :, None]) * scale[None, :, :, None] + b[None, :, :, None]

    def encode(self, seq: torch.Tensor, n_copies: int = 1) -> torch.Tensor:
        """(G, P_max, L, 4) one-hot → (G, P_max, seq_features), once per step for all metacells.

        Per-gene convolutions are grouped convolutions (groups=G) on (P, G·C, L): the fastest of
        grouped conv, im2col+bmm and a per-gene loop on one CPU thread, and cuDNN's case on GPU.
        ``n_copies`` is the number of metacells the reference would have encoded copies for; it
        only enters the unbiased running-variance update.
        """
        g, p, length, _ = seq.shape
        x = seq.permute(1, 0, 3, 2).reshape(p, g * 4, length)
        w = self.stem_w
        x = F.elu(
            F.conv1d(x, w.reshape(-1, 4, w.shape[-1]), self.stem_b.reshape(-1), padding="same", groups=g)
        )
        for i, (cin, cout) in enumerate(self.spec.stages):
            x = F.conv1d(x, getattr(self, f"s{i}_conv_w").reshape(-1, cin, 3), None, padding=1, groups=g)
            x = self._seq_bn(x.view(p, g, cout, -1), i, n_copies, getattr(self, f"s{i}_conv_b"))
            x = F.max_pool1d(F.elu(x).view(p, g * cout, -1), 2)
            rw, rb = getattr(self, f"s{i}_res_w"), getattr(self, f"s{i}_res_b")
            x = F.elu(F.conv1d(x, rw.reshape(-1, cout, 1), rb.reshape(-1), groups=g)) + x
        c = self.spec.stages[-1][1]
        return x.view(p, g, c, -1).transpose(0, 1).reshape(g, p, -1)  # channel-major, as the reference

    # ------------------------------------------------------------------ dropout
    def set_dropout_rng(self, seeds: list[int], mode: str = "generator") -> None:
        """Give each gene its own dropout random stream, seeded per gene.

        ``generator``: one ``torch.Generator`` per gene, G small draws per step (cheap on CPU).
        ``hash``: a counter-based hash of (gene seed, call, element index in the gene's own
        shape), computed for all genes in a few vectorised integer ops: no per-gene kernel
        launches, so it is the GPU choice. Either way a gene's masks do not depend on the other
        genes of the batch or on padding.
        """
        if mode not in ("generator", "hash"):
            raise ValueError(f"dropout rng mode must be 'generator' or 'hash', got {mode!r}")
        if len(seeds) != self.n_genes:
            raise ValueError(f"need {self.n_genes} seeds, got {len(seeds)}")
        device = self.peak_mask.device
        self.dropout_mode = mode
        self.dropout_calls = 0
        self.dropout_generators = None
        if mode == "generator":
            self.dropout_generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
        else:
            self.dropout_seeds = torch.tensor(
                [int(s) & _M32 for s in seeds], dtype=torch.int64, device=device
            )

    def _dropout_masks(self, b: int, device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Per-gene dropout masks drawn with each gene's own stream and own (unpadded) shapes."""
        pa, ph = self.spec.attn_dropout, self.spec.dropout
        if pa == 0 and ph == 0:
            return None, None
        g, d, hh = self.n_genes, self.spec.n_dims, self.spec.head_hidden
        dt = self.peak_mask.dtype
        self.dropout_calls = getattr(self, "dropout_calls", 0) + 1
        if getattr(self, "dropout_mode", "generator") == "hash":
            return self._hash_masks(b, device, dt)
        ma = torch.zeros(g, b, self.p_max, d, device=device, dtype=dt) if pa > 0 else None
        mh = torch.zeros(g, b, hh, device=device, dtype=dt) if ph > 0 else None
        gens = self.dropout_generators
        for i, p in enumerate(self.n_peaks):
            n_a = b * p * d if pa > 0 else 0
            n_h = b * hh if ph > 0 else 0
            gen = gens[i] if gens is not None else None
            u = torch.rand(n_a + n_h, device=device, generator=gen)
            if ma is not None:
                ma[i, :, :p] = (u[:n_a] >= pa).view(b, p, d).to(dt) / (1 - pa)
            if mh is not None:
                mh[i] = (u[n_a:] >= ph).view(b, hh).to(dt) / (1 - ph)
        return ma, mh

    def _hash_masks(self, b: int, device, dt):
        pa, ph = self.spec.attn_dropout, self.spec.dropout
        g, d, hh = self.n_genes, self.spec.n_dims, self.spec.head_hidden
        key = _mix32(_mix32(self.dropout_seeds) ^ (self.dropout_calls & _M32))  # (G,)
        ma = mh = None
        if pa > 0:  # element index in the gene's own (B, P_g, D) layout
            pg = self.n_peaks_t.long().view(g, 1, 1, 1)
            bi = torch.arange(b, device=device).view(1, b, 1, 1)
            pi = torch.arange(self.p_max, device=device).view(1, 1, -1, 1)
            di = torch.arange(d, device=device).view(1, 1, 1, d)
            idx = (bi * pg + pi) * d + di
            u = _uniform(_mix32(key.view(g, 1, 1, 1) ^ _mix32(idx)))
            ma = (u >= pa).to(dt) * self.peak_mask[:, None, :, None] / (1 - pa)
        if ph > 0:  # a separate stream: index offset by 2^31
            idx = torch.arange(b * hh, device=device).view(1, b, hh) + (1 << 31)
            u = _uniform(_mix32(key.view(g, 1, 1) ^ _mix32(idx)))
            mh = (u >= ph).to(dt) / (1 - ph)
        return ma, mh

    # ------------------------------------------------------------------ forward
    def forward(self, seq, acc, dist_w, tf, cov) -> torch.Tensor:
        enc = self.encode(seq, n_copies=acc.shape[1]) if self.spec.use_sequence else None
        return self.forward_encoded(enc, acc, dist_w, tf, cov)

    def forward_encoded(self, enc, acc, dist_w, tf, cov) -> torch.Tensor:
        """Everything after the sequence encoder; ``enc`` from :meth:`encode` (or None).

        Split into :meth:`peak_embeddings`, :meth:`head_preactivation` and :meth:`head` so that
        attribution can run the parts that TF expression does not reach once, from the same code.
        """
        b = acc.shape[1]
        mask_a, mask_h = self._dropout_masks(b, acc.device) if self.training else (None, None)
        x = self.peak_embeddings(enc, acc, mask_a)
        return self.head(self.head_preactivation(x, dist_w, tf, cov), mask_h) + self.tf_readout(tf)

    def peak_embeddings(self, enc, acc, attn_dropout: torch.Tensor | None = None) -> torch.Tensor:
        """(G, B, P_max, n_dims) peak embeddings: peak MLP and transformer block (no TF input)."""
        g, b, p = acc.shape
        d, h = self.spec.n_dims, self.spec.n_heads
        s = self.spec.seq_features
        w1 = self.merge1_w
        if enc is not None:
            if enc.shape[:2] != (g, p):
                raise ValueError("encoded sequences do not match the accessibility shape")
            hs = torch.baddbmm(self.merge1_b.unsqueeze(1), enc, w1[:, :, :s].transpose(1, 2))  # (G, P, Hm)
            x = hs.unsqueeze(1) + acc.unsqueeze(-1) * w1[:, None, None, :, s]
        else:
            x = self.merge1_b[:, None, None, :] + acc.unsqueeze(-1) * w1[:, None, None, :, 0]
        x = F.relu(x)
        x = torch.baddbmm(self.merge2_b.unsqueeze(1), x.reshape(g, b * p, -1), self.merge2_w.transpose(1, 2))
        x = F.relu(x).reshape(g, b, p, d)
        # pre-LN self-attention across the gene's peaks; padded peaks are never attended to
        y = F.layer_norm(x, (d,), eps=LN_EPS) * self.ln1_w[:, None, None] + self.ln1_b[:, None, None]
        # the key bias shifts every score of a query equally, so softmax cancels it exactly; leave
        # it out (exactly-zero gradient instead of rounding noise that Adam would amplify)
        qkv_b = self.qkv_b * self.qkv_bias_keep
        qkv = torch.baddbmm(qkv_b.unsqueeze(1), y.reshape(g, b * p, d), self.qkv_w.transpose(1, 2))
        q, k, v = qkv.reshape(g * b, p, 3, h, d // h).permute(2, 0, 3, 1, 4)
        keep = self.peak_mask.bool()[:, None, None, None, :].expand(g, b, 1, 1, p).reshape(g * b, 1, 1, p)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        o = torch.baddbmm(
            self.out_b.unsqueeze(1), o.transpose(1, 2).reshape(g, b * p, d), self.out_w.transpose(1, 2)
        )
        x = x + o.reshape(g, b, p, d)
        y = F.layer_norm(x, (d,), eps=LN_EPS) * self.ln2_w[:, None, None] + self.ln2_b[:, None, None]
        y = torch.baddbmm(self.ffn1_b.unsqueeze(1), y.reshape(g, b * p, d), self.ffn1_w.transpose(1, 2))
        y = torch.baddbmm(self.ffn2_b.unsqueeze(1), y, self.ffn2_w.transpose(1, 2))
        y = F.relu(y).reshape(g, b, p, d)
        if attn_dropout is not None:
            y = y * attn_dropout
        return x + y

    def head_preactivation(self, x, dist_w, tf, cov) -> torch.Tensor:
        """(G, B, head_hidden) first head layer before its ReLU, on [peak embeddings ``x``, distance
        weights, TF expression, covariates] with padding zeroed; linear in ``tf``."""
        g, b, p, d = x.shape
        pmask = self.peak_mask
        feat = torch.cat(
            [
                (x * pmask[:, None, :, None]).reshape(g, b, p * d),
                (dist_w * pmask).unsqueeze(1).expand(g, b, p),
                self.standardised_tf(tf) * float(self.spec.tf_in_head),
                (cov - self.cov_shift.unsqueeze(1)) / self.cov_scale.unsqueeze(1),
            ],
            dim=-1,
        )
        return torch.baddbmm(self.head1_b.unsqueeze(1), feat, self.head1_w.transpose(1, 2))

    def standardised_tf(self, tf) -> torch.Tensor:
        """(G, B, T_max) TF expression on the train split's scale, padded TFs zeroed."""
        return (tf - self.tf_shift.unsqueeze(1)) / self.tf_scale.unsqueeze(1) * self.tf_mask.unsqueeze(1)

    def tf_readout(self, tf) -> torch.Tensor | float:
        """(G, B) the linear TF readout's share of the log-rate (0 without ``spec.tf_linear``)."""
        if not self.spec.tf_linear:
            return 0.0
        return (self.standardised_tf(tf) * self.tf_lin_w.unsqueeze(1)).sum(-1)

    def tf_readout_slopes(self) -> torch.Tensor:
        """(G, T_max) d(readout)/d(raw TF expression); zeros without ``spec.tf_linear``."""
        if not self.spec.tf_linear:
            return torch.zeros_like(self.tf_shift)
        return self.tf_lin_w / self.tf_scale * self.tf_mask

    def tf_head_weights(self) -> torch.Tensor:
        """(G, head_hidden, T_max) first-head-layer slopes in raw TF expression (the columns that
        multiply TF expression over the standardisation scale, padded TFs zeroed):
        ``head_preactivation`` at ``tf`` = at zero TFs + ``tf @ Wᵀ``."""
        cols = (self.spec.n_dims + 1) * self.p_max + torch.arange(self.t_max, device=self.head1_w.device)
        return self.head1_w[:, :, cols] * (
            self.tf_mask / self.tf_scale * float(self.spec.tf_in_head)
        ).unsqueeze(1)

    def head(self, z, dropout: torch.Tensor | None = None) -> torch.Tensor:
        """ReLU, BatchNorm, dropout and the last linear layer: (G, B, H) pre-activation → (G, B)."""
        z = F.relu(z)
        if self.training:
            b = z.shape[1]
            mean = z.mean(1)
            var = z.var(1, unbiased=False)
            with torch.no_grad():
                self.hbn_mean.mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * mean)
                self.hbn_var.mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * var * b / max(b - 1, 1))
        else:
            mean, var = self.hbn_mean, self.hbn_var
        z = (z - mean.unsqueeze(1)) * (torch.rsqrt(var + BN_EPS) * self.hbn_w).unsqueeze(
            1
        ) + self.hbn_b.unsqueeze(1)
        if dropout is not None:
            z = z * dropout
        out = torch.baddbmm(self.head2_b.unsqueeze(1), z, self.head2_w.transpose(1, 2))
        return out.squeeze(-1)

    def head_gain(self) -> torch.Tensor:
        """(G, head_hidden) eval-mode slope of the log-rate in each hidden unit's ReLU output: the
        head is linear after its ReLU, which exact (closed-form) attribution relies on."""
        return self.head2_w[:, 0, :] * torch.rsqrt(self.hbn_var + BN_EPS) * self.hbn_w


def poisson_nll(log_rate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Elementwise Poisson NLL with log input, as ``nn.PoissonNLLLoss(log_input=True)``."""
    return torch.exp(log_rate) - target * log_rate
