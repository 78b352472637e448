"""Each representation the reports compare, as an observations × features matrix.

- ``predicted_expression``: the per-gene models' predicted counts, log1p CP10k with the metacell's
  observed RNA total, so observed and predicted expression live on one scale;
- ``tf_activity``: per metacell and TF, the sign-aligned mean Integrated-Gradients attribution over
  the TF's target genes;
- ``kpnn_latent``: the KPNN's hidden-node activations of the cells each fold held out.

:func:`role_labels` and :func:`cell_labels` give the ``cell_type`` / ``batch`` labels the scores use.
"""

from __future__ import annotations

import pandas as pd

from regnet_assets.science.attribution.grn import attribution_view
from regnet_assets.science.common.normalise import log_cp10k
from regnet_assets.science.common.obs import obs_column
from regnet_assets.science.common.tables import LongTable, connect

__all__ = ["BATCH", "predicted_expression", "tf_activity", "kpnn_latent", "role_labels", "cell_labels"]

#: The obs column read as the technical (batch) label.
BATCH = "batch"


def predicted_expression(predictions: pd.DataFrame, totals: pd.Series) -> pd.DataFrame:
    """Metacells x modelled genes: ``log1p(predicted / observed RNA total * 1e4)``.

    ``predictions``: columns metacell, gene, predicted (count scale, the models' Poisson rate).
    The observed total puts predictions on the scale of :func:`expression_frame`. Genes without a
    prediction for every metacell are dropped (a partially written gene would bias the PCA).
    """
    wide = predictions.pivot_table(index="metacell", columns="gene", values="predicted", aggfunc="first")
    wide = wide.dropna(axis=1, how="any")
    wide.index = wide.index.astype(str)
    tot = totals.astype(float).reindex(wide.index)
    if tot.isna().any():
        raise ValueError(f"no RNA total for metacells {list(tot.index[tot.isna()][:5])}")
    out = log_cp10k(wide.to_numpy(float), tot.to_numpy())
    return pd.DataFrame(out, index=wide.index, columns=wide.columns.astype(str))


def tf_activity(attributions: LongTable) -> pd.DataFrame:
    """Metacells x TFs: the sign-aligned mean attribution of each TF over its target genes.

    ``attributions``: long (gene, metacell, tf, attribution), Integrated Gradients of each gene's
    predicted log-rate w.r.t. the TF's expression, as a DataFrame or its Parquet files. Each
    (gene, TF) edge is multiplied by the sign of its mean attribution over metacells, so an
    activator and a repressor both count positively when the TF is doing more of what it does to
    that gene; a plain signed mean would let the two cancel, and a mean of |attribution| would lose
    the per-metacell direction. An edge whose mean is exactly 0 contributes 0. The result is the
    TF's regulatory activity in the models' log-rate units.
    """
    with connect(attr=attributions) as con:
        attribution_view(con, "attributions")
        long = con.sql("""
            WITH edge AS (SELECT gene, tf, sign(avg(attribution)) AS s FROM a GROUP BY ALL)
            SELECT metacell, tf, avg(edge.s * a.attribution) AS activity
            FROM a JOIN edge USING (gene, tf) GROUP BY ALL""").df()
    wide = long.pivot(index="metacell", columns="tf", values="activity")
    wide.index = wide.index.astype(str).rename("metacell")
    wide.columns = wide.columns.astype(str).rename("tf")
    return wide.sort_index().sort_index(axis=1)


def kpnn_latent(activations: pd.DataFrame, network: str) -> tuple[pd.DataFrame, pd.Series]:
    """(cells x hidden nodes, the fold each cell was held out in) for one KPNN network.

    ``activations``: long (network, fold, cell, node, activation) of held-out cells. Each cell is
    held out exactly once, so the pooled matrix has one row per cell (from its own fold's model).
    """
    sub = activations[activations["network"] == network]
    if sub.empty:
        raise ValueError(f"no activations for KPNN network {network!r}")
    wide = sub.pivot_table(index=["cell", "fold"], columns="node", values="activation", aggfunc="first")
    wide = wide.reset_index(level="fold")
    folds = wide.pop("fold").astype(int)
    if not wide.index.is_unique:
        raise ValueError(f"KPNN network {network!r}: a cell is held out in more than one fold")
    wide.index = wide.index.astype(str)
    wide.columns = wide.columns.astype(str)
    folds.index = wide.index
    return wide, folds


def role_labels(frame: pd.DataFrame, groupby: str, batch: pd.Series | None = None) -> pd.DataFrame:
    """obs-indexed ``cell_type`` / ``batch`` columns (the roles the scores use) of an obs table."""
    out = pd.DataFrame(index=frame.index)
    if groupby in frame.columns:
        out["cell_type"] = frame[groupby].astype(object)
    if batch is not None:
        out["batch"] = batch.reindex(frame.index).astype(object)
    elif BATCH in frame.columns:
        out["batch"] = frame[BATCH].astype(object)
    return out


def cell_labels(mdata, groupby: str) -> pd.DataFrame:
    """Per cell of ``mdata``, its ``cell_type`` (``groupby``) and ``batch`` labels where present."""
    obs = pd.DataFrame(index=pd.Index(mdata.obs_names.astype(str)))
    for role, name in (("cell_type", groupby), ("batch", BATCH)):
        col = obs_column(mdata, name)
        if col is not None:
            obs[role] = col.astype(object).to_numpy()
    return obs
