"""Benchmark: the grn_recovery baselines on a materialized dataset group, without the models.

Reads a storage folder in which the dataset group is materialized (``metacell_multiome``,
``gene_tf_candidates``, ``genes``, ``truth_tf_gene``), scores the candidate edges of the
modelable genes with every baseline fitted on the train metacells, and prints the overall
recovery table (AUROC, AUPRC, EPR, sign accuracy) and each baseline's seconds. This is the bar
the regulatory network of ``grn_recovery`` has to clear.

    python bench/bench_baselines.py STORAGE [--seed 0] [--no-grnboost2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from regnet_assets.science.attribution import baselines  # noqa: E402
from regnet_assets.science.attribution.recovery import grn_recovery  # noqa: E402
from regnet_assets.science.common.normalise import expression_frame  # noqa: E402
from regnet_assets.science.dataset.reading import read_multiome  # noqa: E402
from regnet_assets.storage import read_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("storage", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-grnboost2", action="store_true")
    args = parser.parse_args()

    genes = read_table(args.storage, "genes")
    modelled = set(genes.loc[genes["modelable"], "gene"].astype(str))
    cands = read_table(args.storage, "gene_tf_candidates")
    cands = cands[cands["gene"].astype(str).isin(modelled)]
    truth = read_table(args.storage, "truth_tf_gene")
    truth = truth[truth["gene"].astype(str).isin(modelled)]
    mc = read_multiome(str(args.storage / "dataset" / "metacells.h5mu"))
    rna = mc["rna"]
    split = (mc.obs if "split" in mc.obs.columns else rna.obs)["split"].astype(str)
    train = split.index[split == "train"].astype(str)
    names = set(rna.var_names.astype(str))
    measured = sorted(g for g in modelled | set(cands["tf"].astype(str)) if g in names)
    expr = expression_frame(rna[rna.obs_names.astype(str).isin(train)], measured)
    print(
        f"{len(modelled)} genes, {len(cands)} candidate edges, {len(truth)} true edges, {len(expr)} train metacells"
    )

    runs = {
        "random_seeded": lambda: baselines.random_scores(cands, args.seed),
        "motif_count": lambda: baselines.motif_scores(cands),
        "correlation": lambda: baselines.correlation_scores(cands, expr, "pearson"),
        "spearman": lambda: baselines.correlation_scores(cands, expr, "spearman"),
        "ridge": lambda: baselines.regression_scores(cands, expr, "ridge", args.seed),
        "elastic_net": lambda: baselines.regression_scores(cands, expr, "elastic_net", args.seed),
    }
    if not args.no_grnboost2:
        runs["grnboost2"] = lambda: baselines.grnboost2_scores(cands, expr, args.seed)
    scores, seconds = {}, {}
    for name, run in runs.items():
        t0 = time.perf_counter()
        scores[name] = run()
        seconds[name] = time.perf_counter() - t0
    table = grn_recovery(scores, truth, cands).set_index("method")
    table["seconds"] = [seconds.get(m, np.nan) for m in table.index]
    cols = ["auroc", "auprc", "epr", "sign_accuracy", "n_true", "n_candidates", "seconds"]
    print(table[cols].to_markdown(floatfmt=".3f"))


if __name__ == "__main__":
    main()
