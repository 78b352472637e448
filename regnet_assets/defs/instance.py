"""What the instance knows about each asset: its state, its batches and the runs that made it.

The instance queries that the definitions themselves need (sensors, checks, schedules, the
ablation report) and that ``regnet_assets.operations`` builds the CLI's services on; it never
imports ``operations`` (the arrow points one way).

States (materialized, missing, stale or failed) are computed from the event log in a few
queries per asset (never one query per gene), so they stay cheap at 100k gene partitions.
*Stale* means a parent was materialized after the asset (or partition) last was: storage ids
of the event log only grow, so comparing them orders events without clocks.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.events import DagsterEventType

from regnet_assets.defs.partitions import GENES


def partitioned_keys(assets: Iterable) -> set[dg.AssetKey]:
    """Keys of the gene-partitioned assets among ``assets``."""
    return {k for a in assets if getattr(a, "partitions_def", None) is not None for k in a.keys}


def parents_by_key(assets: Iterable) -> dict[dg.AssetKey, set[dg.AssetKey]]:
    """Each asset key's upstream asset keys, read from the definitions (no repository needed)."""
    out: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for a in assets:
        if not isinstance(a, dg.AssetsDefinition):
            continue
        for key in a.keys:
            out[key] = {dep.asset_key for dep in a.specs_by_key[key].deps}
    return out


def genes_per_run(assets: Iterable, default: int = 64) -> int:
    """The batch size of the gene assets: the smallest ``BackfillPolicy.multi_run`` among them
    (Dagster uses the smallest when one run mixes policies), so sensors, the CLI and backfills agree."""
    sizes = [
        a.backfill_policy.max_partitions_per_run
        for a in assets
        if getattr(a, "partitions_def", None) is not None
        and a.backfill_policy is not None
        and a.backfill_policy.max_partitions_per_run
    ]
    return min(sizes) if sizes else default


def contiguous_batches(order: Sequence[str], wanted: Iterable[str], size: int) -> list[list[str]]:
    """``wanted`` keys cut into runs of at most ``size`` keys that are contiguous in ``order``.

    A run covers a key *range* (``dagster/asset_partition_range_start|end``), so a batch must
    not skip a key that lies between its ends in insertion order (reference/dagster.md §2).
    """
    wanted = set(wanted)
    batches: list[list[str]] = []
    current: list[str] = []
    for key in order:
        if key in wanted:
            current.append(key)
            if len(current) == size:
                batches.append(current)
                current = []
        elif current:
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    return batches


@dataclass
class AssetStatus:
    """One asset: for a partitioned asset the gene keys in each state, else a single state."""

    key: dg.AssetKey
    partitioned: bool
    materialized: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stale_because: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        """One word for the asset as a whole: failed > stale > missing > materialized."""
        for name in ("failed", "stale", "missing"):
            if getattr(self, name):
                return name
        return "materialized"


def _latest(instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey]) -> dict:
    """Per non-partitioned key: (last materialization storage id or None, failed after it)."""
    out = {}
    for record in instance.get_asset_records(list(keys)):
        entry = record.asset_entry
        done = entry.last_materialization_storage_id
        failure = entry.last_failed_to_materialize_record
        failed = failure is not None and (done is None or failure.storage_id > done)
        out[entry.asset_key] = (done, failed)
    return out


def asset_statuses(
    instance: dg.DagsterInstance, assets: Sequence, keys: Iterable[dg.AssetKey] | None = None
) -> dict[dg.AssetKey, AssetStatus]:
    """Status of ``keys`` (default: every asset of ``assets``) against the registered genes."""
    parents = parents_by_key(assets)
    part = partitioned_keys(assets)
    partitions_def = next(
        (a.partitions_def for a in assets if getattr(a, "partitions_def", None) is not None), None
    )
    keys = list(keys) if keys is not None else sorted(parents, key=lambda k: k.to_user_string())
    needed = set(keys) | {p for k in keys for p in parents.get(k, ())}
    genes = instance.get_dynamic_partitions(GENES) if part else []

    plain = _latest(instance, [k for k in needed if k not in part])
    by_partition = {
        k: instance.get_latest_storage_id_by_partition(k, DagsterEventType.ASSET_MATERIALIZATION)
        for k in needed
        if k in part
    }
    newest = {
        k: (plain.get(k, (None, False))[0] if k not in part else max(by_partition[k].values(), default=None))
        for k in needed
    }

    out = {}
    for key in keys:
        status = AssetStatus(key=key, partitioned=key in part)
        ups = parents.get(key, set())
        if key in part:
            mine = by_partition[key]
            failed = set()
            if genes and partitions_def is not None:
                by_status = instance.get_status_by_partition(key, genes, partitions_def) or {}
                failed = {g for g, s in by_status.items() if s is not None and s.value == "FAILED"}
            for gene in genes:
                done = mine.get(gene)
                if gene in failed:
                    status.failed.append(gene)
                elif done is None:
                    status.missing.append(gene)
                    continue
                else:
                    status.materialized.append(gene)
                for up in ups:
                    theirs = by_partition[up].get(gene) if up in part else newest.get(up)
                    if done is not None and theirs is not None and theirs > done:
                        status.stale.append(gene)
                        status.stale_because.append(up.to_user_string())
                        break
            status.stale_because = sorted(set(status.stale_because))
        else:
            done, failed = plain.get(key, (None, False))
            if failed:
                status.failed.append("")
            if done is None:
                status.missing.append("")
            else:
                status.materialized.append("")
                newer = sorted(
                    up.to_user_string() for up in ups if newest.get(up) is not None and newest[up] > done
                )
                if newer:
                    status.stale.append("")
                    status.stale_because = newer
        out[key] = status
    return out


def latest_runs(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: Iterable[str] | None = None
) -> dict[str | None, str]:
    """``{partition: run id}`` of the latest materialization of each partition (``None``: unpartitioned)."""
    if partitions is None:
        event = instance.get_latest_materialization_event(key)
        return {} if event is None else {None: event.run_id}
    ids = instance.get_latest_storage_id_by_partition(
        key, DagsterEventType.ASSET_MATERIALIZATION, set(partitions)
    )
    if not ids:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, storage_ids=list(ids.values())), limit=len(ids)
    ).records
    run_of = {r.storage_id: r.event_log_entry.run_id for r in records}
    return {p: run_of[s] for p, s in ids.items() if s in run_of}
