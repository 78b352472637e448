"""Control inputs of the KPNN paper: the same network trained on data in which every gene is
predictive, the reference that node weights are corrected against (uneven connectivity).

Fortelny & Bock 2020 (Genome Biol 21:190), ``KPNN_Function.py --control`` (epigen/KPNN
``c0aaaced``, §3 of ``shared/reference/corneto_kpnn.md``) builds the control data from the real
counts, on the same network with one output:

* ``size = min(cells, 2 × minibatch)`` cells (even); the first half is class 1, the second class 0;
* every gene's total count over the real cells is its class-1 pool; the class-0 pool is that
  total × 0.5 or × 2, drawn per gene (so *every* gene is two-fold up or down between classes),
  truncated to an integer;
* control cell *i* takes real cell *i*'s library size ``L_i`` and draws each gene's count from
  ``Binomial(pool_g, L_i / Σ pool)``; then the usual normalisation (TPM, log1p) and training.

Node weights from such networks reflect only how much of the (uniform) input signal the network's
wiring routes through each node; :func:`~regnet_assets.science.network.importance.control_correction`
compares the real node weights with them.

Here, deliberately:

* the genes outside the network's inputs get their ×0.5/×2 factors too but are drawn as one
  pooled count per cell, exactly the sum of their binomials (one success probability: a sum of
  such binomials is binomial), so only the input genes are drawn one by one and memory stays
  cells × inputs on a 30,000-gene dataset; the cell's total (for the normalisation) is the sum
  over all genes, as in the paper;
* the cells are a seeded random subset of the cells the real KPNN used (the paper takes the first
  ``size`` barcodes), and the normalisation is the real inputs' (:func:`kpnn_expression`'s
  log1p CP10k), so control and real inputs are preprocessed alike;
* each control network is trained with the real networks' :class:`KPNNConfig` on one split that
  mirrors one CV fold (20 % held out, ``inner_valid_fraction`` of the rest for early stopping, as
  the paper's 80/10/10), and its node weights are read on the held-out cells;
* a few control networks (default 3; the paper ran 90) on ``2 × batch_size`` cells (the paper's
  rule with this product's batch size), so the correction adds seconds, not minutes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import sparse

from regnet_assets.science.common.normalise import log_cp10k
from regnet_assets.science.network.build import network_inputs, network_root
from regnet_assets.science.network.kpnn import node_sensitivity
from regnet_assets.science.network.kpnn_training import KPNNConfig, _auc, _threads, train_kpnn
from regnet_assets.science.network.pkn import EDGE_COLUMNS, GENE_SUFFIX

__all__ = [
    "N_CONTROLS",
    "control_counts",
    "control_datasets",
    "control_node_weights",
]

#: Control networks per KPNN network by default: enough for a mean and a spread, cheap to train.
N_CONTROLS = 3


def control_counts(
    counts: np.ndarray,
    library: np.ndarray,
    other_totals: np.ndarray,
    n_cells: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's control counts: (control cells × genes, each control cell's total, 0/1 labels).

    ``counts``: real cells × the genes drawn one by one (the network's inputs); ``library``: each
    real cell's total over every measured gene; ``other_totals``: the total count, over the real
    cells, of each measured gene *not* in ``counts``. The pools are totals over all real cells;
    ``n_cells`` of them (rounded down to even; all when fewer) are taken at random for their
    library sizes. The first half of the control cells is class 1 (pools = the totals), the
    second class 0 (pools = floor(total × 0.5 or × 2), a factor drawn per gene, the other genes
    included). Each count is ``Binomial(pool_g, L_i / Σ pools)``; the other genes are drawn as
    one pooled ``Binomial(Σ their pools, L_i / Σ pools)`` per cell (exactly their sum).
    """
    counts = np.asarray(counts, dtype=np.int64)
    library = np.asarray(library, dtype=np.int64)
    other = np.asarray(other_totals, dtype=np.int64)
    n = min(int(n_cells), counts.shape[0]) // 2 * 2
    if n < 2:
        raise ValueError(f"control inputs need at least 2 cells, got {min(int(n_cells), counts.shape[0])}")
    take = np.sort(rng.permutation(counts.shape[0])[:n])
    lib = library[take]
    pool1 = counts.sum(0)
    factor = rng.choice([0.5, 2.0], pool1.shape[0] + other.shape[0])
    pool2 = np.floor(pool1 * factor[: pool1.shape[0]]).astype(np.int64)
    other1 = int(other.sum())
    other2 = int(np.floor(other * factor[pool1.shape[0] :]).sum())
    half = n // 2
    out = np.zeros((n, counts.shape[1]), dtype=np.int64)
    total = np.zeros(n, dtype=np.int64)
    for rows, pool, pool_other in ((slice(0, half), pool1, other1), (slice(half, n), pool2, other2)):
        grand = int(pool.sum()) + pool_other
        p = np.clip(lib[rows] / max(grand, 1), 0.0, 1.0)
        out[rows] = rng.binomial(pool[None, :], p[:, None])
        total[rows] = out[rows].sum(1) + rng.binomial(pool_other, p)
    y = np.r_[np.ones(half), np.zeros(n - half)].astype(np.float32)
    return out, total, y


