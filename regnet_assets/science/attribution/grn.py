"""From TF attributions to a TF → gene regulatory network (scored against a truth in :mod:`.recovery`).

Input everywhere is the long attribution table of :func:`.attribution.attribution_table`
(``gene, metacell, tf, attribution``, log-rate space), as a DataFrame or as the Parquet files
that hold it (reduced in DuckDB without loading it, see :mod:`.tables`). Edges are
``tf → gene`` pairs among a gene's candidate TFs (the TFs its model saw).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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
    net["top_overall"] = net["top_overall"].notna()  # True where the merge found the edge
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
