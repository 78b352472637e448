"""Benchmark: TF attribution throughput (gene·metacells per second), ours vs the reference's way.

Same models, inputs and n_steps in one run:

* ours            — ``integrated_gradients``: all genes × steps × metacells in one batched
                    forward/backward of the head, trunk evaluated once per metacell;
* ours (full)     — the same batching through the model's whole forward at every step;
* reference       — captum ``IntegratedGradients`` on the reference module, inputs
                    (peak_seq, peak_acc, peak_dist, tf_exp), 2 metacells per call, one gene at a
                    time (``cn.ip.tf_attr(batch_size=2)``): every call re-encodes every
                    metacell's sequences at every step;
* captum, batch 2 — captum on our one-gene module (sequences encoded once per call), 2
                    metacells per call: isolates the gain from batching alone.

The captum paths are timed on the first ``--ref-metacells`` metacells of each gene and
reported as a rate, because they would take hours on all of them. Attributions of all paths
are checked against each other on those metacells.

    python bench/bench_attribution.py --device cpu --genes 4 --steps 100
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: regnet_assets_tests

from regnet_assets.science.attribution.captum_reference import reference_ig  # noqa: E402
from regnet_assets.science.attribution.ig import integrated_gradients  # noqa: E402
from regnet_assets.science.models.config import TrainConfig  # noqa: E402
from regnet_assets.science.models.trainer import train_genes  # noqa: E402
from regnet_assets_tests.synthetic import synthetic_gene_inputs  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device):
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--genes", type=int, default=4)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--metacells", type=int, default=400)
    ap.add_argument(
        "--ref-metacells", type=int, default=2, help="metacells per gene timed on the captum paths"
    )
    ap.add_argument(
        "--batched-ref-metacells",
        type=int,
        default=40,
        help="metacells per gene timed on captum over our module",
    )
    ap.add_argument(
        "--epochs", type=int, default=1, help="training epochs before attribution (0: random init)"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    inputs = synthetic_gene_inputs(
        args.genes, n_metacells=args.metacells, peaks=(20, 40), tfs=(5, 15), seq_len=256, seed=args.seed
    )
    config = TrainConfig(epochs=max(args.epochs, 1), seed=args.seed)
    if args.epochs == 0:  # one epoch at lr≈0 gives each gene its seeded random init in checkpoint form
        config = TrainConfig(epochs=1, lr=1e-30, min_lr=0.0, seed=args.seed)
    results, t_train = timed(lambda: train_genes(inputs, config, device), device)
    sizes = [(len(x.peak_names), len(x.tf_names)) for x in inputs]
    print(
        f"device={device} threads={torch.get_num_threads()} genes={args.genes} metacells={args.metacells} "
        f"steps={args.steps} (peaks, TFs) per gene={sizes} seq_len=256 epochs={args.epochs} "
        f"(setup {t_train:.1f}s)"
    )

    integrated_gradients(results[:1], inputs[:1], n_steps=2, device=device)  # warm-up (allocator, kernels)
    ours, t_ours = timed(
        lambda: integrated_gradients(results, inputs, n_steps=args.steps, device=device), device
    )
    full, t_full = timed(
        lambda: integrated_gradients(results, inputs, n_steps=args.steps, device=device, engine="full"),
        device,
    )
    _, t_exact = timed(lambda: integrated_gradients(results, inputs, device=device, method="exact"), device)
    work = args.genes * args.metacells

    rows = list(range(min(args.ref_metacells, args.metacells)))
    ref, t_ref = timed(
        lambda: [
            reference_ig(
                r, x, n_steps=args.steps, batch_size=2, device=device, module="reference", metacells=rows
            )
            for r, x in zip(results, inputs)
        ],
        device,
    )
    brows = list(range(min(args.batched_ref_metacells, args.metacells)))
    bref, t_bref = timed(
        lambda: [
            reference_ig(
                r, x, n_steps=args.steps, batch_size=2, device=device, module="batched", metacells=brows
            )
            for r, x in zip(results, inputs)
        ],
        device,
    )

    diff = max(np.abs(a.attributions[rows] - b.attributions).max() for a, b in zip(ours, ref))
    bdiff = max(np.abs(a.attributions[brows] - b.attributions).max() for a, b in zip(ours, bref))
    fdiff = max(np.abs(a.attributions - b.attributions).max() for a, b in zip(ours, full))
    scale = max(np.abs(a.attributions).max() for a in ours)
    delta = max(np.abs(a.delta).max() for a in ours)
    effect = max(np.abs(a.f_x - a.f_baseline).max() for a in ours)

    rate = {
        "ours (batched, head engine)": (work / t_ours, t_ours, work),
        "ours (batched, full engine)": (work / t_full, t_full, work),
        "ours (closed-form IG, no steps)": (work / t_exact, t_exact, work),
        "captum batch 2 on our module": (args.genes * len(brows) / t_bref, t_bref, args.genes * len(brows)),
        "reference (captum batch 2, reference module)": (
            args.genes * len(rows) / t_ref,
            t_ref,
            args.genes * len(rows),
        ),
    }
    print(f"\n{'path':48s} {'gene·mc/s':>12s} {'seconds':>9s} {'gene·mc':>8s}")
    for name, (r, t, n) in rate.items():
        print(f"{name:48s} {r:12.1f} {t:9.2f} {n:8d}")
    ref_rate = rate["reference (captum batch 2, reference module)"][0]
    b_rate = rate["captum batch 2 on our module"][0]
    ours_rate = rate["ours (batched, head engine)"][0]
    print(f"\nspeed-up ours vs reference (captum batch 2, reference module): {ours_rate / ref_rate:,.0f}x")
    print(f"speed-up ours vs captum batch 2 on our module:                 {ours_rate / b_rate:,.0f}x")
    print(
        f"speed-up ours (full engine) vs reference:                      {rate['ours (batched, full engine)'][0] / ref_rate:,.0f}x"
    )
    print(
        f"\nagreement (max |Δattr|, attr scale {scale:.3g}): vs reference {diff:.2e}, vs captum on our module "
        f"{bdiff:.2e}, head vs full engine {fdiff:.2e}"
    )
    print(
        f"completeness: max |delta| {delta:.2e} (max |f(x) − f(baseline)| {effect:.3g}, {args.steps} steps)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
