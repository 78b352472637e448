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


# ---------------------------------------------------------------- control inputs (KPNN --control)


def _weights(rows, key):
    """Per-run node-weight rows (node_weight as given, |.| as node_weight_abs) plus the output."""
    frame = pd.DataFrame(rows, columns=[key, "node", "node_weight"])
    frame["node_weight_abs"] = frame["node_weight"].abs()
    frame["is_output"] = False
    out = pd.DataFrame({key: sorted(set(frame[key])), "node": "R", "node_weight": np.nan})
    out = out.assign(node_weight_abs=np.nan, is_output=True)
    return pd.concat([frame, out], ignore_index=True).assign(bias=0.0)


def test_control_correction_equals_a_hand_computation():
    from regnet_assets.science.network.importance import importance_table, pathway_vs_decoy_auc

    # real folds: |mean gradient| A .2 .1, B .4 .3 -> min-max over all (.1 .. .4): A 1/3, 0; B 1, 2/3
    real = _weights([(0, "A", 0.2), (0, "B", -0.4), (1, "A", 0.1), (1, "B", 0.3)], "fold")
    # controls: A .05 .05, B .45 .35 -> min-max (.05 .. .45): A 0, 0; B 1, .75
    control = _weights([(0, "A", 0.05), (0, "B", 0.45), (1, "A", -0.05), (1, "B", -0.35)], "control")
    roles = {"A": "pathway_kinase", "B": "decoy_kinase"}
    imp = importance_table(real, "full", roles, control)
    mean = imp[imp["scope"] == "mean"].set_index("node")
    assert mean.loc["A", "node_weight_scaled"] == pytest.approx(1 / 6)
    assert mean.loc["B", "node_weight_scaled"] == pytest.approx(5 / 6)
    assert mean.loc["A", "control_weight_scaled"] == pytest.approx(0.0)
    assert mean.loc["B", "control_weight_scaled"] == pytest.approx(0.875)
    assert mean.loc["A", "node_weight_corrected"] == pytest.approx(1 / 6)
    assert mean.loc["B", "node_weight_corrected"] == pytest.approx(5 / 6 - 0.875)
    # Welch: A (1/6 - 0) / sqrt((1/18)/2 + 0/2) = 1; B (-1/24) / sqrt((1/18)/2 + (1/32)/2) = -0.2
    assert mean.loc["A", "node_weight_control_z"] == pytest.approx(1.0)
    assert mean.loc["B", "node_weight_control_z"] == pytest.approx(-0.2)
    assert (mean.loc["A", "rank"], mean.loc["B", "rank"]) == (1, 2)
    assert np.isnan(mean.loc["R", "rank"]) and mean.loc["R", "role"] == "root"
    # per fold: that fold's scaled weight minus the control mean (B: 1 - .875, 2/3 - .875)
    folds = imp[imp["scope"] == "fold"].set_index(["fold", "node"])
    assert folds.loc[(0, "A"), "node_weight_corrected"] == pytest.approx(1 / 3)
    assert folds.loc[(0, "B"), "node_weight_corrected"] == pytest.approx(0.125)
    assert folds.loc[(1, "A"), "node_weight_corrected"] == pytest.approx(0.0)
    assert folds.loc[(1, "B"), "node_weight_corrected"] == pytest.approx(2 / 3 - 0.875)
    assert (folds.loc[(0, "A"), "rank"], folds.loc[(1, "A"), "rank"]) == (1, 1)
    assert folds["node_weight_control_z"].isna().all()
    # the control rows are kept, scaled within the controls
    ctrl = imp[imp["scope"] == "control"].set_index(["fold", "node"])
    assert ctrl.loc[(1, "B"), "node_weight_scaled"] == pytest.approx(0.75) and ctrl["rank"].isna().all()
    # corrected, the true kinase is above the decoy; uncorrected it is below
    assert pathway_vs_decoy_auc(imp) == 1.0
    assert pathway_vs_decoy_auc(imp, "node_weight_scaled") == 0.0
    # without controls: the scaled weight is ranked and the corrected columns are NaN
    plain = importance_table(real, "full", roles)
    pm = plain[plain["scope"] == "mean"].set_index("node")
    assert pm["node_weight_corrected"].isna().all() and (pm.loc["B", "rank"], pm.loc["A", "rank"]) == (1, 2)
    assert np.isnan(pathway_vs_decoy_auc(plain))


