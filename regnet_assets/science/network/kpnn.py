"""Knowledge-primed neural network (KPNN; Fortelny & Bock 2020) in PyTorch: the model.

One sigmoid neuron per non-input node of a DAG (edges in computation direction, see :mod:`pkn`),
connected only along DAG edges, evaluated level by level (level = longest path from the inputs).
The root is the output neuron (a logit; BCE-with-logits loss). Training and cross-validation are
in :mod:`kpnn_training`.

Fixes relative to the CORNETO tutorial (reference note §2):

* input batch normalisation really runs (Keras silently dropped it there);
* L1/L2 penalties go to the tensors they are named after (the reference swaps weights and biases);
* dropout drops *nodes* (one mask per cell and hidden node, shared by all its consumers), as the
  KPNN paper does, not edges (DropConnect). ``dropout_rule="kpnn"`` also applies the paper's
  protection: a node whose consumer has only 1/2/3 inputs is dropped with probability 0/≤0.1/≤0.3,
  so no neuron loses all of its input.

Node importance is the paper's *node weight*: the sensitivity ∂ŷ/∂a_v of the predicted probability
to a hidden node's activation, averaged over test cells (exact by autograd; the paper's central
difference is available for checking).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

__all__ = ["KPNN", "node_sensitivity"]


# ----------------------------------------------------------------------------------------------
# the network


def _levels(edges: pd.DataFrame, inputs: Sequence[str], root: str):
    """Topological levels of the neurons; errors for cycles, dead neurons and misplaced nodes."""
    inputs = list(dict.fromkeys(inputs))
    in_set = set(inputs)
    nodes = pd.unique(np.concatenate([edges["source"].to_numpy(), edges["target"].to_numpy()]))
    targets = set(edges["target"])
    bad_inputs = [i for i in inputs if i in targets]
    if bad_inputs:
        raise ValueError(f"inputs must have no incoming edges; {len(bad_inputs)} do, e.g. {bad_inputs[:5]}")
    missing = [i for i in inputs if i not in set(nodes)]
    if missing:
        raise ValueError(f"{len(missing)} input(s) are not in the network, e.g. {missing[:5]}")
    dead = [v for v in nodes if v not in in_set and v not in targets]
    if dead:
        raise ValueError(
            f"{len(dead)} non-input node(s) have no inputs (e.g. {dead[:5]}); run reachability_prune first"
        )
    if root not in targets:
        raise ValueError(f"root {root!r} is not a neuron of the network")
    if (edges["source"] == root).any():
        raise ValueError(f"the root {root!r} must have no outgoing edges")
    sinks = set(nodes) - set(edges["source"]) - {root}
    if sinks:
        raise ValueError(f"{len(sinks)} node(s) other than the root feed nothing, e.g. {sorted(sinks)[:5]}")
    preds: dict[str, list[str]] = {}
    succ: dict[str, list[str]] = {}
    for s, t in zip(edges["source"], edges["target"]):
        preds.setdefault(t, []).append(s)
        succ.setdefault(s, []).append(t)
    indeg = {v: len(preds.get(v, ())) for v in nodes}
    level = {v: 0 for v in inputs}
    queue = deque(inputs)
    seen = 0
    while queue:
        u = queue.popleft()
        seen += 1
        for v in succ.get(u, ()):
            level[v] = max(level.get(v, 0), level[u] + 1)
            indeg[v] -= 1
            if indeg[v] == 0:
                queue.append(v)
    if seen != len(nodes):
        raise ValueError("the network has a directed cycle; a KPNN needs a DAG (prune it first)")
    return level, preds, succ


class KPNN(nn.Module):
    """Sigmoid neuron per non-input node, wired only along ``edges`` (``source, target``).

    ``forward(x)`` takes cells × inputs in ``inputs`` order and returns the root's logit.
    ``representation="sparse"`` stores one weight per edge (gather + index_add per level);
    ``"dense"`` stores a full weight matrix per level multiplied by a fixed 0/1 mask, so an absent
    connection has a parameter whose value and gradient provably do not matter.
    """

    def __init__(
        self,
        edges: pd.DataFrame,
        inputs: Sequence[str],
        root: str,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        dropout_rule: str = "kpnn",
        batch_norm_input: bool = True,
        representation: str = "sparse",
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        edges = edges[["source", "target"]].drop_duplicates().reset_index(drop=True)
        level, preds, succ = _levels(edges, inputs, root)
        self.inputs = list(dict.fromkeys(inputs))
        self.root = root
        self.representation = representation
        self.input_dropout = float(input_dropout)
        neurons = sorted((v for v in level if v not in set(self.inputs)), key=lambda v: (level[v], str(v)))
        self.neurons = neurons  # root is last (it has the highest level)
        assert neurons[-1] == root
        self.hidden = neurons[:-1]
        ni = len(self.inputs)
        pos = {v: i for i, v in enumerate(self.inputs)}
        pos.update({v: ni + j for j, v in enumerate(neurons)})
        self._pos = pos
        self.edges = edges
        self.n_edges = len(edges)
        self.in_degree = np.array([len(preds[v]) for v in neurons])

        self.bn = nn.BatchNorm1d(ni, affine=False) if batch_norm_input else None

        # node dropout probabilities (hidden nodes only)
        p = np.full(len(self.hidden), float(dropout))
        if dropout_rule == "kpnn" and dropout > 0:
            indeg = dict(zip(neurons, self.in_degree))
            for j, v in enumerate(self.hidden):
                smallest = min(indeg[c] for c in succ[v])
                cap = {1: 0.0, 2: 0.1, 3: 0.3}.get(smallest, 1.0)
                p[j] = min(p[j], cap)
        self.register_buffer("drop_p", torch.tensor(p, dtype=torch.float32))

        # per-level structure: which neurons, which edges feed them
        lv = np.array([level[v] for v in neurons])
        src_pos = np.array([pos[s] for s in edges["source"]])
        dst_neuron = np.array([pos[t] - ni for t in edges["target"]])
        self._level_slices = []
        g = torch.Generator().manual_seed(0) if generator is None else generator
        starts = np.searchsorted(lv, np.unique(lv))
        bounds = list(zip(starts, list(starts[1:]) + [len(neurons)]))
        # Glorot-uniform per neuron (fan_in = in-degree, fan_out = 1), zero bias: as Keras Dense(1)
        limit = np.sqrt(6.0 / (self.in_degree[dst_neuron] + 1.0))
        init = (torch.rand(self.n_edges, generator=g, dtype=torch.float64).numpy() * 2 - 1) * limit
        self.bias = nn.Parameter(torch.zeros(len(neurons)))
        if representation == "sparse":
            self.weight = nn.Parameter(torch.tensor(init, dtype=torch.float32))
        else:
            self.weights = nn.ParameterList()
        self._edge_order = []
        for li, (a, b) in enumerate(bounds):
            e = np.flatnonzero((dst_neuron >= a) & (dst_neuron < b))
            e = e[np.argsort(dst_neuron[e], kind="stable")]
            self._edge_order.append(e)
            self.register_buffer(f"src_{li}", torch.tensor(src_pos[e], dtype=torch.long))
            self.register_buffer(f"dst_{li}", torch.tensor(dst_neuron[e] - a, dtype=torch.long))
            self.register_buffer(f"eid_{li}", torch.tensor(e, dtype=torch.long))
            if representation == "dense":
                width = ni + a  # everything computed before this level
                mask = torch.zeros(b - a, width)
                mask[dst_neuron[e] - a, src_pos[e]] = 1.0
                w = torch.zeros(b - a, width)
                w[dst_neuron[e] - a, src_pos[e]] = torch.tensor(init[e], dtype=torch.float32)
                self.weights.append(nn.Parameter(w))
                self.register_buffer(f"mask_{li}", mask)
            self._level_slices.append((int(a), int(b)))

    # -- parameters ------------------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        """Σ over neurons of (in-degree + 1): the KPNN parameter count (masked entries excluded)."""
        return int(self.n_edges + len(self.neurons))

    def edge_weights(self) -> torch.Tensor:
        """Weights in ``self.edges`` order (a view for sparse; gathered through the mask for dense)."""
        if self.representation == "sparse":
            return self.weight
        out = torch.zeros(self.n_edges, device=self.bias.device)
        for li, (_a, _) in enumerate(self._level_slices):
            src, dst, eid = getattr(self, f"src_{li}"), getattr(self, f"dst_{li}"), getattr(self, f"eid_{li}")
            out = out.index_put((eid,), self.weights[li][dst, src])
        return out

    @torch.no_grad()
    def set_edge_weights(self, w: torch.Tensor) -> None:
        w = torch.as_tensor(w, dtype=torch.float32, device=self.bias.device)
        if self.representation == "sparse":
            self.weight.copy_(w)
            return
        for li in range(len(self._level_slices)):
            src, dst, eid = getattr(self, f"src_{li}"), getattr(self, f"dst_{li}"), getattr(self, f"eid_{li}")
            self.weights[li][dst, src] = w[eid]

    def penalty(self, weight_l1=0.0, weight_l2=0.0, bias_l1=0.0, bias_l2=0.0) -> torch.Tensor:
        """L1/L2 on connection weights (only real edges) and on biases, each to its own tensor."""
        zero = self.bias.new_zeros(())
        total = zero
        if weight_l1 or weight_l2:
            if self.representation == "sparse":
                ws = [self.weight]
            else:
                ws = [W * getattr(self, f"mask_{li}") for li, W in enumerate(self.weights)]
            if weight_l1:
                total = total + weight_l1 * sum(w.abs().sum() for w in ws)
            if weight_l2:
                total = total + weight_l2 * sum(w.pow(2).sum() for w in ws)
        if bias_l1:
            total = total + bias_l1 * self.bias.abs().sum()
        if bias_l2:
            total = total + bias_l2 * self.bias.pow(2).sum()
        return total

    # -- forward ---------------------------------------------------------------------------------
    def _node_dropout(self, a: torch.Tensor, p: torch.Tensor, generator) -> torch.Tensor:
        keep = 1.0 - p
        mask = torch.bernoulli(keep.expand_as(a), generator=generator)
        return torch.where(keep > 0, a * mask / keep.clamp_min(1e-12), torch.zeros_like(a))

    def forward(
        self,
        x: torch.Tensor,
        delta: torch.Tensor | None = None,
        return_all: bool = False,
        generator: torch.Generator | None = None,
    ):
        """Root logit per cell. ``delta`` (cells × hidden) is added to hidden activations (for
        sensitivities). ``return_all`` also returns pre- and post-dropout neuron activations."""
        if self.bn is not None:
            x = self.bn(x)
        if self.training and self.input_dropout > 0:
            p = x.new_full((x.shape[1],), self.input_dropout)
            x = self._node_dropout(x, p, generator)
        parts = [x]
        pre, post = [], []
        ni = x.shape[1]
        n_hidden = len(self.hidden)
        state = x
        logit = None
        for li, (a, b) in enumerate(self._level_slices):
            if li > 0:
                state = torch.cat(parts, dim=1)
            if self.representation == "sparse":
                src, dst, eid = (
                    getattr(self, f"src_{li}"),
                    getattr(self, f"dst_{li}"),
                    getattr(self, f"eid_{li}"),
                )
                contrib = state[:, src] * self.weight[eid]
                z = state.new_zeros(state.shape[0], b - a).index_add_(1, dst, contrib)
            else:
                W = self.weights[li] * getattr(self, f"mask_{li}")
                z = state[:, : ni + a] @ W.T
            z = z + self.bias[a:b]
            if b == len(self.neurons):  # the root is alone on the last level
                logit = z[:, -1]
                z = z[:, :-1]
                b = b - 1
            if b > a:
                act = torch.sigmoid(z)
                pre.append(act)
                if self.training and self.drop_p.max() > 0:
                    act = self._node_dropout(act, self.drop_p[a:b], generator)
                if delta is not None:
                    act = act + delta[:, a:b]
                post.append(act)
                parts.append(act)
        assert logit is not None
        if not return_all:
            return logit
        empty = x.new_zeros(x.shape[0], 0)
        return {
            "logit": logit,
            "activation": torch.cat(pre, 1) if pre else empty,
            "dropped": torch.cat(post, 1) if post else empty,
            "n_hidden": n_hidden,
        }


# ----------------------------------------------------------------------------------------------
# node weights


def node_sensitivity(model: KPNN, X: torch.Tensor, method: str = "autograd", eps: float = 1e-3) -> np.ndarray:
    """∂ŷ/∂a_v per cell (cells × hidden), in eval mode.

    ``autograd`` is exact and needs one backward pass (each cell's output depends only on its own
    perturbation in eval mode). ``central_difference`` is the KPNN paper's
    (ŷ(a_v + ε) - ŷ(a_v - ε)) / 2ε, one pair of forward passes per node.
    """
    was = model.training
    model.eval()
    try:
        nh = len(model.hidden)
        if method == "autograd":
            delta = torch.zeros(X.shape[0], nh, device=X.device, requires_grad=True)
            prob = torch.sigmoid(model(X, delta=delta))
            (grad,) = torch.autograd.grad(prob.sum(), delta)
            return grad.detach().cpu().numpy()
        if method == "central_difference":
            out = np.zeros((X.shape[0], nh))
            with torch.no_grad():
                for j in range(nh):
                    d = torch.zeros(X.shape[0], nh, device=X.device)
                    d[:, j] = eps
                    up = torch.sigmoid(model(X, delta=d))
                    down = torch.sigmoid(model(X, delta=-d))
                    out[:, j] = ((up - down) / (2 * eps)).cpu().numpy()
            return out
        raise ValueError(f"method must be 'autograd' or 'central_difference', got {method!r}")
    finally:
        model.train(was)
