"""The batched per-gene module: shapes, padding invariance, and equality with plain torch.nn."""

import zlib

import numpy as np
import pytest
import torch

from regnet_assets.science.models.module import (
    BatchedGeneModel,
    ModelSpec,
    count_gene_params,
    gene_seed,
    init_gene_state,
    poisson_nll,
    sequence_onehot,
)
from regnet_assets.science.models.reference_module import ReferenceGeneModel

SMALL = dict(n_covariates=2, seq_len=32, n_filters=(8, 8, 4))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny ops on a shared 2-core box are far faster single-threaded
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def make_genes(spec, n_peaks, n_tfs, b, seed=0):
    """Per-gene unpadded inputs and their padded, stacked versions."""
    rng = torch.Generator().manual_seed(seed)
    genes = []
    for i, (p, t) in enumerate(zip(n_peaks, n_tfs)):
        genes.append(
            dict(
                state=init_gene_state(spec, p, t, torch.Generator().manual_seed(100 + i)),
                seq=sequence_onehot(torch.randint(0, 5, (p, spec.seq_len), generator=rng))
                if spec.use_sequence
                else None,
                acc=torch.rand(b, p, generator=rng) * 3,
                dist=torch.rand(p, generator=rng),
                tf=torch.rand(b, t, generator=rng) * 2,
            )
        )
    cov = torch.randn(b, spec.n_covariates, generator=rng)
    return genes, cov


def stack(spec, genes, cov, p_max=None, t_max=None):
    g, b = len(genes), cov.shape[0]
    p_max = p_max or max(x["acc"].shape[1] for x in genes)
    t_max = t_max or max(x["tf"].shape[1] for x in genes)
    seq = torch.zeros(g, p_max, spec.seq_len, 4) if spec.use_sequence else None
    acc, dist, tf = torch.zeros(g, b, p_max), torch.zeros(g, p_max), torch.zeros(g, b, t_max)
    for i, x in enumerate(genes):
        p, t = x["acc"].shape[1], x["tf"].shape[1]
        if seq is not None:
            seq[i, :p] = x["seq"]
        acc[i, :, :p], dist[i, :p], tf[i, :, :t] = x["acc"], x["dist"], x["tf"]
    return seq, acc, dist, tf, cov.expand(g, *cov.shape)


def batched_model(spec, genes, n_peaks=None, n_tfs=None):
    n_peaks = n_peaks or [x["acc"].shape[1] for x in genes]
    n_tfs = n_tfs or [x["tf"].shape[1] for x in genes]
    model = BatchedGeneModel(spec, n_peaks, n_tfs)
    for i, x in enumerate(genes):
        model.load_gene_state(i, x["state"])
    return model


def test_shapes_and_parameter_count():
    spec = ModelSpec(n_covariates=2, seq_len=256)  # reference default: 16 channels × 16 positions
    assert spec.seq_features == 256 and spec.stages == [(64, 32), (32, 32), (32, 16), (16, 16)]
    genes, cov = make_genes(spec, [3, 5], [2, 4], b=4)
    model = batched_model(spec, genes).eval()
    seq, acc, dist, tf, covs = stack(spec, genes, cov)
    assert model.encode(seq).shape == (2, 5, 256)
    with torch.no_grad():
        assert model(seq, acc, dist, tf, covs).shape == (2, 4)
    for g, (p, t) in enumerate([(3, 2), (5, 4)]):
        ref = ReferenceGeneModel(spec, p, t)
        assert model.n_params(g) == count_gene_params(spec, p, t) == sum(q.numel() for q in ref.parameters())
    assert model.n_params(0) < model.n_params(1)


