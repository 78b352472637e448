"""Benchmark: per-gene models trained one at a time vs batched over genes (DESIGN §4, §6).

Trains the same N synthetic genes (sized like the default dataset: ~400 metacells, 20–40
peaks, 5–15 TFs, 256 bp sequences) with the same data and epochs

* ``alone``     — ``train_genes([gene])`` once per gene (our model, one gene per computation);
* ``batched``   — one ``train_genes(genes)`` call (``--genes-per-batch`` genes per computation);
* ``reference`` — a plain per-gene PyTorch loop as the reference runs it (``ReferenceGeneModel``
  encoding B×P sequence copies, torch Adam + ReduceLROnPlateau), on the first
  ``--reference-genes`` genes only, because it is slow;

and prints genes·epochs/s for each, the ratios against ``batched``, and peak memory (peak RSS
growth on CPU via /proc/self/clear_refs, ``torch.cuda.max_memory_allocated`` on GPU).
Wall-clock ratios are measured in the same run; nothing here is asserted by tests.

    python bench/bench_training.py --genes 64 256 --epochs 2 [--device cuda] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: regnet_assets_tests

from regnet_assets.science.models.config import TrainConfig  # noqa: E402
from regnet_assets.science.models.module import (  # noqa: E402
    ModelSpec,
    distance_weight,
    gene_seed,
    init_gene_state,
    poisson_nll,
    sequence_onehot,
)
from regnet_assets.science.models.reference_module import ReferenceGeneModel  # noqa: E402
from regnet_assets.science.models.trainer import train_genes  # noqa: E402
from regnet_assets_tests.synthetic import synthetic_gene_inputs  # noqa: E402


class PeakMemory:
    """Peak memory growth of a block: CUDA allocator peak on GPU, peak RSS (VmHWM) on CPU."""

    def __init__(self, device: torch.device):
        self.device = device

    @staticmethod
    def _hwm_kb() -> int | None:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            try:  # reset the peak-RSS mark so each block is measured on its own
                with open("/proc/self/clear_refs", "w") as fh:
                    fh.write("5")
            except OSError:
                pass
            self.base = (self._hwm_kb() or 0) * 1024
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.peak = (self._hwm_kb() or 0) * 1024 - self.base
        return False


def reference_style(inputs, config: TrainConfig, device: torch.device) -> None:
    """One gene at a time as the reference trains it: B×P sequence copies through the encoder."""
    for x in inputs:
        use_seq = config.use_sequence and x.peak_seq is not None
        spec = ModelSpec(
            n_covariates=x.covariates.shape[1],
            seq_len=x.peak_seq.shape[1] if use_seq else None,
            n_filters=config.n_filters,
            n_dims=config.n_dims,
            n_heads=config.n_heads,
            dropout=config.dropout,
            attn_dropout=config.attn_dropout,
        )
        p, t = len(x.peak_names), len(x.tf_names)
        model = ReferenceGeneModel(spec, p, t)
        model.load_gene_state(
            init_gene_state(spec, p, t, torch.Generator().manual_seed(gene_seed(config.seed, x.gene)))
        )
        model.to(device)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode="max",
            factor=config.scheduler_factor,
            patience=config.scheduler_patience,
            min_lr=config.min_lr,
        )
        seq = sequence_onehot(x.peak_seq, device=device) if use_seq else None
        acc = torch.as_tensor(x.peak_acc, device=device)
        tf = torch.as_tensor(x.tf_exp, device=device)
        cov = torch.as_tensor(x.covariates, device=device)
        y = torch.as_tensor(x.target, device=device)
        dist = distance_weight(x.peak_dist).to(device)
        tr = torch.as_tensor(np.flatnonzero(x.train), device=device)
        va = torch.as_tensor(np.flatnonzero(~x.train), device=device)
        gen = torch.Generator().manual_seed(config.seed)
        best, best_state = -np.inf, None
        for _ in range(config.epochs):
            model.train()
            perm = tr[torch.randperm(len(tr), generator=gen).to(device)]
            for i in range(0, len(perm) - len(perm) % config.batch_size, config.batch_size):
                idx = perm[i : i + config.batch_size]
                loss = poisson_nll(model(seq, acc[idx], dist, tf[idx], cov[idx]), y[idx]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                preds = torch.cat(
                    [
                        model(seq, acc[va[i : i + 64]], dist, tf[va[i : i + 64]], cov[va[i : i + 64]])
                        for i in range(0, len(va), 64)
                    ]
                )
            rho = spearmanr(y[va].cpu().numpy(), preds.cpu().numpy()).statistic
            rho = rho if np.isfinite(rho) else -np.inf
            if best_state is None or rho > best:
                best, best_state = rho, copy.deepcopy(model.state_dict())
            sched.step(rho)


def timed(label, fn, device, n_genes, epochs):
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
    rate = n_genes * epochs / seconds
    print(
        f"  {label:<10} genes={n_genes:<5} {seconds:8.1f} s  {rate:8.3f} genes·epochs/s  "
        f"peak mem +{mem.peak / 2**20:8.1f} MiB",
        flush=True,
    )
    return rate


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--genes", type=int, nargs="+", default=[64])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--metacells", type=int, default=400)
    ap.add_argument("--peaks", type=int, nargs=2, default=(20, 40))
    ap.add_argument("--tfs", type=int, nargs=2, default=(5, 15))
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--no-sequence", action="store_true", help="train without the sequence branch")
    ap.add_argument("--genes-per-batch", type=int, default=None, help="chunk size of the batched run")
    ap.add_argument(
        "--alone-genes",
        type=int,
        default=None,
        help="train only this many genes one at a time (default: all N)",
    )
    ap.add_argument(
        "--reference-genes", type=int, default=4, help="genes for the reference-style loop (0: skip)"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = TrainConfig(
        epochs=args.epochs,
        seed=args.seed,
        use_sequence=not args.no_sequence,
        genes_per_batch=args.genes_per_batch,
    )
    print(
        f"device={device} threads={torch.get_num_threads()} epochs={args.epochs} metacells={args.metacells} "
        f"peaks={tuple(args.peaks)} tfs={tuple(args.tfs)} sequence={'off' if args.no_sequence else args.seq_len} "
        f"batch_size={config.batch_size} genes_per_batch={args.genes_per_batch or 'all'}",
        flush=True,
    )
    for n in args.genes:
        inputs = synthetic_gene_inputs(
            n,
            n_metacells=args.metacells,
            peaks=tuple(args.peaks),
            tfs=tuple(args.tfs),
            seq_len=None if args.no_sequence else args.seq_len,
            seed=args.seed,
        )
        train_genes(
            inputs[:1], TrainConfig(epochs=1, use_sequence=config.use_sequence), device=device
        )  # warm-up
        print(f"N={n}", flush=True)
        n_alone = min(n, args.alone_genes or n)
        alone = timed(
            "alone",
            lambda: [train_genes([x], config, device=device) for x in inputs[:n_alone]],
            device,
            n_alone,
            args.epochs,
        )
        batched = timed("batched", lambda: train_genes(inputs, config, device=device), device, n, args.epochs)
        line = f"  batched / alone = {batched / alone:.1f}x"
        n_ref = min(n, args.reference_genes)
        if n_ref > 0:
            ref = timed(
                "reference",
                lambda: reference_style(inputs[:n_ref], config, device),
                device,
                n_ref,
                args.epochs,
            )
            line += f"   batched / reference-style = {batched / ref:.1f}x   alone / reference-style = {alone / ref:.1f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
