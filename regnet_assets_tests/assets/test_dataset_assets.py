"""The ``dataset`` group end to end, and bad files failing cleanly at the ``multiome`` asset."""

from __future__ import annotations

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from regnet_assets.defs.resources import DatasetResource
from regnet_assets.science.dataset.reading import quiet_mudata, read_multiome
from regnet_assets.storage import query, read_table, refresh_catalog
from regnet_assets_tests.conftest import materialize, tree_digest

DATASET_GROUP = [
    "multiome",
    "peak_gene_links",
    "motif_hits",
    "metacell_multiome",
    "metacells",
    "gene_tf_candidates",
    "genes",
    "truth_tf_gene",
    "truth_signalling",
]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The dataset group materialized once on the small simulated default."""
    import dagster as dg

    storage = tmp_path_factory.mktemp("storage")
    with dg.instance_for_test() as instance:
        result = materialize(DATASET_GROUP, storage, instance)
    assert result.success, result
    return storage


def test_dataset_group_yields_non_empty_views_with_expected_rows(small_run):
    refresh_catalog(small_run)
    mdata = read_multiome(small_run / "dataset" / "simulated.h5mu")
    metacells = read_multiome(small_run / "dataset" / "metacells.h5mu")
    count = lambda t: query(small_run, f"SELECT count(*) AS n FROM {t}")["n"].item()  # noqa: E731
    assert count("peak_gene_links") == len(mdata.uns["peak_to_gene"])
    assert count("metacells") == metacells.n_obs
    assert count("truth_tf_gene") == len(mdata.uns["truth_tf_gene"])
    assert count("truth_signalling") == len(mdata.uns["truth_signalling"])
    assert count("motif_hits") > 0 and count("gene_tf_candidates") > 0
    splits = query(small_run, "SELECT split, count(*) AS n FROM metacells GROUP BY split")
    n = dict(zip(splits["split"], splits["n"]))
    # cells are split 70/15/15 before metacells; each split gets metacells in proportion
    assert abs(n["train"] - 0.7 * metacells.n_obs) <= 2
    assert n["valid"] > 0 and n["test"] > 0 and sum(n.values()) == metacells.n_obs
    genes = read_table(small_run, "genes")
    assert genes["modelable"].sum() == mdata.uns["peak_to_gene"]["gene"].nunique()
    assert (small_run / "figures" / "dataset_qc.png").stat().st_size > 1000  # #16: the QC plot


def _drop_mod(name):
    def edit(m):
        mods = {k: v for k, v in m.mod.items() if k != name}
        with quiet_mudata():
            out = mudata.MuData(mods)
        out.uns.update(m.uns)
        return out

    return edit


def _edit_x(mod, fn):
    def edit(m):
        x = m[mod].X.toarray().astype(np.float32)
        fn(x)
        m.mod[mod].X = sp.csr_matrix(x)
        return m

    return edit


def _rename(mod, fn):
    def edit(m):
        names = list(m[mod].var_names)
        fn(names)
        m.mod[mod].var_names = names
        m.uns["peak_to_gene"] = m.uns["peak_to_gene"].iloc[0:0]
        return m

    return edit


def _p2g(fn):
    def edit(m):
        m.uns["peak_to_gene"] = fn(pd.DataFrame(m.uns["peak_to_gene"]))
        return m

    return edit


def _unshared_cells(m):
    atac = m["atac"].copy()
    atac.obs_names = [f"other{i}" for i in range(atac.n_obs)]
    with quiet_mudata():
        out = mudata.MuData({"rna": m["rna"], "atac": atac})
    out.uns.update(m.uns)
    return out


def _sequences(fn):
    def edit(m):
        seqs = list(m["atac"].var["sequence"])
        fn(seqs)
        m.mod["atac"].var["sequence"] = seqs
        return m

    return edit


def _drop_groupby(m):
    for table in (m.obs, m["rna"].obs, m["atac"].obs):
        for col in [c for c in table.columns if c.endswith("cell_type")]:
            del table[col]
    return m


def _set(seq_list, i, value):
    seq_list[i] = value


BAD_DATASETS = {
    "missing rna": (_drop_mod("rna"), "rna"),
    "missing atac": (_drop_mod("atac"), "atac"),
    "cells not shared": (_unshared_cells, "obs_names"),
    "negative count": (_edit_x("rna", lambda x: x.__setitem__((0, 0), -1)), "rna"),
    "NaN count": (_edit_x("atac", lambda x: x.__setitem__((1, 1), np.nan)), "atac"),
    "non-integer count": (_edit_x("rna", lambda x: x.__setitem__((2, 0), 0.5)), "rna"),
    "duplicate genes": (_rename("rna", lambda n: n.__setitem__(1, n[0])), "var_names"),
    "duplicate peaks": (_rename("atac", lambda n: n.__setitem__(1, n[0])), "var_names"),
    "peak name": (_rename("atac", lambda n: n.__setitem__(0, "chr1:100_200")), "var_names"),
    "p2g column": (_p2g(lambda d: d.drop(columns="distance")), "peak_to_gene"),
    "p2g unknown gene": (_p2g(lambda d: d.assign(gene=["NOPE"] + list(d["gene"][1:]))), "peak_to_gene"),
    "p2g unknown peak": (_p2g(lambda d: d.assign(peak=["chr9:1-2"] + list(d["peak"][1:]))), "peak_to_gene"),
    "no gene with 3 peaks": (_p2g(lambda d: d.groupby("gene").head(2)), "peak_to_gene"),
    "missing groupby": (_drop_groupby, "cell_type"),
    "sequence length": (_sequences(lambda s: _set(s, 0, s[0][:-1])), "sequence"),
    "sequence letters": (_sequences(lambda s: _set(s, 0, "X" * len(s[0]))), "sequence"),
}


@pytest.fixture(scope="module")
def good_mdata(small_run):
    return small_run / "dataset" / "simulated.h5mu"


@pytest.mark.parametrize("case", list(BAD_DATASETS))
def test_bad_dataset_fails_naming_the_field_and_writes_nothing(
    case, small_run, good_mdata, tmp_path, instance
):
    edit, field = BAD_DATASETS[case]
    bad = edit(read_multiome(good_mdata))
    path = tmp_path / "bad.h5mu"
    with quiet_mudata():
        bad.write(str(path))
    _assert_rejected(path, field, small_run, instance)


@pytest.mark.parametrize("content,field", [(b"not hdf5 at all", "HDF5"), (None, "MuData")])
def test_non_hdf5_or_non_mudata_file_is_rejected(content, field, small_run, tmp_path, instance):
    path = tmp_path / "bad.h5mu"
    if content is None:
        ad.AnnData(np.ones((3, 2), dtype=np.float32)).write_h5ad(path)
    else:
        path.write_bytes(content)
    _assert_rejected(path, field, small_run, instance)


def _assert_rejected(path, field, storage, instance):
    before = tree_digest(storage)
    result = materialize(DATASET_GROUP, storage, instance, dataset=DatasetResource(path=str(path)))
    assert not result.success
    failure = result.get_step_failure_events()[0]
    assert failure.step_key == "multiome"
    assert field in str(failure.event_specific_data.error.to_string())
    assert tree_digest(storage) == before
