"""Benchmark: which training settings make regnet's TF → gene network recover the truth.

On a simulated dataset (``--preset small``, ``default`` or ``hard``, ``regnet_assets.science.dataset.
simulator``), builds the leak-free metacells, trains every target gene's model once per
setting, attributes with the exact IG and scores the network (mean |attribution| per
candidate edge, :func:`~regnet_assets.science.attribution.grn.edge_scores`) against the
simulator's true edges: AUROC and AUPRC over the candidate edges (scikit-learn). Baselines
computed in the same run on the same candidates and the same train metacells (as
``grn_recovery`` fits them): the per-gene ridge and elastic net on standardised candidate-TF
expression and |Pearson r| of TF and gene
(``science.attribution.baselines``), plus the same models untrained. Model quality: the
median **test** Spearman, beside the oracle ceiling and the cell-type × depth null.

    python bench/bench_sweep.py --preset small
    python bench/bench_sweep.py --preset default --settings default reference
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402

from regnet_assets.science.attribution import baselines  # noqa: E402
from regnet_assets.science.attribution.grn import edge_scores  # noqa: E402
from regnet_assets.science.attribution.ig import attribution_table, integrated_gradients  # noqa: E402
from regnet_assets.science.common.normalise import log_cp10k, row_totals  # noqa: E402
from regnet_assets.science.common.obs import obs_column  # noqa: E402
from regnet_assets.science.dataset import candidates as cand  # noqa: E402
from regnet_assets.science.dataset import motifs  # noqa: E402
from regnet_assets.science.dataset.links import peak_to_gene  # noqa: E402
from regnet_assets.science.dataset.metacells import make_metacells  # noqa: E402
from regnet_assets.science.dataset.simulator import SimulationConfig, simulate, truth_table  # noqa: E402
from regnet_assets.science.models.config import TrainConfig  # noqa: E402
from regnet_assets.science.models.inputs import build_gene_inputs  # noqa: E402
from regnet_assets.science.models.tables import run_tables  # noqa: E402
from regnet_assets.science.models.trainer import train_genes  # noqa: E402

# name → TrainConfig; each varies one choice from the default (or the reference) so the table
# says what each change is worth.
SETTINGS = {
    "default": TrainConfig(),
    "reference": TrainConfig.reference(),
    "reference_lr1e-3": TrainConfig.reference(lr=1e-3),
    "tf_in_head": TrainConfig(tf_in_head=True),
    "no_tf_linear": TrainConfig(tf_linear=False, tf_in_head=True),
    "no_glm_start": TrainConfig(glm_start=False),
    "no_glm_start_tf_in_head": TrainConfig(glm_start=False, tf_in_head=True),
    "no_glm_start_lr3e-3_steps1000": TrainConfig(glm_start=False, lr=3e-3, steps=1000),
    "no_standardize": TrainConfig(standardize_inputs=False),
    "best_spearman_ckpt": TrainConfig(checkpoint_metric="valid_spearman"),
    "steps_200": TrainConfig(steps=200),  # = the default since 2026-12-07
    "steps_400": TrainConfig(steps=400),  # the default before
    "steps_800": TrainConfig(steps=800),
    "lr_3e-4": TrainConfig(lr=3e-4),
    "batch_32": TrainConfig(batch_size=32),
    "steps_200_batch_32": TrainConfig(steps=200, batch_size=32),  # the same cells seen, half the steps
    "no_sequence": TrainConfig(use_sequence=False),
    # the same models at their random initialisation, and at the GLM start before any training
    "untrained": TrainConfig(steps=1, lr=1e-12, min_lr=0.0, glm_start=False),
    "glm_start_only": TrainConfig(steps=1, lr=1e-12, min_lr=0.0),
    # the GLM start's penalty: the ridge start (the default before), an elastic net halfway
    "ridge_start": TrainConfig(glm_l1_ratio=0.0),
    "ridge_start_only": TrainConfig(steps=1, lr=1e-12, min_lr=0.0, glm_l1_ratio=0.0),
    "enet_start": TrainConfig(glm_l1_ratio=0.5),
}
PRESETS = {
    "small": (SimulationConfig.small, 60),
    "default": (SimulationConfig, 200),
    "hard": (SimulationConfig.hard, 200),
}


def prepare(preset: str, seed: int):
    """Simulated data → metacells, inputs, candidates, truth and the baselines' expression."""
    make, n_metacells = PRESETS[preset]
    mdata = simulate(make(seed=seed))
    mc = make_metacells(mdata, n_metacells=n_metacells, seed=seed)
    links = peak_to_gene(mdata)
    hits, _, _ = motifs.motif_hit_table(mdata)
    candidates = cand.candidates_from_tables(links, hits, mc["rna"])
    truth = truth_table(mdata, "truth_tf_gene", ["tf", "gene", "sign"])
    genes = sorted(set(truth["gene"]))
    inputs, skipped = build_gene_inputs(mc, links, candidates, genes)
    split = obs_column(mc, "split", mc["rna"].obs_names).astype(str).to_numpy()
    rna = mc["rna"][split == "train"]  # the metacells the models train on, as grn_recovery fits them
    expression = pd.DataFrame(
        log_cp10k(rna.X, row_totals(rna.X), np.float64), index=rna.obs_names, columns=rna.var_names
    )
    candidates = candidates[candidates["gene"].isin([x.gene for x in inputs])]
    return mc, inputs, candidates, truth, expression


