"""From TF attributions to a TF → gene regulatory network, and scoring it against a truth.

Input everywhere is the long attribution table of :func:`.attribution.attribution_table`
(``gene, metacell, tf, attribution``, log-rate space), as a DataFrame or as the Parquet files
that hold it (reduced in DuckDB without loading it, see :mod:`.tables`). Edges are
``tf → gene`` pairs among a gene's candidate TFs (the TFs its model saw).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from regnet_assets.science.common.normalise import expression_frame
from regnet_assets.science.common.tables import LongTable, connect, require_columns

ALL = "all"
_ATTR_COLS = ("gene", "metacell", "tf", "attribution")


def _require(frame: pd.DataFrame, cols, label: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"{label} lacks columns {missing} (has {list(frame.columns)})")


def attribution_view(con, label: str) -> None:
    """View ``a`` over the view ``attr`` of :func:`.tables.connect`: the attribution columns, typed
    alike whatever the source (names as text, attributions as double)."""
    require_columns(con, "attr", _ATTR_COLS, label)
    con.execute(
        "CREATE TEMP VIEW a AS SELECT gene::VARCHAR AS gene, metacell::VARCHAR AS metacell, "
        "tf::VARCHAR AS tf, attribution::DOUBLE AS attribution FROM attr"
    )


# ====================================================================== per gene × cell type
def tf_to_gene(
    attr_long: LongTable,
    metacell_labels: pd.Series,
    n_tfs: int | None = 10,
    rank_by: str = "abs",
    include_all: bool = True,
) -> pd.DataFrame:
    """Top TFs per (gene, cell type): ``gene, cell_type, tf, mean_attr, std_attr, n_metacells, rank``.

    Per group of metacells (``metacell_labels``: metacell → cell type; plus an ``"all"`` group
    over every metacell when ``include_all``), ``mean_attr`` and ``std_attr`` (population SD,
    ddof 0, as the reference) of each TF's attribution; the ``n_tfs`` TFs with the largest
    score are kept (None: all), ranked from 1. ``attr_long``: a DataFrame or its Parquet files.

    ``rank_by="abs"`` (default) ranks by |mean_attr| and keeps the sign in ``mean_attr``. This
    fixes the reference (``cn.ip.tf_to_gene``), which ranks by the signed mean: a repressor's
    attribution is negative, so it can never reach the top n, however strong it is.
    ``rank_by="signed"`` reproduces the reference's ranking for comparison. Ties are broken by
    TF name, so the output is deterministic.
    """
    if rank_by not in ("abs", "signed"):
        raise ValueError(f"rank_by must be 'abs' or 'signed', got {rank_by!r}")
    if n_tfs is not None and n_tfs < 1:
        raise ValueError(f"n_tfs must be None or >= 1, got {n_tfs}")
    labels = pd.Series(metacell_labels)
    labels.index = labels.index.astype(str)
    if not labels.index.is_unique:
        raise ValueError("metacell_labels has duplicated metacells")
    if (labels.astype(str) == ALL).any() and include_all:
        raise ValueError(f"a cell type is named {ALL!r}, which is reserved for the all-metacell group")
    label_frame = pd.DataFrame(
        {"metacell": labels.index, "cell_type": labels.astype(str).to_numpy()}, dtype="string"
    )
    stats = "avg(attribution) AS mean_attr, stddev_pop(attribution) AS std_attr, count(*) AS n_metacells"
    with connect(attr=attr_long, labels=label_frame) as con:
        attribution_view(con, "attr_long")
        unlabelled = con.sql(
            "SELECT DISTINCT metacell FROM a ANTI JOIN labels USING (metacell) ORDER BY metacell"
        ).fetchall()
        if unlabelled:
            raise ValueError(
                f"{len(unlabelled)} metacells have no cell-type label, e.g. {unlabelled[0][0]!r}"
            )
        sql = f"SELECT gene, cell_type, tf, {stats} FROM a JOIN labels USING (metacell) GROUP BY ALL"
        if include_all:
            sql += f" UNION ALL SELECT gene, '{ALL}' AS cell_type, tf, {stats} FROM a GROUP BY ALL"
        agg = con.sql(sql).df()
    key = agg["mean_attr"].abs() if rank_by == "abs" else agg["mean_attr"]
    agg = (
        agg.assign(_key=-key)
        .sort_values(["gene", "cell_type", "_key", "tf"], kind="stable")
        .drop(columns="_key")
    )
    agg["rank"] = agg.groupby(["gene", "cell_type"], sort=False).cumcount() + 1
    if n_tfs is not None:
        agg = agg[agg["rank"] <= n_tfs]
    agg = agg.astype(
        {"gene": object, "cell_type": object, "tf": object, "n_metacells": np.int64, "rank": np.int64}
    )
    return agg[["gene", "cell_type", "tf", "mean_attr", "std_attr", "n_metacells", "rank"]].reset_index(
        drop=True
    )


def edge_scores(attr_long: LongTable) -> pd.DataFrame:
    """Every (tf, gene) pair: ``score`` = mean |attribution| over metacells, ``sign`` of the mean.

    Mean |attr| rather than |mean attr|: a TF that activates in some metacells and represses in
    others still regulates the gene. ``attr_long``: a DataFrame or its Parquet files.
    """
    with connect(attr=attr_long) as con:
        attribution_view(con, "attr_long")
        out = con.sql(
            "SELECT tf, gene, avg(abs(attribution)) AS score, avg(attribution) AS mean_attr "
            "FROM a GROUP BY ALL ORDER BY tf, gene"
        ).df()
    out = out.astype({"tf": object, "gene": object})
    out["sign"] = np.sign(out["mean_attr"]).astype(np.int64)
    return out[["tf", "gene", "score", "sign", "mean_attr"]]


def cell_type_edge_scores(tf_to_gene_frame: pd.DataFrame) -> pd.DataFrame:
    """``tf, gene, cell_type, score, sign`` from :func:`tf_to_gene` rows (score = |mean_attr|).

    For per-cell-type recovery, call :func:`tf_to_gene` with ``n_tfs=None`` so every candidate
    has a score.
    """
    _require(tf_to_gene_frame, ("gene", "cell_type", "tf", "mean_attr"), "tf_to_gene frame")
    f = tf_to_gene_frame
    return pd.DataFrame(
        {
            "tf": f["tf"].to_numpy(),
            "gene": f["gene"].to_numpy(),
            "cell_type": f["cell_type"].to_numpy(),
            "score": f["mean_attr"].abs().to_numpy(),
            "sign": np.sign(f["mean_attr"].to_numpy()).astype(np.int64),
        }
    )


def regulatory_network(
    tf_to_gene_all: pd.DataFrame,
    attr_long: LongTable,
    only_network: bool = True,
) -> pd.DataFrame:
    """One row per TF → gene edge: ``tf, gene, score, sign, mean_attr, cell_types, top_overall,
    in_network, n_targets_of_tf``.

    ``score``/``sign`` come from every metacell (:func:`edge_scores`); ``cell_types`` is the
    ';'-joined sorted cell types where the edge is in the top n of :func:`tf_to_gene`
    (``tf_to_gene_all``, already cut to its n), ``top_overall`` whether it is in the top n of the
    ``"all"`` group. An edge is in the network when it is in any top n; ``n_targets_of_tf``
    counts the network genes of each TF. ``only_network=False`` keeps every candidate pair
    (``in_network`` False, ``cell_types`` empty) so that all candidates can be ranked.
    """
    _require(tf_to_gene_all, ("gene", "cell_type", "tf"), "tf_to_gene_all")
    scores = edge_scores(attr_long)
    top = tf_to_gene_all[["tf", "gene", "cell_type"]].astype({"cell_type": str})
    specific = top[top["cell_type"] != ALL]
    types = (
        specific.groupby(["tf", "gene"])["cell_type"]
        .agg(lambda v: ";".join(sorted(set(v))))
        .rename("cell_types")
        .reset_index()
    )
    overall = top.loc[top["cell_type"] == ALL, ["tf", "gene"]].drop_duplicates().assign(top_overall=True)
    net = scores.merge(types, on=["tf", "gene"], how="left").merge(overall, on=["tf", "gene"], how="left")
    net["cell_types"] = net["cell_types"].fillna("")
    net["top_overall"] = net["top_overall"].fillna(False).astype(bool)
    net["in_network"] = (net["cell_types"] != "") | net["top_overall"]
    counts = net[net["in_network"]].groupby("tf")["gene"].nunique()
    net["n_targets_of_tf"] = net["tf"].map(counts).fillna(0).astype(np.int64)
    if only_network:
        net = net[net["in_network"]]
    net = net.sort_values(["gene", "score", "tf"], ascending=[True, False, True], kind="stable")
    return net[
        [
            "tf",
            "gene",
            "score",
            "sign",
            "mean_attr",
            "cell_types",
            "top_overall",
            "in_network",
            "n_targets_of_tf",
        ]
    ].reset_index(drop=True)


# ====================================================================== baselines
def correlation_scores(candidates: pd.DataFrame, expression: pd.DataFrame) -> pd.DataFrame:
    """Baseline: ``tf, gene, score = |Pearson r|, sign = sign(r), r`` of TF vs gene expression.

    ``expression``: metacells × genes (e.g. log1p CP10k). Pairs with a name absent from
    ``expression`` or a constant profile get NaN (ranked last by :func:`grn_recovery`).
    """
    _require(candidates, ("gene", "tf"), "candidates")
    pairs = candidates[["tf", "gene"]].drop_duplicates().reset_index(drop=True)
    x = expression.to_numpy(np.float64)
    xc = x - x.mean(0)
    norm = np.sqrt((xc * xc).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = xc / np.where(norm > 0, norm, np.nan)
    cols = pd.Index(expression.columns.astype(str))
    ti = cols.get_indexer(pairs["tf"].astype(str))
    gi = cols.get_indexer(pairs["gene"].astype(str))
    r = np.full(len(pairs), np.nan)
    ok = (ti >= 0) & (gi >= 0)
    if ok.any():
        r[ok] = np.einsum("mi,mi->i", z[:, ti[ok]], z[:, gi[ok]])
    r = np.clip(r, -1.0, 1.0)
    return pairs.assign(score=np.abs(r), sign=np.nan_to_num(np.sign(r)).astype(np.int64), r=r)


# ====================================================================== recovery
def _truth_pairs(truth: pd.DataFrame) -> pd.DataFrame:
    _require(truth, ("tf", "gene", "sign"), "truth")
    t = truth.copy()
    if "cell_types" not in t.columns:
        t["cell_types"] = ALL
    return t.drop_duplicates(["tf", "gene"])[["tf", "gene", "sign", "cell_types"]]


def _active_in(cell_types: pd.Series, cell_type: str) -> np.ndarray:
    return cell_types.astype(str).map(lambda s: s == ALL or cell_type in s.split(";")).to_numpy(bool)


def _universe(candidates: pd.DataFrame) -> pd.DataFrame:
    _require(candidates, ("gene", "tf"), "candidates")
    return candidates[["tf", "gene"]].astype(str).drop_duplicates().reset_index(drop=True)


def _align(universe: pd.DataFrame, scores: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, int]:
    """Scores and signs on the universe rows; missing/NaN scores rank below every scored pair."""
    _require(scores, ("tf", "gene", "score"), "scores")
    s = scores.astype({"tf": str, "gene": str}).drop_duplicates(["tf", "gene"])
    m = universe.merge(s, on=["tf", "gene"], how="left")
    score = m["score"].to_numpy(np.float64)
    sign = m["sign"].to_numpy(np.float64) if "sign" in m.columns else np.full(len(m), np.nan)
    missing = ~np.isfinite(score)
    if missing.any():
        floor = np.nanmin(score[~missing]) - 1.0 if (~missing).any() else 0.0
        score = np.where(missing, floor, score)
    return score, sign, int(missing.sum())


def _metrics(y: np.ndarray, score: np.ndarray, sign_pred: np.ndarray, sign_true: np.ndarray) -> dict:
    n_true = int(y.sum())
    both = 0 < n_true < len(y)
    signed = y & np.isfinite(sign_pred) & (sign_pred != 0)
    return {
        "n_candidates": int(len(y)),
        "n_true": n_true,
        "auroc": float(roc_auc_score(y, score)) if both else np.nan,
        "auprc": float(average_precision_score(y, score)) if both else np.nan,
        "prevalence": n_true / len(y) if len(y) else np.nan,
        "sign_accuracy": float(np.mean(sign_pred[signed] == sign_true[signed])) if signed.any() else np.nan,
        "n_signed": int(signed.sum()),
    }


def _methods(edges_scored, candidates, expression, baselines, method_name):
    methods = {method_name: edges_scored}
    if expression is not None:
        methods["correlation"] = correlation_scores(candidates, expression)
    for name, frame in (baselines or {}).items():
        if name in methods:
            raise ValueError(f"method name {name!r} is used twice")
        methods[name] = frame
    return methods


def grn_recovery(
    edges_scored: pd.DataFrame,
    truth: pd.DataFrame,
    candidates: pd.DataFrame,
    *,
    cell_type_scores: pd.DataFrame | None = None,
    expression: pd.DataFrame | None = None,
    metacell_labels: pd.Series | None = None,
    baselines: Mapping[str, pd.DataFrame] | None = None,
    method_name: str = "attribution",
    seed: int = 0,
) -> pd.DataFrame:
    """How well each method's TF → gene ranking recovers the true edges, among the candidates.

    The universe is the (tf, gene) pairs of ``candidates``; label = pair in ``truth`` (true edges
    outside the candidates cannot be recovered and are counted in ``n_true_outside``). Ranked
    by ``score`` (missing scores rank last): AUROC and AUPRC (sklearn ``roc_auc_score``,
    ``average_precision_score``); ``sign_accuracy`` = share of true edges with a non-zero
    predicted sign that match the true sign.

    Rows per method (``cell_type="all"``): ``edges_scored`` (``method_name``), the |Pearson r|
    baseline when ``expression`` (metacells × genes) is given, any ``baselines``, and two random
    rankings: ``random_expected`` (analytic: AUROC 0.5, AUPRC = prevalence, sign accuracy 0.5)
    and ``random_seeded`` (one draw with ``seed``). Per cell type, when ``cell_type_scores``
    (``tf, gene, cell_type, score, sign``, e.g. :func:`cell_type_edge_scores`) is given: truth =
    edges whose ``cell_types`` is ``"all"`` or lists the type; the correlation baseline is then
    computed within the type's metacells if ``metacell_labels`` is given.
    """
    universe = _universe(candidates)
    t = _truth_pairs(truth).astype({"tf": str, "gene": str})
    merged = universe.merge(t, on=["tf", "gene"], how="left")
    y_all = merged["sign"].notna().to_numpy()
    sign_true = merged["sign"].to_numpy(np.float64)
    n_outside = len(t) - int(y_all.sum())
    rng = np.random.default_rng(seed)
    rows = []

    def add(method, cell_type, y, score, sign_pred):
        rows.append(
            {
                "method": method,
                "cell_type": cell_type,
                **_metrics(y, score, sign_pred, sign_true),
                "n_true_outside": n_outside if cell_type == ALL else np.nan,
            }
        )

    def add_random(cell_type, y):
        prev = y.sum() / len(y) if len(y) else np.nan
        rows.append(
            {
                "method": "random_expected",
                "cell_type": cell_type,
                "n_candidates": int(len(y)),
                "n_true": int(y.sum()),
                "auroc": 0.5,
                "auprc": prev,
                "prevalence": prev,
                "sign_accuracy": 0.5,
                "n_signed": int(y.sum()),
                "n_true_outside": n_outside if cell_type == ALL else np.nan,
            }
        )
        add("random_seeded", cell_type, y, rng.random(len(y)), rng.choice([-1.0, 1.0], len(y)))

    methods = _methods(edges_scored, candidates, expression, baselines, method_name)
    for name, frame in methods.items():
        score, sign, _ = _align(universe, frame)
        add(name, ALL, y_all, score, sign)
    add_random(ALL, y_all)

    if cell_type_scores is not None:
        _require(cell_type_scores, ("tf", "gene", "cell_type", "score"), "cell_type_scores")
        cts = cell_type_scores[cell_type_scores["cell_type"].astype(str) != ALL]
        labels = None if metacell_labels is None else pd.Series(metacell_labels).astype(str)
        truth_types = merged["cell_types"].fillna("")
        for ct in sorted(cts["cell_type"].astype(str).unique()):
            y = y_all & _active_in(truth_types, ct)
            score, sign, _ = _align(universe, cts[cts["cell_type"].astype(str) == ct])
            add(method_name, ct, y, score, sign)
            if expression is not None and labels is not None:
                cells = labels.index[labels == ct].astype(str)
                sub = expression.loc[expression.index.astype(str).isin(cells)]
                if len(sub) >= 3:
                    cs, csign, _ = _align(universe, correlation_scores(candidates, sub))
                    add("correlation", ct, y, cs, csign)
            add_random(ct, y)
    return pd.DataFrame(rows)


def plot_pr_curves(
    edges_scored: pd.DataFrame,
    truth: pd.DataFrame,
    candidates: pd.DataFrame,
    *,
    expression: pd.DataFrame | None = None,
    baselines: Mapping[str, pd.DataFrame] | None = None,
    method_name: str = "attribution",
    title: str = "TF → gene recovery",
):
    """Precision–recall curves of the methods of :func:`grn_recovery` (overall), plus the random
    line at the prevalence. Returns a ``matplotlib.figure.Figure`` built without pyplot, so no
    GUI state is created and nothing needs closing."""
    from matplotlib.figure import Figure

    universe = _universe(candidates)
    t = _truth_pairs(truth).astype({"tf": str, "gene": str})
    y = (
        universe.merge(t[["tf", "gene"]].assign(_t=True), on=["tf", "gene"], how="left")["_t"]
        .notna()
        .to_numpy()
    )
    fig = Figure(figsize=(5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    if 0 < y.sum() < len(y):
        for name, frame in _methods(edges_scored, candidates, expression, baselines, method_name).items():
            score, _, _ = _align(universe, frame)
            prec, rec, _ = precision_recall_curve(y, score)
            ax.step(rec, prec, where="post", label=f"{name} (AUPRC {average_precision_score(y, score):.3f})")
    prev = y.mean() if len(y) else 0.0
    ax.axhline(prev, color="grey", linestyle="--", label=f"random ({prev:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    return fig


# ====================================================================== the recovery report
RECOVERY_COLUMNS = (
    "method",
    "cell_type",
    "n_candidates",
    "n_true",
    "auroc",
    "auprc",
    "prevalence",
    "sign_accuracy",
    "n_signed",
    "n_true_outside",
)


@dataclass(frozen=True)
class RecoverySettings:
    """How the network is scored against a known truth."""

    seed: int = 0  # seed of the random_seeded ranking
    per_cell_type: bool = True  # also score each cell type separately


def empty_recovery() -> pd.DataFrame:
    """The recovery table without rows (a dataset without ground truth)."""
    return pd.DataFrame(
        {
            c: pd.Series(dtype="string" if c in ("method", "cell_type") else "float64")
            for c in RECOVERY_COLUMNS
        }
    )


def network_recovery(
    network: pd.DataFrame,
    truth: pd.DataFrame,
    attr_long: LongTable,
    rna,
    metacell_labels: pd.Series,
    settings: RecoverySettings,
    method_name: str,
):
    """(:func:`grn_recovery` table, :func:`plot_pr_curves` figure) of a :func:`regulatory_network`
    (all candidates) against ``truth`` restricted to its genes, beside the |Pearson r| of ``rna``'s
    log1p CP10k expression and random rankings; per cell type too when ``settings`` say so."""
    edges = network[["tf", "gene", "score", "sign"]]
    candidates = edges[["gene", "tf"]]  # the candidates the models saw
    truth = truth[truth["gene"].isin(set(edges["gene"]))]
    expression = expression_frame(
        rna, [g for g in sorted(set(edges["tf"]) | set(edges["gene"])) if g in rna.var_names]
    )
    cell_type_scores = None
    if settings.per_cell_type:
        cell_type_scores = cell_type_edge_scores(tf_to_gene(attr_long, metacell_labels, n_tfs=None))
    table = grn_recovery(
        edges,
        truth,
        candidates,
        cell_type_scores=cell_type_scores,
        expression=expression,
        metacell_labels=metacell_labels,
        method_name=method_name,
        seed=settings.seed,
    )
    fig = plot_pr_curves(
        edges,
        truth,
        candidates,
        expression=expression,
        method_name=method_name,
        title=f"TF → gene recovery ({edges['gene'].nunique()} genes)",
    )
    return table[list(RECOVERY_COLUMNS)], fig