def control_datasets(
    rna,
    inputs: Sequence[str],
    cells: Sequence[str],
    n_datasets: int = N_CONTROLS,
    n_cells: int = 2 * KPNNConfig().batch_size,
    seed: int = 0,
) -> list[tuple[pd.DataFrame, np.ndarray]]:
    """``n_datasets`` control data sets (cells × ``inputs`` log1p CP10k, labels), each drawn
    afresh (its own fold directions and counts, as each ``--control`` run of the paper), from
    the raw counts of ``cells`` in ``rna`` (``rna.X`` holds counts, as :func:`kpnn_expression`
    reads them)."""
    if n_datasets < 0:
        raise ValueError(f"n_controls must be >= 0, got {n_datasets}")
    if n_datasets == 0:
        return []
    symbols = [i[: -len(GENE_SUFFIX)] if i.endswith(GENE_SUFFIX) else i for i in inputs]
    cols = rna.var_names.get_indexer(symbols)
    if (cols < 0).any():
        missing = [s for s, c in zip(symbols, cols) if c < 0]
        raise ValueError(f"inputs: {len(missing)} input gene(s) are not measured, e.g. {missing[:10]}")
    X = rna.X[rna.obs_names.get_indexer(list(cells))]
    library = np.asarray(X.sum(axis=1)).ravel()
    chosen = X[:, cols]
    chosen = chosen.toarray() if sparse.issparse(chosen) else np.asarray(chosen)
    if not np.allclose(chosen, np.round(chosen)) or (chosen < 0).any():
        raise ValueError("control inputs need raw counts in rna.X (non-negative integers)")
    chosen = np.round(chosen).astype(np.int64)
    other = np.ones(X.shape[1], dtype=bool)
    other[cols] = False
    other_totals = np.round(np.asarray(X.sum(axis=0)).ravel()[other]).astype(np.int64)
    out = []
    for r in range(int(n_datasets)):
        rng = np.random.default_rng([int(seed), r])
        counts, total, y = control_counts(chosen, np.round(library), other_totals, n_cells, rng)
        frame = pd.DataFrame(
            log_cp10k(counts, total, np.float32),
            index=[f"control{r}_{i}" for i in range(len(y))],
            columns=list(inputs),
        )
        out.append((frame, y))
    return out


def control_node_weights(
    datasets: Sequence[tuple[pd.DataFrame, np.ndarray]],
    edges: pd.DataFrame,
    config: KPNNConfig,
    device: str = "cpu",
) -> tuple[pd.DataFrame, dict]:
    """Train one KPNN per control data set on ``edges`` and read its node weights.

    Returns (rows ``control, node, node_weight, node_weight_abs, is_output`` — the mean and the
    mean absolute ∂ŷ/∂a over the control's held-out cells, as the real folds' — and
    ``{"control_networks", "control_roc_auc", "control_seconds"}``).
    """
    from sklearn.model_selection import train_test_split

    root, inputs = network_root(edges), network_inputs(edges)
    edges = edges[EDGE_COLUMNS]
    t0 = time.perf_counter()
    rows, aucs = [], []
    dev = torch.device(device)
    with _threads(config.num_threads):
        for r, (frame, y) in enumerate(datasets):
            X = frame.loc[:, inputs].to_numpy(np.float32)
            idx = np.arange(len(y))
            seed = config.seed + 1000 + r
            train, test = train_test_split(idx, test_size=0.2, stratify=y, random_state=seed)
            train, valid = train_test_split(
                train, test_size=config.inner_valid_fraction, stratify=y[train], random_state=seed
            )
            model, _hist, _best = train_kpnn(
                edges, inputs, root, X[train], y[train], X[valid], y[valid], config, device, seed
            )
            Xtest = torch.as_tensor(X[test], device=dev)
            with torch.no_grad():
                prob = torch.sigmoid(model(Xtest)).cpu().numpy()
            aucs.append(_auc(y[test], prob))
            sens = node_sensitivity(model, Xtest)
            rows.append(
                pd.DataFrame(
                    {
                        "control": r,
                        "node": model.neurons,
                        "node_weight": np.r_[sens.mean(0), np.nan],
                        "node_weight_abs": np.r_[np.abs(sens).mean(0), np.nan],
                        "is_output": [False] * len(model.hidden) + [True],
                    }
                )
            )
    weights = (
        pd.concat(rows, ignore_index=True)
        if rows
        else pd.DataFrame(columns=["control", "node", "node_weight", "node_weight_abs", "is_output"])
    )
    about = {
        "control_networks": len(rows),
        "control_roc_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "control_seconds": time.perf_counter() - t0,
    }
    return weights, about
