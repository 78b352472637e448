"""The progress of ``regnet run``'s gene phase: one line that moves while a batched run is in flight.

The gene assets log where they are (``defs.gene_progress``: one line per training epoch and per
attributed chunk); :class:`RunFollower` reads those lines back from the instance's event log in
a thread, the one channel every way of executing a run shares, and :class:`Progress` turns them
into genes trained / attributed of the total, the epoch of the batch in flight and an ETA.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

import dagster as dg

from regnet_assets.defs.gene_progress import STAGES, GeneProgress, parse_progress

STAGE_WORDS = {"training": "trained", "ablation": "ablated", "attribution": "attributed"}


class Progress:
    """Genes done / trained / attributed of ``total``, the epoch of the run in flight and the ETA.

    The ETA comes from measured rates: once a run has ended, the wall seconds per gene of the
    ended runs (loading, training, attribution, writing: everything a gene costs); during the
    first run, its elapsed time over the share of its training epochs done. Lines are written
    when a run starts or ends, and at most every ``interval`` seconds in between.
    """

    def __init__(
        self,
        total: int,
        write: Callable[[str], None],
        stages: Sequence[str] = STAGES,
        runs: int = 0,
        width: int = 30,
        interval: float = 2.0,
    ):
        self.total, self.write, self.stages, self.runs = total, write, tuple(stages), runs
        self.width, self.interval = width, interval
        self.started = time.monotonic()
        self.done = 0  # genes of the runs that ended
        self.done_seconds = 0.0  # wall time of those runs
        self.stage_done = dict.fromkeys(self.stages, 0)
        self.run, self.run_genes, self.run_started = 0, 0, 0.0
        self.current: dict[str, GeneProgress] = {}
        self.last_write = -math.inf

    def start_run(self, index: int, genes: int) -> None:
        self.run, self.run_genes, self.run_started, self.current = index, genes, time.monotonic(), {}
        self._write()

    def event(self, progress: GeneProgress) -> None:
        """A progress line of the run in flight; written if ``interval`` has passed."""
        if progress.stage in self.stage_done:
            self.current[progress.stage] = progress
            if time.monotonic() - self.last_write >= self.interval:
                self._write()

    def end_run(self, success: bool, note: str = "") -> None:
        """The run in flight ended: all its genes count as done; each stage counts all of them
        when the run succeeded, else the genes its last line said were done."""
        for stage in self.stages:
            seen = self.current.get(stage)
            self.stage_done[stage] += self.run_genes if success else (seen.done if seen else 0)
        self.done += self.run_genes
        self.done_seconds += time.monotonic() - self.run_started
        self.run_genes, self.current = 0, {}
        self._write(note)

    def trained(self, stage: str) -> int:
        """Genes through ``stage`` so far, those of the run in flight included."""
        seen = self.current.get(stage)
        return self.stage_done[stage] + (seen.done if seen else 0)

    def run_fraction(self) -> float:
        """Share of the run in flight done: its stages' fractions, averaged."""
        if not self.run_genes or not self.stages:
            return 0.0
        return sum(self.current[s].fraction if s in self.current else 0.0 for s in self.stages) / len(
            self.stages
        )

    def eta(self) -> float | None:
        """Seconds left, from measured rates; None before anything was measured."""
        in_run = time.monotonic() - self.run_started if self.run_genes else 0.0
        after = self.total - self.done - self.run_genes
        if self.done:
            per_gene = self.done_seconds / self.done
            return per_gene * after + max(0.0, per_gene * self.run_genes - in_run)
        first = self.current.get(self.stages[0]) if self.stages else None
        share = first.fraction if first else 0.0
        if not self.run_genes or share <= 0:
            return None
        run_seconds = in_run / share
        return run_seconds * (1 - share) + run_seconds / self.run_genes * after

    def line(self, note: str = "") -> str:
        fraction = (self.done + self.run_genes * self.run_fraction()) / self.total if self.total else 1.0
        filled = min(self.width, int(self.width * fraction))
        parts = [f"[{'#' * filled}{'.' * (self.width - filled)}] genes {self.done}/{self.total}"]
        parts += [f"{STAGE_WORDS.get(s, s)} {self.trained(s)}/{self.total}" for s in self.stages]
        if self.run_genes:
            training = self.current.get("training")
            epoch = f" epoch {training.epoch}/{training.epochs}" if training and training.epochs else ""
            parts.append(f"run {self.run}/{self.runs or '?'}{epoch}")
        eta = self.eta()
        parts.append(
            f"elapsed {_clock(time.monotonic() - self.started)} ETA {'--:--' if eta is None else _clock(eta)}"
        )
        return " · ".join(parts) + (f"  {note}" if note else "")

    def _write(self, note: str = "") -> None:
        self.last_write = time.monotonic()
        self.write(self.line(note))


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60:02d}:{seconds % 60:02d}"
    )


class RunFollower:
    """Reads the progress lines of the run tagged ``tags`` from the instance's event log, in a
    thread, while the run executes (here or in another process), and hands them to ``on_progress``.

    Use as a context manager around the call that executes the run; leaving it reads what is
    left. ``error`` holds what stopped the following, if anything (the run itself goes on).
    """

    def __init__(
        self,
        instance: dg.DagsterInstance,
        tags: dict[str, str],
        on_progress: Callable[[GeneProgress], None],
        interval: float = 1.0,
    ):
        self.instance, self.tags, self.on_progress, self.interval = instance, tags, on_progress, interval
        self.run_id: str | None = None
        self.cursor: str | None = None
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="regnet-progress", daemon=True)

    def __enter__(self) -> RunFollower:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.error is None:
            self._read()

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._read()
            except Exception as error:  # noqa: BLE001 - a storage hiccup must not stop the run
                self.error = error
                return

    def _read(self) -> None:
        if self.run_id is None:
            ids = self.instance.get_run_ids(dg.RunsFilter(tags=self.tags), limit=1)
            if not ids:
                return
            self.run_id = ids[0]
        while True:
            page = self.instance.get_records_for_run(self.run_id, cursor=self.cursor, limit=1000)
            self.cursor = page.cursor
            for record in page.records:
                entry = record.event_log_entry
                progress = parse_progress(entry.user_message) if entry.dagster_event is None else None
                if progress is not None:
                    self.on_progress(progress)
            if not page.has_more:
                return
