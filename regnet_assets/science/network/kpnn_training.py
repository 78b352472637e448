"""Training and stratified cross-validation of a :class:`~regnet_assets.science.network.kpnn.KPNN`.

Adam + BCE with early stopping on an inner validation split of the training folds, never the test
fold; per fold the held-out metrics, node weights, activations and predictions.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from regnet_assets.science.network.build import network_inputs, network_root
from regnet_assets.science.network.kpnn import KPNN, node_sensitivity
from regnet_assets.science.network.pkn import EDGE_COLUMNS

__all__ = [
    "KPNNConfig",
    "KPNN_REFERENCE",
    "KPNNCVResult",
    "cross_validate_kpnn",
    "cross_validate_network",
    "train_kpnn",
]


# ----------------------------------------------------------------------------------------------
# configuration


@dataclass
class KPNNConfig:
    """Training settings; ranges are checked on creation (ValueError naming the field).

    The defaults are the product's (``make run``): tuned so the network group finishes in about a
    minute on 2 CPU cores (lr 0.01 and batch 128 instead of the tutorial's 0.001/64, at most 100
    epochs, one torch thread). :data:`KPNN_REFERENCE` holds the KPNN paper/tutorial values.
    """

    lr: float = 1e-2
    batch_size: int = 128
    epochs: int = 100  # at most; early stopping on an inner validation split
    patience: int = 10
    dropout: float = 0.2  # hidden-node dropout probability
    input_dropout: float = 0.0  # gene (input) dropout probability
    dropout_rule: str = "kpnn"  # "kpnn" (protect nodes feeding 1-3-input neurons) or "uniform"
    batch_norm_input: bool = True
    weight_l1: float = 0.0
    weight_l2: float = 0.0
    bias_l1: float = 0.0
    bias_l2: float = 0.0
    balance_classes: bool = False  # class-balanced sample weights (the KPNN paper uses them)
    inner_valid_fraction: float = 0.1
    seed: int = 42
    representation: str = "sparse"  # "sparse" edge list, or "dense" masked weight matrices
    # torch CPU threads during training (restored afterwards); None leaves torch's setting. Small
    # KPNN steps are latency-bound: on a busy machine 1 thread is often several times faster.
    num_threads: int | None = 1

    def __post_init__(self):
        checks = {
            "lr": self.lr > 0 and math.isfinite(self.lr),
            "batch_size": isinstance(self.batch_size, (int, np.integer)) and self.batch_size >= 2,
            "epochs": isinstance(self.epochs, (int, np.integer)) and self.epochs >= 1,
            "patience": isinstance(self.patience, (int, np.integer)) and self.patience >= 1,
            "dropout": 0.0 <= self.dropout < 1.0,
            "input_dropout": 0.0 <= self.input_dropout < 1.0,
            "dropout_rule": self.dropout_rule in {"kpnn", "uniform"},
            "weight_l1": self.weight_l1 >= 0,
            "weight_l2": self.weight_l2 >= 0,
            "bias_l1": self.bias_l1 >= 0,
            "bias_l2": self.bias_l2 >= 0,
            "inner_valid_fraction": 0.0 < self.inner_valid_fraction < 0.5,
            "seed": isinstance(self.seed, (int, np.integer)) and self.seed >= 0,
            "representation": self.representation in {"sparse", "dense"},
            "num_threads": self.num_threads is None
            or (isinstance(self.num_threads, (int, np.integer)) and self.num_threads >= 1),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"KPNNConfig.{name}: invalid value {getattr(self, name)!r}")


#: The KPNN paper / CORNETO tutorial settings (learning rate, batch size, epochs), for comparisons.
KPNN_REFERENCE = KPNNConfig(lr=1e-3, batch_size=64, epochs=200)


# ----------------------------------------------------------------------------------------------
# training


@contextmanager
def _threads(n: int | None):
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _batches(n: int, batch_size: int, generator: torch.Generator):
    perm = torch.randperm(n, generator=generator)
    chunks = list(torch.split(perm, batch_size))
    if len(chunks) > 1 and len(chunks[-1]) < 2:  # BatchNorm needs >= 2 cells per batch
        chunks[-2] = torch.cat([chunks[-2], chunks[-1]])
        chunks.pop()
    return chunks


def _bce(logit, y, w=None):
    return nn.functional.binary_cross_entropy_with_logits(logit, y, weight=w)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def train_kpnn(
    edges: pd.DataFrame,
    inputs: Sequence[str],
    root: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    config: KPNNConfig,
    device: str = "cpu",
    seed: int | None = None,
) -> tuple[KPNN, pd.DataFrame, int]:
    """Fit one KPNN with Adam + BCE, early stopping on (X_valid, y_valid) with best-weight restore.

    Returns the model (best epoch's weights), its history and the best epoch.
    """
    with _threads(config.num_threads):
        return _train(edges, inputs, root, X_train, y_train, X_valid, y_valid, config, device, seed)


def _train(edges, inputs, root, X_train, y_train, X_valid, y_valid, config, device, seed):
    dev = torch.device(device)
    seed = config.seed if seed is None else seed
    gen_init = torch.Generator().manual_seed(seed)
    model = KPNN(
        edges,
        inputs,
        root,
        dropout=config.dropout,
        input_dropout=config.input_dropout,
        dropout_rule=config.dropout_rule,
        batch_norm_input=config.batch_norm_input,
        representation=config.representation,
        generator=gen_init,
    ).to(dev)
    gen = torch.Generator(device=dev).manual_seed(seed + 1)
    gen_cpu = torch.Generator().manual_seed(seed + 2)
    Xt = torch.as_tensor(X_train, dtype=torch.float32, device=dev)
    yt = torch.as_tensor(y_train, dtype=torch.float32, device=dev)
    Xv = torch.as_tensor(X_valid, dtype=torch.float32, device=dev)
    yv = torch.as_tensor(y_valid, dtype=torch.float32, device=dev)
    if config.balance_classes:
        pos = float(yt.mean())
        w_all = torch.where(yt > 0.5, 0.5 / max(pos, 1e-12), 0.5 / max(1 - pos, 1e-12))
    else:
        w_all = None
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    reg = dict(
        weight_l1=config.weight_l1, weight_l2=config.weight_l2, bias_l1=config.bias_l1, bias_l2=config.bias_l2
    )
    best_loss, best_state, best_epoch, wait = math.inf, None, 0, 0
    rows = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        total, count = 0.0, 0
        for idx in _batches(len(Xt), config.batch_size, gen_cpu):
            idx = idx.to(dev)
            logit = model(Xt[idx], generator=gen)
            loss = _bce(logit, yt[idx], None if w_all is None else w_all[idx])
            opt.zero_grad(set_to_none=True)
            (loss + model.penalty(**reg)).backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        model.eval()
        with torch.no_grad():
            lv = model(Xv)
            vloss = float(_bce(lv, yv))
            vauc = _auc(y_valid, torch.sigmoid(lv).cpu().numpy())
        rows.append({"epoch": epoch, "train_loss": total / count, "valid_loss": vloss, "valid_auc": vauc})
        if vloss < best_loss:
            best_loss, best_epoch, wait = vloss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            wait += 1
            if wait >= config.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return model, pd.DataFrame(rows), best_epoch


@dataclass
class KPNNCVResult:
    """Per-fold metrics, training history, node weights/biases, test activations and predictions."""

    metrics: pd.DataFrame  # fold, accuracy, precision, recall, f1, roc_auc, n_params, best_epoch, ...
    history: pd.DataFrame  # fold, epoch, train_loss, valid_loss, valid_auc
    node_weights: pd.DataFrame  # fold, node, bias, node_weight, node_weight_abs, is_output
    activations: pd.DataFrame  # cells × hidden nodes (test-fold activations) + "fold"
    predictions: pd.DataFrame  # cell, fold, y_true, y_prob
    config: dict = field(default_factory=dict)

    @property
    def mean_metrics(self) -> dict:
        cols = ["accuracy", "precision", "recall", "f1", "roc_auc"]
        return {c: float(self.metrics[c].mean()) for c in cols}


def _as_matrix(X, inputs: Sequence[str]):
    if isinstance(X, pd.DataFrame):
        cols = list(X.columns)
        if set(inputs) <= set(cols):
            return X.loc[:, list(inputs)].to_numpy(dtype=np.float32), X.index
        from regnet_assets.science.network.pkn import GENE_SUFFIX

        renamed = [f"{c}{GENE_SUFFIX}" for c in cols]
        if set(inputs) <= set(renamed):
            Xr = X.set_axis(renamed, axis=1)
            return Xr.loc[:, list(inputs)].to_numpy(dtype=np.float32), X.index
        missing = sorted(set(inputs) - set(cols) - set(renamed))
        raise ValueError(f"X lacks {len(missing)} input column(s), e.g. {missing[:5]}")
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != len(inputs):
        raise ValueError(f"X must be cells × {len(inputs)} inputs (in `inputs` order), got shape {X.shape}")
    return X, pd.RangeIndex(X.shape[0])


def cross_validate_kpnn(
    X,
    y,
    edges: pd.DataFrame,
    inputs: Sequence[str],
    root: str,
    config: KPNNConfig | None = None,
    n_folds: int = 5,
    device: str = "cpu",
) -> KPNNCVResult:
    """Stratified k-fold CV of a KPNN; early stopping on an inner split of the training folds.

    ``X``: cells × inputs (log1p-normalised expression; a DataFrame with input names or gene
    symbols as columns, or an array in ``inputs`` order). ``y``: binary condition (0/1).
    """
    config = config or KPNNConfig()
    inputs = list(dict.fromkeys(inputs))
    Xm, cell_index = _as_matrix(X, inputs)
    if not np.isfinite(Xm).all():
        raise ValueError("X contains NaN or infinite values")
    y = np.asarray(y).ravel()
    if len(y) != len(Xm):
        raise ValueError(f"y has {len(y)} labels for {len(Xm)} cells")
    classes = set(np.unique(y).tolist())
    if not classes <= {0, 1} or len(classes) != 2:
        raise ValueError(f"y must be binary 0/1 with both classes present, got {sorted(classes)}")
    y = y.astype(np.float32)
    if not isinstance(n_folds, int) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if min(np.bincount(y.astype(int))) < n_folds:
        raise ValueError(f"each class needs at least n_folds={n_folds} cells")

    with _threads(config.num_threads):
        return _cross_validate(Xm, cell_index, y, edges, inputs, root, config, n_folds, device)


def cross_validate_network(
    X: pd.DataFrame, y, edges: pd.DataFrame, config: KPNNConfig, n_folds: int = 5, device: str = "cpu"
) -> tuple[KPNNCVResult, dict]:
    """:func:`cross_validate_kpnn` on a finalised network (its root and inputs read off the edges),
    with its sizes and wall seconds: the per-network columns of the KPNN summary."""
    root, inputs = network_root(edges), network_inputs(edges)
    t0 = time.perf_counter()
    result = cross_validate_kpnn(
        X, np.asarray(y), edges[EDGE_COLUMNS], inputs, root, config, n_folds=n_folds, device=device
    )
    about = {
        "n_edges": len(edges),
        "n_inputs": len(inputs),
        "n_hidden": len(set(edges["target"])) - 1,
        "n_cells": len(y),
        "seconds": time.perf_counter() - t0,
        "device": device,
    }
    return result, about


def _cross_validate(Xm, cell_index, y, edges, inputs, root, config, n_folds, device) -> KPNNCVResult:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
    from sklearn.model_selection import StratifiedKFold, train_test_split

    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=config.seed)
    metrics, histories, weights, acts, preds, order = [], [], [], [], [], []
    for fold, (train_idx, test_idx) in enumerate(skf.split(Xm, y)):
        tr_idx, va_idx = train_test_split(
            train_idx,
            test_size=config.inner_valid_fraction,
            stratify=y[train_idx],
            random_state=config.seed + fold,
        )
        model, hist, best_epoch = _train(
            edges,
            inputs,
            root,
            Xm[tr_idx],
            y[tr_idx],
            Xm[va_idx],
            y[va_idx],
            config,
            device,
            config.seed + fold,
        )
        hist.insert(0, "fold", fold)
        histories.append(hist)

        dev = torch.device(device)
        Xtest = torch.as_tensor(Xm[test_idx], dtype=torch.float32, device=dev)
        with torch.no_grad():
            out = model(Xtest, return_all=True)
        prob = torch.sigmoid(out["logit"]).cpu().numpy()
        y_test = y[test_idx]
        y_hat = (prob > 0.5).astype(int)
        metrics.append(
            {
                "fold": fold,
                "accuracy": accuracy_score(y_test, y_hat),
                "precision": precision_score(y_test, y_hat, zero_division=0),
                "recall": recall_score(y_test, y_hat, zero_division=0),
                "f1": f1_score(y_test, y_hat, zero_division=0),
                "roc_auc": _auc(y_test, prob),
                "n_params": model.n_params,
                "best_epoch": best_epoch,
                "epochs_run": int(hist["epoch"].max()),
                "n_train": len(tr_idx),
                "n_valid": len(va_idx),
                "n_test": len(test_idx),
            }
        )
        sens = node_sensitivity(model, Xtest)
        bias = model.bias.detach().cpu().numpy()
        nw = pd.DataFrame(
            {
                "fold": fold,
                "node": model.neurons,
                "bias": bias,
                "node_weight": np.r_[sens.mean(0), np.nan],
                "node_weight_abs": np.r_[np.abs(sens).mean(0), np.nan],
                "is_output": [False] * len(model.hidden) + [True],
            }
        )
        weights.append(nw)
        act = pd.DataFrame(out["activation"].cpu().numpy(), columns=model.hidden, index=cell_index[test_idx])
        act.insert(0, "fold", fold)
        acts.append(act)
        order.append(test_idx)
        preds.append(
            pd.DataFrame(
                {"cell": cell_index[test_idx], "fold": fold, "y_true": y_test.astype(int), "y_prob": prob}
            )
        )

    back = np.argsort(np.concatenate(order), kind="stable")  # rows back in the order of X
    return KPNNCVResult(
        metrics=pd.DataFrame(metrics),
        history=pd.concat(histories, ignore_index=True),
        node_weights=pd.concat(weights, ignore_index=True),
        activations=pd.concat(acts).iloc[back],
        predictions=pd.concat(preds, ignore_index=True).iloc[back].reset_index(drop=True),
        config=asdict(config),
    )
