"""KPNN: DAG-only wiring, input batch norm, regularisation, node dropout, node weights, and
cross-validation on a planted synthetic signal (full and pruned network)."""

import numpy as np
import pandas as pd
import pytest
import torch

from regnet_assets.science.network.kpnn import KPNN, node_sensitivity
from regnet_assets.science.network.kpnn_training import KPNN_REFERENCE, KPNNConfig, cross_validate_kpnn
from regnet_assets.science.network.pruning import prune_to_minimal_dag


def _e(pairs):
    return pd.DataFrame({"source": [a for a, _ in pairs], "target": [b for _, b in pairs]})


# g1..g4 -> H1, H2 -> A, B -> R (H1 feeds both A and B)
SMALL = _e(
    [
        ("g1", "H1"),
        ("g2", "H1"),
        ("g2", "H2"),
        ("g3", "H2"),
        ("g4", "B"),
        ("H1", "A"),
        ("H2", "A"),
        ("H1", "B"),
        ("A", "R"),
        ("B", "R"),
    ]
)
SMALL_IN = ["g1", "g2", "g3", "g4"]


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_config_validation_names_the_field():
    for field, value in [
        ("lr", 0.0),
        ("batch_size", 1),
        ("dropout", 1.0),
        ("patience", 0),
        ("inner_valid_fraction", 0.0),
        ("weight_l2", -1.0),
        ("dropout_rule", "x"),
        ("representation", "csr"),
        ("num_threads", 0),
        ("epochs", 0),
    ]:
        with pytest.raises(ValueError, match=f"KPNNConfig.{field}"):
            KPNNConfig(**{field: value})
    cfg = KPNN_REFERENCE
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.patience, cfg.inner_valid_fraction) == (
        1e-3,
        64,
        200,
        10,
        0.1,
    )


def test_network_errors():
    with pytest.raises(ValueError, match="cycle"):
        KPNN(_e([("g", "A"), ("A", "B"), ("B", "A"), ("B", "R")]), ["g"], "R")
    with pytest.raises(ValueError, match="no incoming"):
        KPNN(_e([("g", "A"), ("A", "g"), ("A", "R")]), ["g"], "R")
    with pytest.raises(ValueError, match="no inputs"):
        KPNN(_e([("g", "A"), ("Z", "A"), ("A", "R")]), ["g"], "R")


def test_parameter_count_and_structure():
    m = KPNN(SMALL, SMALL_IN, "R")
    assert m.neurons[-1] == "R" and set(m.hidden) == {"H1", "H2", "A", "B"}
    assert m.n_params == len(SMALL) + 5 == sum(p.numel() for p in m.parameters())


def test_absent_connection_has_no_effect():
    torch.manual_seed(0)
    dense = KPNN(SMALL, SMALL_IN, "R", batch_norm_input=False, representation="dense")
    x = torch.rand(16, 4)
    # the level of A and B sees inputs + H1, H2; g1 -> A is not an edge of the DAG
    li = next(i for i, (a, b) in enumerate(dense._level_slices) if dense.neurons[a] in {"A", "B"})
    a0 = dense._level_slices[li][0]
    row = dense.neurons[a0:].index("A")
    col = dense.inputs.index("g1")
    assert getattr(dense, f"mask_{li}")[row, col] == 0
    out = dense(x)
    out.sum().backward()
    assert dense.weights[li].grad[row, col].item() == 0.0  # exactly zero, not just small
    with torch.no_grad():
        dense.weights[li][row, col] = 123.0
    assert torch.equal(dense(x), out.detach())
    # the sparse edge-list network computes the same function from the same edge weights
    sparse = KPNN(SMALL, SMALL_IN, "R", batch_norm_input=False, representation="sparse")
    sparse.set_edge_weights(dense.edge_weights().detach())
    with torch.no_grad():
        sparse.bias.copy_(torch.randn(5))
        dense.bias.copy_(sparse.bias)
    assert torch.allclose(sparse(x), dense(x), atol=1e-6)
    # and in the sparse network an input outside a node's ancestry has zero influence on it
    xg = x.clone().requires_grad_(True)
    act = sparse(xg, return_all=True)["activation"]
    (g,) = torch.autograd.grad(act[:, sparse.hidden.index("H1")].sum(), xg)
    assert torch.all(g[:, [2, 3]] == 0) and torch.all(g[:, [0, 1]] != 0)


