"""One gene's model from plain ``torch.nn`` layers, computed the way the reference computes it.

It encodes all B×P sequence copies; it exists to prove :class:`.module.BatchedGeneModel`'s
batched math equal (tests) and as the reference-style baseline of ``bench/bench_training.py``
and of the captum paths in ``attribution.captum_reference``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from regnet_assets.science.models.module import ModelSpec


class ReferenceGeneModel(nn.Module):
    """One gene's model from plain ``torch.nn`` layers, encoding B×P sequence copies.

    Same math as the reference module; used to check :class:`BatchedGeneModel` and as the
    reference-style baseline in the benchmark. Load weights with :meth:`load_gene_state`.
    """

    def __init__(self, spec: ModelSpec, n_peaks: int, n_tfs: int):
        super().__init__()
        self.spec, self.n_peaks, self.n_tfs = spec, n_peaks, n_tfs
        d = spec.n_dims
        if spec.use_sequence:
            self.stem = nn.Conv1d(4, spec.n_filters[0], spec.stem_kernel, padding="same")
            self.convs = nn.ModuleList(nn.Conv1d(i, o, 3, padding=1) for i, o in spec.stages)
            self.bns = nn.ModuleList(nn.BatchNorm1d(o) for _, o in spec.stages)
            self.res = nn.ModuleList(nn.Conv1d(o, o, 1) for _, o in spec.stages)
        self.merge1 = nn.Linear(spec.seq_features + 1, spec.merge_hidden)
        self.merge2 = nn.Linear(spec.merge_hidden, d)
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, spec.n_heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.ffn1 = nn.Linear(d, spec.ffn_hidden)
        self.ffn2 = nn.Linear(spec.ffn_hidden, d)
        self.attn_drop = nn.Dropout(spec.attn_dropout)
        self.head1 = nn.Linear(spec.head_features(n_peaks, n_tfs), spec.head_hidden)
        self.head_bn = nn.BatchNorm1d(spec.head_hidden)
        self.head_drop = nn.Dropout(spec.dropout)
        self.head2 = nn.Linear(spec.head_hidden, 1)

    def _names(self) -> dict[str, torch.Tensor]:
        m = {
            "merge1_w": self.merge1.weight,
            "merge1_b": self.merge1.bias,
            "merge2_w": self.merge2.weight,
            "merge2_b": self.merge2.bias,
            "ln1_w": self.ln1.weight,
            "ln1_b": self.ln1.bias,
            "qkv_w": self.attn.in_proj_weight,
            "qkv_b": self.attn.in_proj_bias,
            "out_w": self.attn.out_proj.weight,
            "out_b": self.attn.out_proj.bias,
            "ln2_w": self.ln2.weight,
            "ln2_b": self.ln2.bias,
            "ffn1_w": self.ffn1.weight,
            "ffn1_b": self.ffn1.bias,
            "ffn2_w": self.ffn2.weight,
            "ffn2_b": self.ffn2.bias,
            "head1_w": self.head1.weight,
            "head1_b": self.head1.bias,
            "hbn_w": self.head_bn.weight,
            "hbn_b": self.head_bn.bias,
            "hbn_mean": self.head_bn.running_mean,
            "hbn_var": self.head_bn.running_var,
            "head2_w": self.head2.weight,
            "head2_b": self.head2.bias,
        }
        if self.spec.use_sequence:
            m.update(stem_w=self.stem.weight, stem_b=self.stem.bias)
            for i in range(len(self.convs)):
                m.update(
                    {
                        f"s{i}_conv_w": self.convs[i].weight,
                        f"s{i}_conv_b": self.convs[i].bias,
                        f"s{i}_bn_w": self.bns[i].weight,
                        f"s{i}_bn_b": self.bns[i].bias,
                        f"s{i}_bn_mean": self.bns[i].running_mean,
                        f"s{i}_bn_var": self.bns[i].running_var,
                        f"s{i}_res_w": self.res[i].weight,
                        f"s{i}_res_b": self.res[i].bias,
                    }
                )
        return m

    @torch.no_grad()
    def load_gene_state(self, state: dict[str, torch.Tensor]) -> None:
        for name, t in self._names().items():
            t.copy_(state[name])

    def gene_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self._names().items()}

    def encode(self, seq_copies: torch.Tensor) -> torch.Tensor:
        """(N, L, 4) one-hot → (N, seq_features)."""
        x = F.elu(self.stem(seq_copies.transpose(1, 2)))
        for conv, bn, res in zip(self.convs, self.bns, self.res):
            x = F.max_pool1d(F.elu(bn(conv(x))), 2)
            x = F.elu(res(x)) + x
        return x.flatten(1)

    def forward(self, seq, acc, dist_w, tf, cov) -> torch.Tensor:
        """seq (P, L, 4) or None, acc (B, P), dist_w (P,), tf (B, T), cov (B, C) → log-rate (B,)."""
        b, p = acc.shape
        if self.spec.use_sequence:
            copies = seq.unsqueeze(0).expand(b, *seq.shape).reshape(b * p, *seq.shape[1:])
            x = torch.cat([self.encode(copies).reshape(b, p, -1), acc.unsqueeze(-1)], -1)
        else:
            x = acc.unsqueeze(-1)
        x = F.relu(self.merge2(F.relu(self.merge1(x))))
        y = self.ln1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        x = x + self.attn_drop(F.relu(self.ffn2(self.ffn1(self.ln2(x)))))
        feat = torch.cat([x.flatten(1), dist_w.expand(b, p), tf, cov], 1)
        z = self.head_drop(self.head_bn(F.relu(self.head1(feat))))
        return self.head2(z).squeeze(-1)
