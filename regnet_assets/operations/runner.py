"""Materialize the graph in the order partitions allow (what ``regnet run`` does).

1. the selected non-partitioned assets not downstream of gene partitions (the dataset);
2. register the modelable genes as ``genes`` partitions (the sensor's logic);
3. the selected gene-partitioned assets in batched runs over contiguous key ranges, the batch
   size being the assets' ``BackfillPolicy.multi_run`` (the same batches a UI backfill makes);
4. the selected assets downstream (summaries, reports, the DuckDB catalog).

Each phase is ordinary Dagster runs against the given instance, visible in the UI, one per wave
of dependencies (:func:`waves`), so a failure marks only the assets that ran. A batch that fails
does not stop the other batches; phase 4 is skipped after a failure, and the result names every
failing asset and gene range.
"""

import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from regnet_assets.defs.definitions import ALL_ASSETS, ALL_CHECKS, defs, make_resources
from regnet_assets.defs.gene_progress import STAGES
from regnet_assets.defs.instance import asset_statuses, contiguous_batches, genes_per_run, partitioned_keys
from regnet_assets.defs.partitions import GENES
from regnet_assets.defs.pools import initialize_pools
from regnet_assets.defs.resources import DatasetResource
from regnet_assets.defs.sensors import RANGE_END, RANGE_START, register_genes
from regnet_assets.operations.progress import Progress, RunFollower

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
SESSION = "regnet/session"  # the same value on every run of one run_graph call
RUN = "regnet/run"  # the run's number within its session


class SelectionError(ValueError):
    """A ``--select`` or ``--genes`` that names nothing runnable."""


@dataclass
class RunSummary:
    """What a ``run_graph`` call did: runs, genes and failures (empty when all succeeded)."""

    runs: int = 0
    assets: set = field(default_factory=set)
    genes_total: int = 0
    genes_done: int = 0
    genes_new: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def success(self) -> bool:
        return not self.failures


def resolve_selection(select: str | None) -> set[dg.AssetKey]:
    """Dagster's selection syntax (``group:models``, ``key:gene_models+``, ``a, b``) to keys,
    widened to whole multi-assets (their outputs are computed together)."""
    graph = defs.resolve_asset_graph()
    if not select:
        return set(graph.get_all_asset_keys())
    keys: set[dg.AssetKey] = set()
    for part in [p.strip() for p in select.split(",") if p.strip()]:
        try:
            with warnings.catch_warnings():  # Dagster's own parser uses a beta parameter of its API
                warnings.simplefilter("ignore", dg.BetaWarning)
                keys |= dg.AssetSelection.from_string(part).resolve(graph)
        except Exception as error:  # noqa: BLE001 - Dagster raises several kinds here
            raise SelectionError(f"--select {part!r}: {error}") from error
    if not keys:
        raise SelectionError(f"--select {select!r} matches no asset")
    return _whole_multi_assets(keys)


def _whole_multi_assets(keys: set[dg.AssetKey]) -> set[dg.AssetKey]:
    """``keys`` widened to every output of the multi-assets they touch (computed together)."""
    for a in ALL_ASSETS:
        if keys & set(a.keys) and not a.can_subset:
            keys = keys | set(a.keys)
    return keys


def waves(selection: set[dg.AssetKey]) -> list[set[dg.AssetKey]]:
    """``selection`` in dependency order, each wave one run whose inputs earlier waves made.

    Why: the UI shows every asset a failed run planned as *Failed*, whether its step ran or
    not; launched wave by wave, a failure leaves what comes after it unplanned, as it was.
    """
    graph = defs.resolve_asset_graph()
    step = {key: a for a in ALL_ASSETS for key in a.keys}  # a multi-asset's outputs go together
    left, out = set(selection), []
    while left:
        wave = {
            k for k in left if not any(p in left and step[p] is not step[k] for p in graph.get(k).parent_keys)
        }
        assert wave, f"no asset of {sorted(left)} has its inputs ready"
        out.append(wave)
        left -= wave
    return out