def test_input_batch_norm_really_runs():
    m = KPNN(SMALL, SMALL_IN, "R", dropout=0.0, batch_norm_input=True).train()
    x = torch.rand(32, 4) * 3
    assert torch.all(m.bn.running_mean == 0)
    out = m(x)
    assert torch.all(m.bn.running_mean != 0)  # statistics were updated
    # per-gene affine rescaling is normalised away in training mode
    assert torch.allclose(m(3.0 * x + 7.0), out, atol=1e-4)
    plain = KPNN(SMALL, SMALL_IN, "R", dropout=0.0, batch_norm_input=False).train()
    assert not torch.allclose(plain(3.0 * x + 7.0), plain(x), atol=1e-3)
    # eval mode uses the running statistics, not the batch
    m.eval()
    assert not torch.allclose(m(x[:4]), m(3.0 * x[:4] + 7.0), atol=1e-3)


@pytest.mark.parametrize("representation", ["sparse", "dense"])
def test_regularisation_hits_the_right_tensors(representation):
    m = KPNN(SMALL, SMALL_IN, "R", representation=representation)
    with torch.no_grad():
        m.bias.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0, 3.0]))
    w = m.edge_weights().detach()
    b = m.bias.detach()
    assert m.penalty(weight_l1=0.1).item() == pytest.approx(0.1 * w.abs().sum().item(), rel=1e-5)
    assert m.penalty(weight_l2=0.2).item() == pytest.approx(0.2 * (w**2).sum().item(), rel=1e-5)
    assert m.penalty(bias_l1=0.3).item() == pytest.approx(0.3 * b.abs().sum().item(), rel=1e-5)
    assert m.penalty(bias_l2=0.4).item() == pytest.approx(0.4 * (b**2).sum().item(), rel=1e-5)
    assert m.penalty().item() == 0.0

    m.zero_grad()
    m.penalty(weight_l2=1.0).backward()
    assert m.bias.grad is None or torch.all(m.bias.grad == 0)  # weight penalty leaves biases alone
    m.zero_grad()
    m.penalty(bias_l2=1.0).backward()
    assert torch.allclose(m.bias.grad, 2 * b)
    wgrads = [m.weight.grad] if representation == "sparse" else [W.grad for W in m.weights]
    assert all(g is None or torch.all(g == 0) for g in wgrads)  # bias penalty leaves weights alone
    if representation == "dense":  # masked-out entries never enter the penalty
        with torch.no_grad():
            for li, W in enumerate(m.weights):
                W[getattr(m, f"mask_{li}") == 0] = 99.0
        assert m.penalty(weight_l1=1.0).item() == pytest.approx(w.abs().sum().item(), rel=1e-5)


def test_node_dropout_drops_whole_nodes():
    torch.manual_seed(1)
    p = 0.3
    m = KPNN(SMALL, SMALL_IN, "R", dropout=p, dropout_rule="uniform", batch_norm_input=False).train()
    with torch.no_grad():  # A and B then read H1 only (g4->B and H2->A weights 0, biases 0)
        w = m.edge_weights().detach().clone()
        for k, (s, t) in enumerate(zip(m.edges["source"], m.edges["target"])):
            if (s, t) in {("H2", "A"), ("g4", "B")}:
                w[k] = 0.0
        m.set_edge_weights(w)
    x = torch.rand(4000, 4)
    out = m(x, return_all=True, generator=torch.Generator().manual_seed(0))
    h = m.hidden.index("H1")
    dropped = out["dropped"][:, h] == 0
    assert abs(dropped.float().mean().item() - p) < 0.03
    # survivors are rescaled by 1 / (1 - p)
    kept = ~dropped
    assert torch.allclose(out["dropped"][kept, h], out["activation"][kept, h] / (1 - p), atol=1e-6)
    # one mask per (cell, node): when H1 is dropped, BOTH consumers see nothing from it (A, B = 0.5)
    a, b = m.hidden.index("A"), m.hidden.index("B")
    assert torch.allclose(out["activation"][dropped, a], torch.full((int(dropped.sum()),), 0.5))
    assert torch.allclose(out["activation"][dropped, b], torch.full((int(dropped.sum()),), 0.5))
    assert not torch.any(torch.isclose(out["activation"][kept, a], torch.tensor(0.5)))
    # no dropout at evaluation
    m.eval()
    assert not torch.any(m(x, return_all=True)["dropped"] == 0)


