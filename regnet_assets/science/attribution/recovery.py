"""How well TF → gene rankings recover a known truth: the metrics, the recovery table of the
network beside every baseline of :mod:`.baselines`, and its precision–recall figure.

The universe is the candidate (tf, gene) pairs (``gene_tf_candidates`` of the modelled genes):
the label of a pair is whether it is in the truth; true edges outside the candidates cannot be
recovered and are counted apart (``n_true_outside``). Every method ranks the same universe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from regnet_assets.science.attribution import baselines
from regnet_assets.science.attribution.grn import ALL, cell_type_edge_scores, tf_to_gene
from regnet_assets.science.common.normalise import expression_frame
from regnet_assets.science.common.tables import LongTable

__all__ = [
    "RECOVERY_COLUMNS",
    "RecoverySettings",
    "baseline_scores",
    "early_precision_ratio",
    "empty_recovery",
    "grn_recovery",
    "network_recovery",
    "plot_pr_curves",
    "recovery_metrics",
]

RANDOM_EXPECTED = "random_expected"
RECOVERY_COLUMNS = (
    "method",
    "cell_type",
    "n_candidates",
    "n_true",
    "auroc",
    "auprc",
    "epr",
    "prevalence",
    "sign_accuracy",
    "n_signed",
    "n_true_outside",
    "note",
)
# Fewest training metacells of a cell type for its own baseline fits (ElasticNetCV's 5 folds).
MIN_METACELLS = baselines.ENET_FOLDS
Scores = pd.DataFrame | str  # a method's scores, or why it has none


@dataclass(frozen=True)
class RecoverySettings:
    """How the network is scored against a known truth."""

    seed: int = 0  # seed of random_seeded, the elastic net's folds and GRNBoost2
    per_cell_type: bool = True  # also score each cell type separately
    grnboost2: bool = True  # run GRNBoost2 (arboreto), the slowest baseline


# ====================================================================== metrics
def early_precision_ratio(y: np.ndarray, score: np.ndarray) -> float:
    """BEELINE's early precision ratio (Pratapa et al. 2020, ``computeEarlyPrec``): precision of
    the top-k edges, k = the number of true edges, divided by a random predictor's precision
    (the prevalence).

    As BEELINE: edges are ranked by |score|; ties at the k-th value are all kept (so the top set
    can exceed k), and edges of weight 0 (and here NaN, unscored) are never in it; no such edge
    scored gives 0. Signs are not used (BEELINE's unsigned EPR; sign accuracy is reported apart).
    """
    y = np.asarray(y, bool)
    n_true = int(y.sum())
    if n_true == 0 or len(y) == 0:
        return float("nan")
    s = np.abs(np.asarray(score, np.float64))
    finite = np.isfinite(s)
    nonzero = finite & (s != 0)
    if not nonzero.any():
        return 0.0
    ranked = np.sort(s[finite])[::-1]
    kth = ranked[min(len(ranked), n_true) - 1]
    top = finite & (s >= max(kth, s[nonzero].min()))
    return float(y[top].mean() / (n_true / len(y)))


def _ranked(score: np.ndarray) -> np.ndarray:
    """Scores with NaN (unscored pairs) moved below every scored pair, for sklearn's rankings."""
    scored = np.isfinite(score)
    return np.where(scored, score, np.min(score[scored]) - 1.0 if scored.any() else 0.0)


def recovery_metrics(y: np.ndarray, score: np.ndarray, sign_pred: np.ndarray, sign_true: np.ndarray) -> dict:
    """AUROC, AUPRC (sklearn), EPR and sign accuracy of one ranking; NaN scores rank last for
    AUROC/AUPRC. ``sign_accuracy``: share of true edges with a non-zero predicted sign that match
    ``sign_true`` (``n_signed`` of them)."""
    y = np.asarray(y, bool)
    score = np.asarray(score, np.float64)
    sign_pred = np.asarray(sign_pred, np.float64)
    n_true = int(y.sum())
    both = 0 < n_true < len(y)
    ranked = _ranked(score)
    signed = y & np.isfinite(sign_pred) & (sign_pred != 0)
    return {
        "n_candidates": int(len(y)),
        "n_true": n_true,
        "auroc": float(roc_auc_score(y, ranked)) if both else np.nan,
        "auprc": float(average_precision_score(y, ranked)) if both else np.nan,
        "epr": early_precision_ratio(y, score) if both else np.nan,
        "prevalence": n_true / len(y) if len(y) else np.nan,
        "sign_accuracy": float(np.mean(sign_pred[signed] == sign_true[signed])) if signed.any() else np.nan,
        "n_signed": int(signed.sum()),
    }


def _expected_random(y: np.ndarray) -> dict:
    """A random ranking's expectation: AUROC 0.5, AUPRC = prevalence, EPR 1, signs 50 % right."""
    prev = y.sum() / len(y) if len(y) else np.nan
    return {
        "n_candidates": int(len(y)),
        "n_true": int(y.sum()),
        "auroc": 0.5,
        "auprc": prev,
        "epr": 1.0,
        "prevalence": prev,
        "sign_accuracy": 0.5,
        "n_signed": int(y.sum()),
    }


# ====================================================================== the table
def _universe_truth(truth: pd.DataFrame, candidates: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Candidate pairs with the truth's ``sign`` (NaN: not an edge) and ``cell_types``, and the
    number of true edges outside the candidates."""
    missing = [c for c in ("tf", "gene", "sign") if c not in truth.columns]
    if missing:
        raise ValueError(f"truth lacks columns {missing} (has {list(truth.columns)})")
    t = truth.astype({"tf": str, "gene": str}).drop_duplicates(["tf", "gene"])
    t = t.assign(cell_types=t["cell_types"] if "cell_types" in t.columns else ALL)
    universe = baselines.candidate_pairs(candidates).merge(
        t[["tf", "gene", "sign", "cell_types"]], on=["tf", "gene"], how="left"
    )
    return universe, len(t) - int(universe["sign"].notna().sum())


def _aligned(universe: pd.DataFrame, scores: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``score`` and ``sign`` on the universe rows (NaN where a pair has no score)."""
    missing = [c for c in ("tf", "gene", "score") if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lack columns {missing} (have {list(scores.columns)})")
    s = scores.astype({"tf": str, "gene": str}).drop_duplicates(["tf", "gene"])
    m = universe[["tf", "gene"]].merge(s, on=["tf", "gene"], how="left")
    sign = m["sign"] if "sign" in m.columns else pd.Series(np.nan, index=m.index)
    return m["score"].to_numpy(np.float64), sign.to_numpy(np.float64)


def _active_in(cell_types: pd.Series, cell_type: str) -> np.ndarray:
    return cell_types.astype(str).map(lambda s: s == ALL or cell_type in s.split(";")).to_numpy(bool)


def grn_recovery(
    scores: Mapping[str, Scores],
    truth: pd.DataFrame,
    candidates: pd.DataFrame,
    *,
    cell_type_scores: Mapping[str, Mapping[str, Scores]] | None = None,
) -> pd.DataFrame:
    """One row per method and cell type (:data:`RECOVERY_COLUMNS`).

    ``scores``: method → ``tf, gene, score[, sign]`` (or a note why the method has no scores:
    its row then carries the note and NaN metrics); ``cell_type_scores``: cell type → the same
    mapping within that type, scored against the edges whose truth ``cell_types`` is ``"all"``
    or lists the type. A ``random_expected`` row (the analytic expectation) is added per cell
    type, first.
    """
    universe, n_outside = _universe_truth(truth, candidates)
    y_all = universe["sign"].notna().to_numpy()
    sign_true = universe["sign"].to_numpy(np.float64)
    rows = []

    def add(method: str, cell_type: str, y: np.ndarray, frame: Scores) -> None:
        if isinstance(frame, str):
            metrics = {
                **dict.fromkeys(("auroc", "auprc", "epr", "sign_accuracy"), np.nan),
                **{
                    k: v
                    for k, v in _expected_random(y).items()
                    if k in ("n_candidates", "n_true", "prevalence")
                },
                "n_signed": 0,
            }
        else:
            metrics = recovery_metrics(y, *_aligned(universe, frame), sign_true)
        outside = n_outside if cell_type == ALL else np.nan
        rows.append(
            {
                "method": method,
                "cell_type": cell_type,
                **metrics,
                "n_true_outside": outside,
                "note": frame if isinstance(frame, str) else "",
            }
        )

    groups = {ALL: (y_all, scores)}
    for ct, per_type in (cell_type_scores or {}).items():
        if ct == ALL:
            raise ValueError(f"a cell type is named {ALL!r}, which is reserved for all metacells")
        groups[ct] = (y_all & _active_in(universe["cell_types"].fillna(""), ct), per_type)
    for ct, (y, per_method) in groups.items():
        rows.append(
            {
                "method": RANDOM_EXPECTED,
                "cell_type": ct,
                **_expected_random(y),
                "n_true_outside": n_outside if ct == ALL else np.nan,
                "note": "analytic expectation of a random ranking",
            }
        )
        for method, frame in per_method.items():
            if method == RANDOM_EXPECTED:
                raise ValueError(f"method name {RANDOM_EXPECTED!r} is reserved")
            add(method, ct, y, frame)
    table = pd.DataFrame(rows, columns=list(RECOVERY_COLUMNS))
    return table.astype({"n_candidates": np.int64, "n_true": np.int64, "n_signed": np.int64})


def empty_recovery() -> pd.DataFrame:
    """The recovery table without rows (a dataset without ground truth)."""
    text = ("method", "cell_type", "note")
    ints = ("n_candidates", "n_true", "n_signed")
    return pd.DataFrame(
        {
            c: pd.Series(dtype="string" if c in text else "int64" if c in ints else "float64")
            for c in RECOVERY_COLUMNS
        }
    )


# ====================================================================== baselines and the run
def baseline_scores(
    candidates: pd.DataFrame, expression: pd.DataFrame, *, seed: int, grnboost2: bool = True
) -> dict[str, Scores]:
    """Every baseline of :mod:`.baselines` on ``expression`` (metacells × genes): name → scores,
    or a note where it cannot run (GRNBoost2 without arboreto, or switched off)."""
    out: dict[str, Scores] = {
        "random_seeded": baselines.random_scores(candidates, seed),
        "motif_count": baselines.motif_scores(candidates),
        "correlation": baselines.correlation_scores(candidates, expression, "pearson"),
        "spearman": baselines.correlation_scores(candidates, expression, "spearman"),
        "ridge": baselines.regression_scores(candidates, expression, "ridge", seed),
        "elastic_net": baselines.regression_scores(candidates, expression, "elastic_net", seed),
    }
    missing = baselines.grnboost2_available()
    if not grnboost2:
        out["grnboost2"] = "not run (RecoveryConfig.grnboost2 is false)"
    elif missing:
        out["grnboost2"] = missing
    else:
        out["grnboost2"] = baselines.grnboost2_scores(candidates, expression, seed)
    return out


def network_recovery(
    network: pd.DataFrame,
    truth: pd.DataFrame,
    attr_long: LongTable,
    candidates: pd.DataFrame,
    rna,
    metacell_labels: pd.Series,
    train_metacells: pd.Index,
    settings: RecoverySettings,
    method_name: str,
):
    """(:func:`grn_recovery` table, :func:`plot_pr_curves` figure) of a regulatory network (its
    ``tf, gene, score, sign``) beside every baseline, on the candidates of the network's genes.

    Baselines are fitted on the log1p CP10k expression of ``rna``'s ``train_metacells`` (the
    metacells the models train on), per cell type on that type's train metacells (types with
    fewer than :data:`MIN_METACELLS` get a note); the network's per-type scores are
    :func:`.grn.tf_to_gene` of ``attr_long`` within the type.
    """
    edges = network[["tf", "gene", "score", "sign"]]
    genes = set(edges["gene"].astype(str))
    cands = candidates[candidates["gene"].astype(str).isin(genes)]
    truth = truth[truth["gene"].astype(str).isin(genes)]
    names = pd.Index(rna.var_names.astype(str))
    measured = [g for g in sorted(genes | set(cands["tf"].astype(str))) if g in names]
    obs = pd.Index(rna.obs_names.astype(str))
    train = obs[obs.isin(pd.Index(train_metacells).astype(str))]
    if len(train) < MIN_METACELLS:
        raise ValueError(
            f"train_metacells: {len(train)} of the metacells are train ones, need at least {MIN_METACELLS}"
        )
    expression = expression_frame(rna[obs.isin(train)], measured)

    def methods(expr: pd.DataFrame, regnet: pd.DataFrame) -> dict[str, Scores]:
        return {
            method_name: regnet,
            **baseline_scores(cands, expr, seed=settings.seed, grnboost2=settings.grnboost2),
        }

    overall = methods(expression, edges)
    per_type = None
    if settings.per_cell_type:
        labels = pd.Series(metacell_labels).astype(str)
        labels.index = labels.index.astype(str)
        regnet_types = cell_type_edge_scores(tf_to_gene(attr_long, labels, n_tfs=None))
        per_type = {}
        for ct in sorted(regnet_types["cell_type"].astype(str).unique()):
            if ct == ALL:
                continue
            regnet = regnet_types[regnet_types["cell_type"].astype(str) == ct]
            sub = expression.loc[expression.index.isin(labels.index[labels == ct])]
            if len(sub) >= MIN_METACELLS:
                per_type[ct] = methods(sub, regnet)
            else:
                note = f"{len(sub)} train metacells of {ct}, fewer than {MIN_METACELLS}: baselines not fitted"
                per_type[ct] = {method_name: regnet, **dict.fromkeys(overall.keys() - {method_name}, note)}
    table = grn_recovery(overall, truth, cands, cell_type_scores=per_type)
    fig = plot_pr_curves(overall, truth, cands, title=f"TF → gene recovery ({len(genes)} genes)")
    return table, fig


# ====================================================================== the figure
def plot_pr_curves(
    scores: Mapping[str, Scores],
    truth: pd.DataFrame,
    candidates: pd.DataFrame,
    title: str = "TF → gene recovery",
):
    """Precision–recall curves of every method with scores (the legend gives AUPRC and EPR),
    plus the random line at the prevalence. A ``matplotlib.figure.Figure`` built without pyplot,
    so no GUI state is created and nothing needs closing."""
    from matplotlib.figure import Figure

    universe, _ = _universe_truth(truth, candidates)
    y = universe["sign"].notna().to_numpy()
    fig = Figure(figsize=(6, 5))
    ax = fig.add_subplot(1, 1, 1)
    if 0 < y.sum() < len(y):
        for name, frame in scores.items():
            if isinstance(frame, str):
                continue
            score, sign = _aligned(universe, frame)
            m = recovery_metrics(y, score, sign, sign)
            prec, rec, _ = precision_recall_curve(y, _ranked(score))
            ax.step(rec, prec, where="post", label=f"{name} (AUPRC {m['auprc']:.3f}, EPR {m['epr']:.2f})")
    prev = y.mean() if len(y) else 0.0
    ax.axhline(prev, color="grey", linestyle="--", label=f"random ({prev:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7)
    return fig