@pytest.mark.parametrize("use_sequence", [True, False])
def test_padding_does_not_change_a_genes_output(use_sequence):
    spec = ModelSpec(**{**SMALL, "seq_len": 32 if use_sequence else None}, dropout=0.0, attn_dropout=0.0)
    genes, cov = make_genes(spec, [4], [3], b=6)
    other, _ = make_genes(spec, [9], [7], b=6, seed=1)
    alone = batched_model(spec, genes)
    padded = batched_model(spec, genes + other)  # gene 0 padded to 9 peaks and 7 TFs
    assert padded.p_max == 9 and padded.t_max == 7
    a_in, p_in = stack(spec, genes, cov), stack(spec, genes + other, cov)
    for mode in ("train", "eval"):
        alone.train(mode == "train")
        padded.train(mode == "train")
        out_a, out_p = alone(*a_in), padded(*p_in)
        torch.testing.assert_close(out_p[0], out_a[0], rtol=1e-5, atol=1e-5)
        (out_a.sum() + out_p[0].sum()).backward()
        # padded head columns get an exactly-zero gradient, so they stay zero under Adam
        pad_cols = torch.ones(padded.head1_w.shape[-1], dtype=torch.bool)
        pad_cols[padded._head_index(0)] = False
        assert torch.all(padded.head1_w.grad[0][:, pad_cols] == 0)
        grads_a = {
            k: getattr(alone, k).grad[0] for k in genes[0]["state"] if getattr(alone, k).grad is not None
        }
        for k, ga in grads_a.items():
            gp = getattr(padded, k).grad[0]
            if k == "head1_w":
                gp = gp[:, padded._head_index(0)]
            torch.testing.assert_close(gp, ga, rtol=1e-4, atol=1e-5, msg=k)
        alone.zero_grad()
        padded.zero_grad()
    # running statistics saw only the valid peaks
    for k, v in alone.gene_state_dict(0).items():
        torch.testing.assert_close(padded.gene_state_dict(0)[k], v, rtol=1e-5, atol=1e-6, msg=k)


def test_padding_changes_output_if_masks_are_ignored():
    """Guard against a vacuous padding test: unmasked padding does change the output."""
    spec = ModelSpec(**SMALL, dropout=0.0, attn_dropout=0.0)
    genes, cov = make_genes(spec, [4], [3], b=6)
    other, _ = make_genes(spec, [9], [7], b=6, seed=1)
    padded = batched_model(spec, genes + other).eval()
    seq, acc, dist, tf, covs = stack(spec, genes + other, cov)
    with torch.no_grad():
        ok = padded(seq, acc, dist, tf, covs)[0]
        padded.peak_mask.fill_(1.0)  # pretend the padded peaks were real
        broken = padded(seq, acc, dist, tf, covs)[0]
    assert (ok - broken).abs().max() > 1e-3


@pytest.mark.parametrize("use_sequence", [True, False])
def test_batched_equals_plain_torch_modules_with_sequence_copies(use_sequence):
    """The encoder run once on P sequences equals the reference's B×P copies (outputs, grads, BN stats)."""
    spec = ModelSpec(**{**SMALL, "seq_len": 32 if use_sequence else None}, dropout=0.0, attn_dropout=0.0)
    n_peaks, n_tfs = [3, 7, 5], [2, 4, 1]
    genes, cov = make_genes(spec, n_peaks, n_tfs, b=6)
    model = batched_model(spec, genes).train()
    inp = stack(spec, genes, cov)
    out = model(*inp)
    poisson_nll(out, torch.full_like(out, 3.0)).mean(1).sum().backward()
    for g, x in enumerate(genes):
        ref = ReferenceGeneModel(spec, n_peaks[g], n_tfs[g])
        ref.load_gene_state(x["state"])
        ref.train()
        ref_out = ref(x["seq"], x["acc"], x["dist"], x["tf"], cov)
        torch.testing.assert_close(out[g], ref_out, rtol=1e-5, atol=1e-5)
        poisson_nll(ref_out, torch.full_like(ref_out, 3.0)).mean().backward()
        for name, p in ref._names().items():
            if p.grad is None:
                continue
            gb = getattr(model, name).grad[g]
            if name == "head1_w":
                gb = gb[:, model._head_index(g)]
            pg = p.grad
            if name.endswith("conv_b"):  # BatchNorm cancels it: zero gradient, ours exactly
                assert pg.abs().max() < 1e-4 and torch.all(gb == 0), name
                continue
            if name == "qkv_b":  # softmax cancels the key bias: zero gradient, ours exactly
                d = spec.n_dims
                assert pg[d : 2 * d].abs().max() < 1e-4 and torch.all(gb[d : 2 * d] == 0)
                gb, pg = torch.cat([gb[:d], gb[2 * d :]]), torch.cat([pg[:d], pg[2 * d :]])
            scale = pg.abs().max().clamp_min(1e-3)
            assert (gb - pg).abs().max() / scale < 1e-4, name
        # running statistics: the unbiased variance uses the reference's B·P·L count
        got = model.gene_state_dict(g)
        for name, t in ref.gene_state_dict().items():
            if name.endswith(("_mean", "_var")):
                torch.testing.assert_close(got[name], t, rtol=1e-5, atol=1e-6, msg=name)
        ref.eval()
        with torch.no_grad():
            ev_ref = ref(x["seq"], x["acc"], x["dist"], x["tf"], cov)
        model.eval()
        with torch.no_grad():
            ev = model(*inp)[g]
        model.train()
        torch.testing.assert_close(ev, ev_ref, rtol=1e-5, atol=1e-5)