def test_kpnn_dropout_rule_protects_single_input_neurons():
    # H1 is the only input of C: dropping it would silence C, so the KPNN rule never drops it
    e = _e(
        [
            ("g1", "H1"),
            ("g2", "H2"),
            ("g3", "H2"),
            ("g4", "H3"),
            ("H1", "C"),
            ("C", "R"),
            ("H2", "D"),
            ("H3", "D"),
            ("D", "R"),
            ("g1", "E"),
            ("g2", "E"),
            ("g3", "E"),
            ("g4", "E"),
            ("E", "R"),
        ]
    )
    m = KPNN(e, ["g1", "g2", "g3", "g4"], "R", dropout=0.5, dropout_rule="kpnn")
    p = dict(zip(m.hidden, m.drop_p.tolist()))
    assert p["H1"] == 0.0 and p["C"] == pytest.approx(0.3)  # R has 3 inputs (C, D, E)
    assert p["H2"] == pytest.approx(0.1) and p["H3"] == pytest.approx(0.1)  # D has 2 inputs
    uni = KPNN(e, ["g1", "g2", "g3", "g4"], "R", dropout=0.5, dropout_rule="uniform")
    assert torch.all(uni.drop_p == 0.5)


def test_node_sensitivity_autograd_matches_central_difference():
    torch.manual_seed(2)
    m = KPNN(SMALL, SMALL_IN, "R", dropout=0.2)
    m.train()
    m(torch.rand(64, 4))  # populate BN running stats
    x = torch.rand(20, 4)
    ag = node_sensitivity(m, x, "autograd")
    cd = node_sensitivity(m, x, "central_difference", eps=1e-3)
    assert ag.shape == (20, 4)
    np.testing.assert_allclose(ag, cd, atol=1e-4)
    assert m.training  # mode restored


# ---------------------------------------------------------------- cross-validation


def _planted(seed=0, n=300, shift=1.2):
    """genes -> 12 TFs -> 6 signalling nodes (S0 planted, S1..S5 decoys) -> R, plus a redundant
    gene -> TF edge per gene so that pruning has something to remove. Only S0's genes carry y."""
    rng = np.random.default_rng(seed)
    pairs, tfs = [], []
    for i in range(6):
        for j in range(2):
            tf = f"TF{i}_{j}"
            tfs.append(tf)
            pairs.append((tf, f"S{i}"))
            pairs += [(f"G{i}_{j}_{k}_gene", tf) for k in range(5)]
        pairs.append((f"S{i}", "R"))
    genes = sorted({a for a, _ in pairs if a.endswith("_gene")})
    pairs += [(g, tfs[rng.integers(len(tfs))]) for g in genes]
    edges = _e(pairs).drop_duplicates(ignore_index=True)
    y = rng.integers(0, 2, n)
    X = rng.normal(0, 1, (n, len(genes)))
    planted = [i for i, g in enumerate(genes) if g.startswith("G0_")]
    X[:, planted] += shift * y[:, None]
    X = np.log1p(np.exp(X))  # positive, like log1p expression
    return edges, genes, X, y


FAST = dict(lr=1e-2, batch_size=64, epochs=60, patience=8, dropout=0.1, num_threads=1)