def _pending(instance: dg.DagsterInstance, keys: set[dg.AssetKey]) -> set[dg.AssetKey]:
    """The non-partitioned ``keys`` that are missing, failed or older than one of their inputs."""
    if not keys:
        return keys
    statuses = asset_statuses(instance, ALL_ASSETS, keys)
    return _whole_multi_assets({k for k, st in statuses.items() if st.state != "materialized"}) & keys


def _pending_genes(instance: dg.DagsterInstance, keys: set[dg.AssetKey], genes: list[str]) -> list[str]:
    """The ``genes`` for which any of the gene assets ``keys`` is missing, failed or stale."""
    statuses = asset_statuses(instance, ALL_ASSETS, keys)
    pending = {g for st in statuses.values() for g in (*st.missing, *st.stale, *st.failed)}
    return [g for g in genes if g in pending]


def _phases(selected: set[dg.AssetKey]) -> tuple[set, set, set]:
    graph = defs.resolve_asset_graph()
    part_keys = partitioned_keys(ALL_ASSETS)
    after = dg.AssetSelection.assets(*part_keys).downstream().resolve(graph) - part_keys
    before = graph.get_all_asset_keys() - part_keys - after
    return before & selected, part_keys & selected, after & selected


def failure_message(result: dg.ExecuteInProcessResult, partitions: str = "") -> str | None:
    """Name the failing asset(s) (and gene range) and say why, or None when all succeeded."""
    if result.success:
        return None
    lines = []
    where = f", genes {partitions}" if partitions else ""
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error
        cause = error.cause.message if error and error.cause else (error.message if error else "")
        lines.append(f"asset {event.step_key!r}{where}: {(cause or '').strip()}")
    return "; ".join(lines) or f"run failed{where}"


def gene_batches(instance: dg.DagsterInstance, genes: Sequence[str] | None, size: int) -> list[list[str]]:
    """The requested genes (default: all) cut into contiguous ranges in insertion order."""
    order = instance.get_dynamic_partitions(GENES)
    wanted = list(order) if genes is None else list(dict.fromkeys(genes))
    unknown = sorted(set(wanted) - set(order))
    if unknown:
        raise SelectionError(
            f"--genes: {len(unknown)} gene(s) are not modelable genes of the dataset "
            f"(not registered partitions): {', '.join(unknown[:10])}"
        )
    return contiguous_batches(order, wanted, size)


