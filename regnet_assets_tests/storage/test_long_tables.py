"""The attribution reductions run in DuckDB on a DataFrame or straight on its Parquet files
(the partitions of ``tf_attribution``): both give the same result, which matches a hand
computation and the pandas groupby it replaced, and is bit-identical from run to run. The IO
manager gives an input annotated ``ParquetFiles`` those files."""

import numpy as np
import pandas as pd
import pytest

from regnet_assets.science.attribution import grn as grn
from regnet_assets.science.reports import matrices as rep
from regnet_assets.storage import write_table
from regnet_assets.storage.parquet import table_files


def _attributions(seed=0, genes=12, metacells=30, tfs=5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        (f"G{g}", f"m{m:02d}", f"T{t}", float(rng.normal(loc=(-1) ** (g + t))))
        for g in range(genes)
        for m in range(metacells)
        for t in range(tfs)
        if (g + t) % 4
    ]
    return pd.DataFrame(rows, columns=["gene", "metacell", "tf", "attribution"])


@pytest.fixture
def stored(tmp_path):
    attr = _attributions()
    for gene, part in attr.groupby("gene"):
        write_table(tmp_path, "tf_attribution", part.reset_index(drop=True), key=gene)
    write_table(tmp_path, "tf_attribution", attr.iloc[0:0].astype({"attribution": "float32"}), key="EMPTY")
    return attr, table_files(tmp_path, "tf_attribution")


def test_tf_activity_hand_computed():
    attr = pd.DataFrame(
        {
            "gene": ["G1", "G1", "G2", "G2", "G2", "G2"],
            "metacell": ["a", "b", "a", "b", "a", "b"],
            "tf": ["A", "A", "A", "A", "R", "R"],
            "attribution": [1.0, 3.0, -2.0, -4.0, 0.5, -0.5],
        }
    )
    act = rep.tf_activity(attr)
    # A: activates G1 (sign +), represses G2 (sign −): aligned a = mean(1, 2), b = mean(3, 4);
    # R on G2 has mean exactly 0, so it contributes 0.
    assert list(act.columns) == ["A", "R"] and list(act.index) == ["a", "b"]
    assert act.loc["a", "A"] == 1.5 and act.loc["b", "A"] == 3.5
    assert act.loc["a", "R"] == 0.0 and act.loc["b", "R"] == 0.0


def test_parquet_files_give_the_frame_result(stored):
    attr, files = stored
    labels = pd.Series({f"m{m:02d}": "T" if m % 3 else "B" for m in range(30)})
    for reduce in (grn.edge_scores, rep.tf_activity, lambda a: grn.tf_to_gene(a, labels, n_tfs=None)):
        pd.testing.assert_frame_equal(reduce(files), reduce(attr))


def test_the_same_as_a_pandas_groupby_and_bit_identical_twice(stored):
    attr, files = stored
    g = attr.assign(abs_attr=attr["attribution"].abs()).groupby(["tf", "gene"])
    expected = pd.DataFrame(
        {"score": g["abs_attr"].mean(), "mean_attr": g["attribution"].mean()}
    ).reset_index()
    scores = grn.edge_scores(files)
    np.testing.assert_allclose(scores["score"], expected["score"], rtol=1e-12)
    np.testing.assert_allclose(scores["mean_attr"], expected["mean_attr"], rtol=1e-12)
    assert (scores[["tf", "gene"]].to_numpy() == expected[["tf", "gene"]].to_numpy()).all()
    pd.testing.assert_frame_equal(grn.edge_scores(files), scores, check_exact=True)
    pd.testing.assert_frame_equal(rep.tf_activity(files), rep.tf_activity(files), check_exact=True)


def test_missing_columns_and_no_files_are_named():
    with pytest.raises(ValueError, match=r"attr_long lacks columns \['attribution'\]"):
        grn.edge_scores(pd.DataFrame({"gene": ["G"], "metacell": ["m"], "tf": ["T"]}))
    with pytest.raises(ValueError, match="no Parquet files"):
        rep.tf_activity([])


def test_a_parquet_files_input_gets_the_present_partitions_files(tmp_path):
    """The IO manager hands a ``ParquetFiles`` input the files (a missing partition left out),
    and a DataFrame input the rows of the same partitions."""
    import dagster as dg

    from regnet_assets.defs.io_managers import ParquetIOManager
    from regnet_assets.defs.resources import StorageResource
    from regnet_assets.storage.parquet import ParquetFiles

    genes = dg.StaticPartitionsDefinition(["A", "B", "C"])
    seen = {}

    @dg.asset(partitions_def=genes, io_manager_key="tables")
    def per_gene(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return pd.DataFrame({"gene": [context.partition_key] * 2, "value": [1.0, 2.0]})

    @dg.asset(io_manager_key="tables")
    def as_files(per_gene: ParquetFiles) -> pd.DataFrame:
        seen["files"] = per_gene
        return pd.DataFrame({"n": [len(per_gene)]})

    @dg.asset(io_manager_key="tables")
    def as_frame(per_gene: pd.DataFrame) -> pd.DataFrame:
        seen["frame"] = per_gene
        return pd.DataFrame({"n": [len(per_gene)]})

    storage = StorageResource(root=str(tmp_path))
    resources = {"tables": ParquetIOManager(storage=storage)}
    for key in ("A", "C"):
        assert dg.materialize([per_gene], partition_key=key, resources=resources).success
    assert dg.materialize(
        [per_gene, as_files, as_frame], selection=[as_files, as_frame], resources=resources
    ).success
    assert isinstance(seen["files"], ParquetFiles)
    assert [p.parent.name for p in seen["files"]] == ["gene=A", "gene=C"]
    assert sorted(seen["frame"]["gene"]) == ["A", "A", "C", "C"]
