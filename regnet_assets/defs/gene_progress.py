"""Gene-phase progress as Dagster run logs: the lines the batched gene assets write, read back.

``gene_models`` and ``ablated_gene_correlation`` log a line after every training epoch and
``tf_attribution`` after every chunk of genes it attributes. They are ordinary run logs (the UI's run page shows them); ``regnet run``
follows the same lines in the instance's event log, so its progress bar moves while a run is in
flight wherever the run executes (in process, a subprocess, the daemon of a backfill).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# Each stage and the gene asset whose run logs it.
STAGES = {"training": "gene_models", "ablation": "ablated_gene_correlation", "attribution": "tf_attribution"}
_LINE = re.compile(
    rf"^progress (?P<stage>{'|'.join(STAGES)}): (?P<done>\d+)/(?P<total>\d+) gene\(s\) of this run done"
    r"(?:; (?P<current>\d+) at epoch (?P<epoch>\d+)/(?P<epochs>\d+))?$"
)


@dataclass(frozen=True)
class GeneProgress:
    """Where one run's stage is: ``done`` of its ``total`` genes finished; while training, the
    ``current`` genes trained together have just finished epoch ``epoch`` of ``epochs``."""

    stage: str
    done: int
    total: int
    current: int = 0
    epoch: int = 0
    epochs: int = 0

    def message(self) -> str:
        now = f"; {self.current} at epoch {self.epoch}/{self.epochs}" if self.epochs else ""
        return f"progress {self.stage}: {self.done}/{self.total} gene(s) of this run done{now}"

    @property
    def fraction(self) -> float:
        """Share of this stage's work done, the genes in training counted by their epochs."""
        if not self.total:
            return 1.0
        partial = self.current * self.epoch / self.epochs if self.epochs else 0.0
        return min(1.0, (self.done + partial) / self.total)


def parse_progress(message: str) -> GeneProgress | None:
    """The :class:`GeneProgress` a log line states, or None for any other line."""
    match = _LINE.match(message or "")
    if match is None:
        return None
    n = {k: int(v) for k, v in match.groupdict().items() if k != "stage" and v is not None}
    return GeneProgress(match["stage"], **n)


class TrainingProgress:
    """The trainer's per-epoch callback (``train_genes(progress=...)``): logs one progress line
    per epoch; genes of the chunks before the current one are done. ``end_call`` after each
    ``train_genes`` call when there are several (the ablation trains one per config); ``finish``
    logs the end (the last chunk may stop early, before its last epoch)."""

    def __init__(self, log: Callable[[str], None], total: int, stage: str = "training"):
        self.log, self.total, self.stage = log, total, stage
        self.done, self.chunk, self.chunk_genes = 0, 0, 0

    def end_call(self) -> None:
        self.done, self.chunk, self.chunk_genes = self.done + self.chunk_genes, 0, 0

    def __call__(self, event: dict) -> None:
        if event.get("chunk", 0) != self.chunk:
            self.done += self.chunk_genes
            self.chunk = event.get("chunk", 0)
        self.chunk_genes = len(event.get("genes", ()))
        epochs = int(event.get("epochs", 0))
        self.log(
            GeneProgress(
                self.stage, self.done, self.total, self.chunk_genes, int(event.get("epoch", 0)), epochs
            ).message()
        )

    def finish(self) -> None:
        self.log(GeneProgress(self.stage, self.total, self.total).message())


def attribution_progress(log: Callable[[str], None], total: int) -> Callable[[int], None]:
    """The attribution's per-chunk callback: ``done`` genes of the run's ``total`` attributed."""
    return lambda done: log(GeneProgress("attribution", done, total).message())