def run_graph(
    instance: dg.DagsterInstance,
    root: Path,
    dataset: DatasetResource,
    device: str = "auto",
    batch_size: int | None = None,
    echo: Callable[[str], None] = print,
    select: str | None = None,
    genes: Sequence[str] | None = None,
    run_config: dict | None = None,
    progress: Callable[[str], None] | None = None,
    missing_only: bool = False,
) -> RunSummary:
    """Run the selected phases; the summary lists failures (empty when everything succeeded).

    ``missing_only``: in each phase only what is missing, failed or older than its inputs (resume
    an interrupted run; train new genes without retraining the others).
    """
    started = time.monotonic()
    summary = RunSummary()
    resources = make_resources(str(root), dataset, device)
    before, partitioned, after = _phases(resolve_selection(select))
    config = {**QUIET, **(run_config or {})}
    size = batch_size or genes_per_run(ALL_ASSETS)

    session = uuid.uuid4().hex
    graph = defs.resolve_asset_graph()

    def run(selection, label, tags=None, partitions="", follow=None) -> str | None:
        """One run per wave of ``selection``, leaving out what depends on an asset that failed;
        ``follow`` receives their progress lines while they execute."""
        failures, blocked = [], set()
        for wave in waves(selection):
            wave = wave - blocked
            if not wave:
                continue
            summary.runs += 1
            run_tags = {SESSION: session, RUN: str(summary.runs), **(tags or {})}
            with RunFollower(instance, run_tags, follow) if follow else nullcontext() as follower:
                result = dg.materialize(
                    [*ALL_ASSETS, *ALL_CHECKS],
                    selection=list(wave),
                    resources=resources,
                    instance=instance,
                    tags=run_tags,
                    raise_on_error=False,
                    run_config=_config_for(config, wave),
                )
            if follower is not None and follower.error is not None:
                echo(f"(the progress of {label} could not be followed: {follower.error})")
            done = (
                wave if result.success else {e.asset_key for e in result.get_asset_materialization_events()}
            )
            summary.assets |= done
            if failure := failure_message(result, partitions):
                failures.append(failure)
                blocked |= dg.AssetSelection.assets(*(wave - done)).downstream().resolve(graph)
        return "; ".join(failures) or None

    if missing_only:
        before = _pending(instance, before)
    if before:
        echo(f"materializing the dataset ({len(before)} assets)")
        if failure := run(before, "the dataset"):
            summary.failures.append(failure)
            summary.seconds = time.monotonic() - started
            return summary
    if partitioned:
        summary.genes_new = len(register_genes(instance, root))
        batches = gene_batches(instance, genes, size)
        if missing_only:
            requested = [g for batch in batches for g in batch]
            batches = gene_batches(instance, _pending_genes(instance, partitioned, requested), size)
        summary.genes_total = sum(len(b) for b in batches)
        echo(
            f"{summary.genes_total} gene(s) in {len(batches)} run(s) of at most {size} "
            f"({summary.genes_new} newly registered)"
        )
        stages = [stage for stage, key in STAGES.items() if dg.AssetKey(key) in partitioned]
        bar = Progress(summary.genes_total, progress or echo, stages, runs=len(batches))
        for n, batch in enumerate(batches, 1):
            span = f"{batch[0]}…{batch[-1]}" if len(batch) > 1 else batch[0]
            bar.start_run(n, len(batch))
            tags = {RANGE_START: batch[0], RANGE_END: batch[-1]}
            failure = run(partitioned, f"genes {span}", tags, span, follow=bar.event)
            if failure:
                summary.failures.append(failure)
            else:
                summary.genes_done += len(batch)
            bar.end_run(not failure, f"run {n}/{len(batches)} {'FAILED' if failure else 'ok'}")
    if missing_only and not summary.failures:
        after = _pending(instance, after)
    if after and not summary.failures:
        echo(f"materializing the summaries and the catalog ({len(after)} assets)")
        if failure := run(after, "summaries"):
            summary.failures.append(failure)
    elif after:
        echo("skipping the summaries and the catalog: a gene run failed")
    summary.seconds = time.monotonic() - started
    return summary


def _config_for(config: dict, selection) -> dict:
    """Drop op config for ops that are not in this run (Dagster rejects unknown ops)."""
    ops = config.get("ops")
    if not ops:
        return config
    names = {k.path[-1] for k in selection}
    for a in ALL_ASSETS:
        if set(a.keys) & set(selection):
            names.add(a.node_def.name)
    return {**config, "ops": {k: v for k, v in ops.items() if k in names}}


def submit_backfill(
    instance: dg.DagsterInstance,
    genes: Sequence[str] | None = None,
    downstream: bool = True,
    asset_graph=None,
    assets: Sequence = ALL_ASSETS,
    tags: dict | None = None,
) -> str:
    """Submit an asset backfill of the gene assets (all genes or ``genes``), as the UI's
    "Materialize all partitions" does; the daemon (``regnet ui`` / ``dagster dev``) runs it in
    ``BackfillPolicy`` batches and materializes the tables downstream after the genes.

    Returns the backfill id. ``asset_graph``/``assets`` default to regnet's definitions.
    """
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    graph = asset_graph or defs.resolve_asset_graph()
    part = partitioned_keys(assets)
    keys = set(part)
    if downstream:
        keys |= dg.AssetSelection.assets(*part).downstream().resolve(graph)
    if genes is not None:
        gene_batches(instance, genes, 1)  # raises on genes that are not registered partitions
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=graph,
        partition_names=list(genes) if genes is not None else None,
        asset_selection=sorted(keys, key=lambda k: k.to_user_string()),
        backfill_timestamp=time.time(),
        tags={"regnet/trigger": "cli_backfill", **(tags or {})},
        dynamic_partitions_store=instance,
        all_partitions=genes is None,
        title="regnet: " + ("all genes" if genes is None else f"{len(genes)} gene(s)"),
        description=None,
        run_config=None,
    )
    initialize_pools(instance)  # before the daemon launches the backfill's runs side by side
    instance.add_backfill(backfill)
    return backfill.backfill_id