def score(universe: pd.DataFrame, y: np.ndarray, frame: pd.DataFrame) -> tuple[float, float]:
    s = universe.merge(frame[["tf", "gene", "score"]].astype({"tf": str, "gene": str}), how="left")["score"]
    s = s.fillna(s.min() - 1).to_numpy(float)
    return float(roc_auc_score(y, s)), float(average_precision_score(y, s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    mc, inputs, candidates, truth, expression = prepare(args.preset, args.seed)
    universe = baselines.candidate_pairs(candidates)
    y = universe.merge(truth[["tf", "gene"]].astype(str).assign(t=1), how="left")["t"].notna().to_numpy()
    print(
        f"preset {args.preset}: {len(inputs)} genes, {mc.n_obs} metacells "
        f"({dict(mc.obs['split'].value_counts())}), {len(universe)} candidate edges, "
        f"{int(y.sum())} true (prevalence {y.mean():.3f})"
    )
    rows = []
    for name, frame in (
        ("ridge", baselines.regression_scores(candidates, expression, "ridge")),
        ("elastic_net", baselines.regression_scores(candidates, expression, "elastic_net", args.seed)),
        ("correlation", baselines.correlation_scores(candidates, expression)),
    ):
        auroc, auprc = score(universe, y, frame)
        rows.append({"setting": name, "auroc": auroc, "auprc": auprc})
    for name in args.settings:
        config = replace(SETTINGS[name], seed=args.seed)
        started = time.perf_counter()
        results = train_genes(inputs, config)
        attributions = integrated_gradients([r.checkpoint for r in results], inputs)
        auroc, auprc = score(universe, y, edge_scores(attribution_table(attributions)))
        tables = run_tables(results, {}, mc)
        corr = pd.concat(tables["gene_correlation"].values())
        rel = max(float(np.max(np.abs(a.delta)) / max(np.ptp(a.f_x), 1e-12)) for a in attributions)
        rows.append(
            {
                "setting": name,
                "auroc": auroc,
                "auprc": auprc,
                "test": corr["test_spearman"].median(),
                "valid": corr["valid_spearman"].median(),
                "oracle": corr["oracle_spearman"].median(),
                "null": corr["null_spearman"].median(),
                "test/oracle": (corr["test_spearman"] / corr["oracle_spearman"]).median(),
                "best_epoch": float(np.median([r.best_epoch for r in results])),
                "epochs": results[0].epochs_run,
                "ig_rel_delta": rel,
                "s": time.perf_counter() - started,
            }
        )
        print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format="%.3f"), flush=True)
    table = pd.DataFrame(rows)
    print()
    print(table.to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