def test_control_counts_make_every_gene_two_fold_and_keep_library_sizes():
    from regnet_assets.science.network.control import control_counts

    rng = np.random.default_rng(0)
    counts = rng.poisson([40, 80, 20, 60, 30], (3001, 5))
    other = rng.poisson(200, (3001, 10))
    library = counts.sum(1) + other.sum(1)
    out, total, y = control_counts(counts, library, other.sum(0), 2001, np.random.default_rng(1))
    assert out.shape == (2000, 5) and total.shape == (2000,)
    assert y[:1000].tolist() == [1] * 1000 and y[1000:].tolist() == [0] * 1000
    # both classes keep the real cells' library sizes (E[total] = L_i in either class)
    assert abs(total[:1000].mean() / library.mean() - 1) < 0.02
    assert abs(total[1000:].mean() / library.mean() - 1) < 0.02
    # every gene's share of the total differs between classes by x2 or x0.5, up to one common
    # factor (the class-0 pool is renormalised): the log2 ratios sit on two values 2 apart
    share = out / total[:, None]
    log2 = np.log2(share[1000:].mean(0) / share[:1000].mean(0))
    offset = np.sort(log2 - log2.min())
    assert np.all((np.abs(offset) < 0.1) | (np.abs(offset - 2) < 0.1)), log2
    # the same generator state gives the same control data
    again = control_counts(counts, library, other.sum(0), 2001, np.random.default_rng(1))
    assert np.array_equal(again[0], out) and np.array_equal(again[1], total)


def test_control_datasets_from_raw_counts():
    import anndata as ad

    from regnet_assets.science.network.control import control_datasets

    rng = np.random.default_rng(0)
    counts = rng.poisson(5, (100, 8)).astype(np.float32)
    rna = ad.AnnData(counts, obs=pd.DataFrame(index=[f"c{i}" for i in range(100)]))
    rna.var_names = [f"G{i}" for i in range(8)]
    inputs = ["G0_gene", "G3_gene", "G5_gene"]
    data = control_datasets(rna, inputs, list(rna.obs_names[:60]), n_datasets=2, n_cells=41, seed=3)
    assert len(data) == 2
    (x0, y0), (x1, y1) = data
    assert list(x0.columns) == inputs and x0.shape == (40, 3) and y0.sum() == 20
    assert np.isfinite(x0.to_numpy()).all() and (x0.to_numpy() >= 0).all()
    assert not np.array_equal(x0.to_numpy(), x1.to_numpy())  # each control is drawn afresh
    assert control_datasets(rna, inputs, list(rna.obs_names), n_datasets=0) == []
    rna.X = counts + 0.5
    with pytest.raises(ValueError, match="raw counts"):
        control_datasets(rna, inputs, list(rna.obs_names))
    with pytest.raises(ValueError, match="not measured"):
        control_datasets(rna, ["NOPE_gene"], list(rna.obs_names))


def test_corrected_importance_ranks_the_node_with_informative_inputs_first():
    """A reads 2 genes that carry the label; B and C read 8 uninformative genes each (more
    connectivity). Trained on the data and on control inputs, the corrected importance puts A
    first by a margin, and above zero while the others fall below their controls."""
    import anndata as ad

    from regnet_assets.science.network.cells import kpnn_expression
    from regnet_assets.science.network.control import control_datasets, control_node_weights
    from regnet_assets.science.network.importance import importance_table

    rng = np.random.default_rng(0)
    n = 400
    names = {"A": ["a0", "a1"], "B": [f"b{i}" for i in range(8)], "C": [f"c{i}" for i in range(8)]}
    genes = [g for gs in names.values() for g in gs] + [f"o{i}" for i in range(10)]
    y = rng.integers(0, 2, n)
    mu = np.full((n, len(genes)), 5.0)
    mu[:, :2] *= np.where(y[:, None] == 1, 3.0, 1.0)
    counts = rng.poisson(mu * rng.lognormal(0, 0.2, (n, 1))).astype(np.float32)
    rna = ad.AnnData(counts, obs=pd.DataFrame(index=[f"cell{i}" for i in range(n)]))
    rna.var_names = genes
    edges = _e([(f"{g}_gene", node) for node, gs in names.items() for g in gs] + [(v, "R") for v in names])
    inputs = [f"{g}_gene" for gs in names.values() for g in gs]
    X = kpnn_expression(rna, inputs)
    cfg = KPNNConfig(lr=1e-2, batch_size=64, epochs=30, patience=5, dropout=0.2, num_threads=1)
    real = cross_validate_kpnn(X, y, edges, inputs, "R", cfg, n_folds=3)
    assert real.mean_metrics["roc_auc"] > 0.95
    data = control_datasets(rna, inputs, list(rna.obs_names), n_datasets=3, n_cells=200, seed=0)
    control, about = control_node_weights(data, edges.assign(sign=1), cfg)
    assert about["control_networks"] == 3 and about["control_roc_auc"] > 0.9  # every gene predicts
    assert set(control["control"]) == {0, 1, 2}
    imp = importance_table(real.node_weights, "full", {}, control)
    mean = imp[(imp["scope"] == "mean") & ~imp["is_output"]].set_index("node")
    assert mean["rank"].idxmin() == "A"
    corrected = mean["node_weight_corrected"]
    assert corrected["A"] > 0 > max(corrected["B"], corrected["C"])
    assert corrected["A"] - max(corrected["B"], corrected["C"]) > 0.1
