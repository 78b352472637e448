"""``regnet run``'s gene-phase progress: per-epoch lines logged by the assets, followed live.

One real batched run of two genes with three epochs: the assets' progress lines are Dagster run
logs, the runner's reporter receives every epoch while the run is still executing, and the bar
it writes shows the epochs, the trained / attributed counts and an ETA.
"""

import re
import time

import dagster as dg
import pytest

from regnet_assets.defs.gene_progress import GeneProgress, TrainingProgress, parse_progress
from regnet_assets.defs.resources import DatasetResource
from regnet_assets.defs.sensors import RANGE_START, register_genes
from regnet_assets.operations import progress as progress_module
from regnet_assets.operations.runner import run_graph

EPOCHS = 3
CONFIG = {
    "ops": {
        "gene_models": {"config": {"epochs": EPOCHS, "genes_per_batch": 1}},
        "tf_attribution": {"config": {"n_steps": 8}},
    }
}


def test_progress_lines_round_trip_and_count_epochs():
    lines = []
    log = TrainingProgress(lines.append, 5)
    for chunk, genes in ((0, ["a", "b", "c"]), (1, ["d", "e"])):
        for epoch in (1, 2):
            log({"chunk": chunk, "n_chunks": 2, "epoch": epoch, "epochs": 2, "genes": genes})
    log.finish()
    seen = [parse_progress(line) for line in lines]
    assert [(p.done, p.current, p.epoch) for p in seen] == [
        (0, 3, 1),
        (0, 3, 2),
        (3, 2, 1),
        (3, 2, 2),
        (5, 0, 0),
    ]
    assert [p.fraction for p in seen] == [0.3, 0.6, 0.8, 1.0, 1.0]
    assert parse_progress("batch of 2 gene(s): 2 trained") is None
    assert parse_progress(GeneProgress("attribution", 1, 2).message()) == GeneProgress("attribution", 1, 2)


def test_reporter_receives_every_epoch_while_the_batched_run_executes(tmp_path, monkeypatch):
    received = []  # (progress, wall time it arrived)
    event = progress_module.Progress.event

    def record(self, progress):
        received.append((progress, time.time()))
        event(self, progress)

    monkeypatch.setattr(progress_module.Progress, "event", record)
    monkeypatch.setattr(progress_module.Progress, "__init__", _no_throttle(progress_module.Progress.__init__))
    lines = []
    with dg.instance_for_test() as instance:
        dataset = DatasetResource(preset="small")
        assert run_graph(instance, tmp_path, dataset, select="group:dataset", echo=lambda _: None).success
        genes = register_genes(instance, tmp_path)[:2]
        summary = run_graph(
            instance,
            tmp_path,
            dataset,
            device="cpu",
            select="key:gene_models, key:ablated_gene_correlation, key:tf_attribution",
            genes=genes,
            run_config=CONFIG,
            echo=lambda _: None,
            progress=lines.append,
        )
        assert summary.success and summary.genes_done == 2, summary.failures
        # the batch's two waves: training, then what reads the models (ablation, attribution)
        runs = [r for r in reversed(instance.get_runs()) if r.tags.get(RANGE_START)]
        assert len(runs) == 2
        logged = [
            e.user_message for r in runs for e in instance.all_logs(r.run_id) if e.dagster_event is None
        ]
        ended = instance.get_run_stats(runs[0].run_id).end_time

    training = [p for p, _ in received if p.stage == "training"]
    # genes_per_batch 1: each gene trains alone, three epochs each, then the end of training
    assert [(p.done, p.current, p.epoch) for p in training] == [
        (0, 1, 1),
        (0, 1, 2),
        (0, 1, 3),
        (1, 1, 1),
        (1, 1, 2),
        (1, 1, 3),
        (2, 0, 0),
    ]
    # the ablation retrains each gene (TF inputs zeroed) and reports its epochs the same way
    ablation = [(p.done, p.current, p.epoch) for p, _ in received if p.stage == "ablation"]
    assert ablation[0] == (0, 1, 1) and (1, 1, 1) in ablation and ablation[-1] == (2, 0, 0)
    assert [p.done for p, _ in received if p.stage == "attribution"][-1] == 2
    assert [p.message() for p, _ in received] == [m for m in logged if parse_progress(m)]  # the run logs
    assert min(t for _, t in received) < ended  # followed while the run was executing, not after
    assert any(
        re.search(rf"trained 0/2 .*run 1/1 epoch {e}/{EPOCHS}", line) for line in lines for e in (1, 2)
    )
    assert re.search(
        r"genes 2/2 · trained 2/2 · ablated 2/2 · attributed 2/2 .*ETA 00:00  run 1/1 ok", lines[-1]
    )
    assert any("ETA --:--" not in line for line in lines[1:-1])  # an ETA while the run was in flight


def _no_throttle(init):
    def wrapped(self, *args, **kwargs):
        init(self, *args, **{**kwargs, "interval": 0.0})

    return wrapped


@pytest.mark.parametrize("done, expected", [(0, None), (4, 30.0)])
def test_eta_is_measured_seconds_per_gene_times_genes_left(monkeypatch, done, expected):
    now = [100.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: now[0])
    bar = progress_module.Progress(10, lambda _: None, interval=0.0)
    if done:
        bar.start_run(1, 4)
        now[0] += 20.0
        bar.end_run(True)
    assert bar.eta() == expected  # 20 s for 4 genes: 5 s per gene, 6 genes left