def test_per_gene_init_is_stable_and_gene_specific():
    spec = ModelSpec(**SMALL)
    assert gene_seed(0, "GATA1") == zlib.crc32(b"0\x00GATA1\x00init")
    a = init_gene_state(spec, 5, 3, torch.Generator().manual_seed(gene_seed(0, "GATA1")))
    b = init_gene_state(spec, 5, 3, torch.Generator().manual_seed(gene_seed(0, "GATA1")))
    c = init_gene_state(spec, 5, 3, torch.Generator().manual_seed(gene_seed(0, "SPI1")))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["stem_w"], c["stem_w"])
    bound = 1 / np.sqrt(spec.head_features(5, 3))  # torch's Linear init uses the gene's own fan-in
    assert a["head1_w"].abs().max() <= bound and a["head1_w"].abs().max() > 0.8 * bound


@pytest.mark.parametrize("mode", ["generator", "hash"])
def test_dropout_masks_depend_only_on_the_genes_own_stream(mode):
    spec = ModelSpec(**SMALL)
    genes, cov = make_genes(spec, [4, 8, 6], [3, 5, 2], b=5)
    out = {}
    for label, members in (("alone", [1]), ("batched", [0, 1, 2])):
        subset = [genes[i] for i in members]
        model = batched_model(spec, subset).train()
        model.set_dropout_rng([7 + i for i in members], mode)
        model(*stack(spec, subset, cov))  # a second call draws fresh masks, identically in both
        out[label] = model(*stack(spec, subset, cov))[members.index(1)]
    torch.testing.assert_close(out["batched"], out["alone"], rtol=1e-5, atol=1e-5)
    model = batched_model(spec, [genes[1]]).train()
    model.set_dropout_rng([99], mode)  # another seed: other masks
    assert (model(*stack(spec, [genes[1]], cov))[0] - out["alone"]).abs().max() > 1e-4


def test_hash_dropout_masks_have_the_right_rate_and_vary():
    spec = ModelSpec(**{**SMALL, "seq_len": None}, dropout=0.25, attn_dropout=0.1)
    model = BatchedGeneModel(spec, [30, 20], [3, 3])
    model.set_dropout_rng([1, 2], "hash")
    ma, mh = model._dropout_masks(64, "cpu")
    ma2, _ = model._dropout_masks(64, "cpu")
    keep_a = (ma[0] > 0).float().mean().item()
    keep_h = (mh > 0).float().mean().item()
    assert abs(keep_a - 0.9) < 0.01 and abs(keep_h - 0.75) < 0.02
    assert torch.all(ma[1, :, 20:] == 0)  # padded peaks
    assert (ma[0] != ma2[0]).float().mean() > 0.1  # new masks each call
    assert (ma[0, :, :20] != ma[1, :, :20]).float().mean() > 0.1  # genes differ
    torch.testing.assert_close(ma[ma > 0], torch.full_like(ma[ma > 0], 1 / 0.9))


def test_gene_state_dict_is_a_copy_and_load_checks_shapes():
    spec = ModelSpec(**SMALL)
    genes, _ = make_genes(spec, [4, 6], [3, 2], b=2)
    model = batched_model(spec, genes)
    snap = model.gene_state_dict(0)
    with torch.no_grad():
        model.head2_b.add_(1.0)
    assert not torch.equal(snap["head2_b"], model.gene_state_dict(0)["head2_b"])
    bad = dict(snap, head1_w=torch.zeros(spec.head_hidden, 3))
    with pytest.raises(ValueError, match="head1_w"):
        model.load_gene_state(0, bad)
    with pytest.raises(ValueError, match="n_dims"):
        ModelSpec(n_covariates=2, n_dims=10, n_heads=4)
