"""The nightly refresh: gene partitions that are missing or stale, then the tables downstream.

Why declarative automation and not a job on a ``ScheduleDefinition``:

- a job cannot say "only the genes that are missing or stale": it runs whatever it is given,
  and ``build_schedule_from_partitioned_job`` rejects dynamic partitions;
- a schedule can only launch runs, not backfills, so it would have to cut the genes into
  batches itself and could not start the summaries after the last batch finished;
- the automation sensor evaluates one condition per asset (and per gene partition) and, with
  ``emit_backfills`` (the default), turns each tick's requests into **one asset backfill**.
  Dagster then plans that backfill with the assets' ``BackfillPolicy.multi_run`` (contiguous key
  ranges, the same batches as a backfill launched from the UI) and starts the non-partitioned
  tables only after the gene partitions they read are done;
- every decision is recorded per asset and partition, so the UI's Automation tab says why a
  gene was (or was not) re-trained.

The condition is gated by the cron tick, so nothing is requested between nights: a dataset
that changes at 10:00 turns the ``up_to_date`` checks red at once and is re-modelled at 02:00.
"""

import os
from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

from regnet_assets.defs.instance import partitioned_keys

NIGHTLY_CRON = os.environ.get("REGNET_NIGHTLY_CRON", "0 2 * * *")
TIMEZONE = os.environ.get("REGNET_TIMEZONE", "UTC")

_AC = dg.AutomationCondition


def nightly_condition(cron: str = NIGHTLY_CRON, timezone: str = TIMEZONE) -> dg.AutomationCondition:
    """At the cron tick: request what is missing or stale, or whose inputs will be re-made."""
    stale = (
        _AC.any_deps_updated()
        .since(_AC.newly_requested() | _AC.newly_updated())
        .with_label("an input was updated since this was last requested or materialized")
    )
    needs = (_AC.missing() | stale).with_label("missing or stale")
    return (
        _AC.cron_tick_passed(cron, timezone)
        & ~_AC.in_progress()
        & (needs | _AC.any_deps_match(needs) | _AC.any_deps_match(_AC.will_be_requested()))
    ).with_label(f"nightly ({cron} {timezone}): missing or stale")


def nightly_targets(assets: Sequence, groups: Sequence[str] = ("network",)) -> set[dg.AssetKey]:
    """The gene-partitioned assets, the assets of ``groups`` (made from the dataset, as the
    genes are) and everything downstream of them; the dataset group itself is the user's."""
    seeds = set(partitioned_keys(assets))
    children: dict[dg.AssetKey, set] = {}
    for a in assets:
        if isinstance(a, dg.AssetsDefinition):
            for key in a.keys:
                if a.group_names_by_key[key] in groups:
                    seeds.add(key)
                for dep in a.specs_by_key[key].deps:
                    children.setdefault(dep.asset_key, set()).add(key)
    targets, todo = set(seeds), list(seeds)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in targets:
                targets.add(child)
                todo.append(child)
    return targets


# The catalog is rebuilt every night (a cheap step), so its freshness says "the nightly
# automation ran": yellow after a missed night, red after two (daemon down, backfill failed).
CATALOG_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=50), warn_window=timedelta(hours=26)
)


def with_nightly_conditions(
    assets: Sequence, cron: str = NIGHTLY_CRON, catalog: str = "duckdb_catalog"
) -> list:
    """``assets`` with the nightly condition on every target (the catalog unconditionally)."""
    targets = nightly_targets(assets)
    condition = nightly_condition(cron)
    catalog_condition = _AC.cron_tick_passed(cron, TIMEZONE) & ~_AC.in_progress()

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key.path[-1] == catalog:
            return spec.replace_attributes(
                automation_condition=catalog_condition, freshness_policy=CATALOG_FRESHNESS
            )
        if spec.key in targets:
            return spec.replace_attributes(automation_condition=condition)
        return spec

    return [
        a.map_asset_specs(attach) if isinstance(a, dg.AssetsDefinition) and set(a.keys) & targets else a
        for a in assets
    ]


def nightly_sensor(assets: Sequence, checks: Sequence = ()) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the nightly conditions (and the checks' re-check conditions) every 30 s."""
    keys = nightly_targets(assets)
    selection = dg.AssetSelection.assets(*keys)
    if checks:
        selection = selection | dg.AssetSelection.checks(*checks)
    return dg.AutomationConditionSensorDefinition(
        "nightly_refresh",
        target=selection,
        default_status=dg.DefaultSensorStatus.RUNNING,
        emit_backfills=True,
        minimum_interval_seconds=30,
        description="Nightly: gene partitions and network-group tables missing or stale vs the "
        "dataset, in batched backfill runs, then the tables downstream; also re-runs the "
        "up_to_date checks.",
    )