def test_planted_signal_full_and_pruned():
    edges, genes, X, y = _planted()
    cfg = KPNNConfig(**FAST)
    full = cross_validate_kpnn(X, y, edges, genes, "R", cfg, n_folds=5)
    assert full.mean_metrics["roc_auc"] > 0.85
    assert (full.metrics["roc_auc"] > 0.7).all()
    # the planted signalling node outranks every decoy in node weight
    nw = full.node_weights.groupby("node")["node_weight_abs"].mean()
    decoys = nw[[f"S{i}" for i in range(1, 6)]]
    assert nw["S0"] > decoys.max()

    pruned = prune_to_minimal_dag(edges, genes, "R").edges
    assert len(pruned) < len(edges)
    res = cross_validate_kpnn(X, y, pruned, genes, "R", cfg, n_folds=5)
    assert res.mean_metrics["roc_auc"] > 0.8
    assert (res.metrics["n_params"] < full.metrics["n_params"]).all()

    # result shapes
    n = len(y)
    assert list(full.history.columns) == ["fold", "epoch", "train_loss", "valid_loss", "valid_auc"]
    assert set(full.history["fold"]) == set(range(5))
    m = full.metrics
    assert (m["n_train"] + m["n_valid"] + m["n_test"] == n).all() and m["n_test"].sum() == n
    assert ((m["n_valid"] / (m["n_train"] + m["n_valid"])).round(2) == 0.1).all()
    assert full.activations.shape == (n, 1 + 18)  # fold + 12 TFs + 6 signalling nodes
    assert list(full.activations.index) == list(range(n))
    assert full.predictions["y_true"].tolist() == y.tolist()
    assert set(full.node_weights.columns) >= {"fold", "node", "bias", "node_weight", "node_weight_abs"}


def test_early_stopping_never_sees_the_test_fold():
    """Perturbing fold 0's test cells must leave fold 0's model exactly unchanged."""
    from sklearn.model_selection import StratifiedKFold

    edges, genes, X, y = _planted(n=120)
    cfg = KPNNConfig(lr=1e-2, batch_size=64, epochs=8, patience=3, dropout=0.1, num_threads=1, seed=7)
    test0 = next(StratifiedKFold(3, shuffle=True, random_state=7).split(X, y))[1]
    X2 = X.copy()
    X2[test0] = np.random.default_rng(1).normal(5, 3, (len(test0), X.shape[1]))
    a = cross_validate_kpnn(X, y, edges, genes, "R", cfg, n_folds=3)
    b = cross_validate_kpnn(X2, y, edges, genes, "R", cfg, n_folds=3)
    h0a, h0b = a.history[a.history.fold == 0], b.history[b.history.fold == 0]
    pd.testing.assert_frame_equal(h0a.reset_index(drop=True), h0b.reset_index(drop=True))
    w0a, w0b = a.node_weights[a.node_weights.fold == 0], b.node_weights[b.node_weights.fold == 0]
    np.testing.assert_array_equal(w0a["bias"].to_numpy(), w0b["bias"].to_numpy())
    # whereas folds that train on those cells do change
    assert not np.array_equal(
        a.node_weights.loc[a.node_weights.fold == 1, "bias"],
        b.node_weights.loc[b.node_weights.fold == 1, "bias"],
    )


def test_cross_validate_input_errors():
    edges, genes, X, y = _planted(n=60)
    with pytest.raises(ValueError, match="binary"):
        cross_validate_kpnn(X, np.full(len(y), 2), edges, genes, "R", KPNNConfig(**FAST))
    with pytest.raises(ValueError, match="inputs"):
        cross_validate_kpnn(X[:, :5], y, edges, genes, "R", KPNNConfig(**FAST))
    df = pd.DataFrame(X, columns=[g[: -len("_gene")] for g in genes])  # gene symbols are accepted
    with pytest.raises(ValueError, match="lacks 1"):
        cross_validate_kpnn(df.drop(columns=df.columns[0]), y, edges, genes, "R", KPNNConfig(**FAST))
