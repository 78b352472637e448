"""The bad-input corpus (``corpus.py``) against the real asset graph.

For every case: the run fails at the named step with a message naming the problem, nothing under
the storage folder is written or changed (``tree_digest`` before and after), and the earlier
results still read back through the DuckDB views.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from regnet_assets.storage import query, read_table, refresh_catalog, table_names
from regnet_assets_tests import corpus
from regnet_assets_tests.conftest import materialize, tree_digest

ONE_EPOCH = {"ops": {"gene_models": {"config": {"epochs": 1}}}}


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """Earlier results to protect: the dataset group, the PKN and its DAG, two trained genes.

    An in-memory instance: the cases need its dynamic partitions, not a run history on disk
    (a SQLite event log per run would be most of each case's time).
    """
    storage = tmp_path_factory.mktemp("storage")
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize(corpus.DATASET_GROUP, storage, instance).success
        network = materialize(["pkn_edges", "pruned_dag_edges", "pruning_summary"], storage, instance)
        assert network.success, network.get_step_failure_events()
        genes = read_table(storage, "genes").query("modelable")["gene"].tolist()[:2]
        instance.add_dynamic_partitions("genes", genes)
        for gene in genes:
            assert materialize(
                corpus.MODEL_TABLES, storage, instance, partition_key=gene, run_config=ONE_EPOCH
            ).success
        refresh_catalog(storage)
        yield storage, instance, genes


def _counts(storage) -> dict[str, int]:
    names = table_names(storage)
    sql = " UNION ALL ".join(f"SELECT '{n}' AS t, count(*) AS n FROM {n}" for n in names)
    return dict(query(storage, sql).itertuples(index=False))


def _run(case: corpus.Case, run: dict, storage, instance) -> tuple[str | None, str]:
    """(failing step or None when the run did not start, the error text); asserts it failed."""
    try:
        result = materialize(
            run["selection"],
            storage,
            instance,
            dataset=run.get("dataset"),
            run_config=run.get("run_config", {}),
            partition_key=run.get("partition_key"),
        )
    except (dg.DagsterError, ValueError) as error:  # config rejected before the run started
        return None, str(error)
    assert not result.success, f"{case.name}: the run succeeded"
    failure = result.get_step_failure_events()[0]
    return failure.step_key, error_messages(failure.event_specific_data.error)


def error_messages(error) -> str:
    """The messages of an error and its causes, without stack traces (whose source lines would
    match any field name the code mentions)."""
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause or error.context
    return "\n".join(messages)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=c.known_gap)] if c.known_gap else []
        )
        for c in corpus.CORPUS
    ],
)
def test_bad_input_fails_naming_the_problem_and_changes_nothing(case, earlier, tmp_path):
    storage, instance, genes = earlier
    before, counts, around = tree_digest(storage), _counts(storage), set(storage.parent.iterdir())
    run = corpus.build(case, corpus.Env(storage / "dataset" / "simulated.h5mu", tmp_path, genes))

    step, message = _run(case, run, storage, instance)

    assert step in (case.step, None), f"failed at {step}, expected {case.step}: {message[-500:]}"
    if step is None:
        assert case.step in message, message[-500:]
    assert case.expect.lower() in message.lower(), message[-1500:]
    assert tree_digest(storage) == before
    assert _counts(storage) == counts
    assert set(storage.parent.iterdir()) == around  # nothing written beside the storage either


def test_reliability_md_lists_the_corpus():
    """RELIABILITY.md's corpus section is the corpus (regenerate: python -m regnet_assets_tests.corpus)."""
    assert len(corpus.CORPUS) >= 30
    kinds = {c.kind for c in corpus.CORPUS}
    assert kinds == {"h5mu", "pkn", "config"}
    assert corpus.documented_cases() == corpus.describe(), (
        "RELIABILITY.md is out of date: run `python -m regnet_assets_tests.corpus`"
    )


def test_reliability_md_names_only_existing_tests():
    import re
    from pathlib import Path

    text = corpus.RELIABILITY_MD.read_text(encoding="utf-8")
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", text))
    sources = "".join(p.read_text() for p in Path(__file__).parents[1].rglob("test_*.py"))
    defined = set(re.findall(r"^def (test_[a-z0-9_]+)", sources, flags=re.M))
    assert named and named <= defined, sorted(named - defined)


@pytest.mark.parametrize("case", corpus.LOAD_CASES, ids=lambda c: c.name)
def test_real_file_spellings_load_through_the_dataset_group(case, earlier, tmp_path):
    """Files as other tools write them load, and give the same links (by |distance|), the same
    modelable genes and the same candidate TFs as the canonical file they were made from."""
    from regnet_assets.defs.resources import DatasetResource
    from regnet_assets.science.dataset.names import canonical_peak_names
    from regnet_assets.science.dataset.reading import quiet_mudata, read_multiome

    storage, instance, _ = earlier
    mdata = read_multiome(storage / "dataset" / "simulated.h5mu")
    case.edit(mdata)
    path = tmp_path / "real.h5mu"
    with quiet_mudata():
        mdata.write(str(path))
    out = tmp_path / "storage"
    result = materialize(corpus.DATASET_GROUP, out, instance, dataset=DatasetResource(path=str(path)))
    assert result.success, error_messages(result.get_step_failure_events()[0].event_specific_data.error)

    def links(root):
        t = read_table(root, "peak_gene_links")
        return t.assign(peak=canonical_peak_names(t["peak"]), distance=t["distance"].abs())

    pd.testing.assert_frame_equal(links(out), links(storage), check_like=True)
    for name in ("genes", "gene_tf_candidates"):
        pd.testing.assert_frame_equal(read_table(out, name), read_table(storage, name), check_like=True)
    if case.name == "p2g-signed-distance":
        assert (read_table(out, "peak_gene_links")["distance"] < 0).any()
