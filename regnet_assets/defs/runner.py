"""Materialize the whole graph in the order partitions allow (what ``regnet run`` does).

1. the non-partitioned assets not downstream of gene partitions (the dataset);
2. register the modelable genes as ``genes`` partitions (the sensor's logic);
3. the gene-partitioned assets in batched runs over contiguous key ranges;
4. everything downstream (summaries, reports, the DuckDB catalog).
Each phase is an ordinary Dagster run against the given instance, visible in the UI.
"""


from collections.abc import Callable
from pathlib import Path

import dagster as dg

from regnet_assets.defs.definitions import ALL_ASSETS, defs, make_resources
from regnet_assets.defs.partitions import GENES
from regnet_assets.defs.resources import DatasetResource
from regnet_assets.defs.sensors import register_genes

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _phases() -> tuple[set, set, set]:
    graph = defs.resolve_asset_graph()
    partitioned = dg.AssetSelection.keys(
        *[k for a in ALL_ASSETS if a.partitions_def is not None for k in a.keys]
    )
    part_keys = partitioned.resolve(graph)
    after = partitioned.downstream().resolve(graph) - part_keys
    before = graph.get_all_asset_keys() - part_keys - after
    return before, part_keys, after


def failure_message(result: dg.ExecuteInProcessResult) -> str | None:
    """Name the failing asset(s) and partition and say why, or None when all succeeded."""
    if result.success:
        return None
    lines = []
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error
        cause = error.cause.message if error and error.cause else (error.message if error else "")
        lines.append(f"asset step {event.step_key!r}: {(cause or '').strip()}")
    return "; ".join(lines) or "run failed"


def run_graph(
    instance: dg.DagsterInstance, root: Path, dataset: DatasetResource, device: str = "auto",
    genes_per_run: int = 64, echo: Callable[[str], None] = print,
) -> str | None:
    """Run all phases; returns a failure message (the first failing phase) or None."""
    resources = make_resources(str(root), dataset, device)
    before, partitioned, after = _phases()

    def run(selection, label, tags=None) -> str | None:
        if not selection:
            return None
        echo(f"materializing {label} ({len(selection)} assets)")
        result = dg.materialize(ALL_ASSETS, selection=list(selection), resources=resources,
                                instance=instance, tags=tags or {}, raise_on_error=False,
                                run_config=QUIET)
        return failure_message(result)

    if failure := run(before, "the dataset"):
        return failure
    if partitioned:
        added = register_genes(instance, root)
        genes = instance.get_dynamic_partitions(GENES)
        echo(f"{len(genes)} gene partitions ({len(added)} new)")
        chunks = [genes[i:i + genes_per_run] for i in range(0, len(genes), genes_per_run)]
        for n, chunk in enumerate(chunks, 1):
            tags = {RANGE_START: chunk[0], RANGE_END: chunk[-1]}
            if failure := run(partitioned, f"genes {n}/{len(chunks)} ({chunk[0]}…{chunk[-1]})", tags):
                return failure
    return run(after, "summaries and the catalog")
