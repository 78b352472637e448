"""Sensors: register the dataset's modelable genes as ``genes`` partitions and train them.

New genes are appended to the partitions in dataset order, so they form one contiguous key
range; the sensor cuts it into runs of the gene assets' batch size (``BackfillPolicy``), so
N new genes give ceil(N / batch) runs, each training its genes together.
"""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from regnet_assets.defs.instance import contiguous_batches, genes_per_run, partitioned_keys
from regnet_assets.defs.partitions import GENES, genes_partitions
from regnet_assets.defs.pools import initialize_pools
from regnet_assets.storage import read_table

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def modelable_genes(root: Path) -> list[str]:
    """Modelable genes from the ``genes`` table, in dataset order (empty before it exists)."""
    try:
        table = read_table(root, "genes")
    except FileNotFoundError:
        return []
    return table.loc[table["modelable"], "gene"].tolist()


def new_genes(instance: dg.DagsterInstance, genes: list[str]) -> list[str]:
    """Genes not yet registered: one ``get_dynamic_partitions`` call and a set difference."""
    known = set(instance.get_dynamic_partitions(GENES))
    return [g for g in genes if g not in known]


def register_genes(instance: dg.DagsterInstance, root: Path) -> list[str]:
    """Add the new modelable genes as partitions (what the sensor does, for the CLI)."""
    added = new_genes(instance, modelable_genes(root))
    if added:
        instance.add_dynamic_partitions(GENES, added)
    return added


def batch_run_requests(
    order: Sequence[str], genes: Sequence[str], keys, size: int, tags: dict | None = None
) -> list[dg.RunRequest]:
    """One run request per contiguous batch of ``genes`` (in ``order``) over the asset ``keys``."""
    return [
        dg.RunRequest(
            asset_selection=sorted(keys, key=lambda k: k.to_user_string()),
            tags={**(tags or {}), RANGE_START: batch[0], RANGE_END: batch[-1]},
        )
        for batch in contiguous_batches(order, genes, size)
    ]


def gene_sensor_factory(storage_root_fn, assets: Sequence = ()):
    """The sensor; ``assets`` (the whole graph) tells it which assets are gene-partitioned."""
    keys = partitioned_keys(assets)
    size = genes_per_run(assets)

    @dg.sensor(
        name="gene_partitions_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        target=dg.AssetSelection.assets(*keys) if keys else None,
        description="Every minute: registers the genes of the latest `genes` table that are not "
        "partitions yet, in one call, and requests batched runs of the gene assets for them.",
    )
    def gene_partitions_sensor(context: dg.SensorEvaluationContext):
        """Registers genes of the latest ``genes`` table that are not partitions yet and
        requests batched runs of the gene assets for them (contiguous key ranges)."""
        known = context.instance.get_dynamic_partitions(GENES)
        seen = set(known)
        added = [g for g in modelable_genes(storage_root_fn()) if g not in seen]
        if not added:
            return dg.SkipReason("no new modelable genes")
        runs = (
            batch_run_requests([*known, *added], added, keys, size, {"regnet/trigger": "new_genes"})
            if keys
            else []
        )
        initialize_pools(context.instance)  # before the runs claim it concurrently
        context.log.info(f"{len(added)} new gene(s): {len(runs)} run(s) of at most {size} genes")
        return dg.SensorResult(
            dynamic_partitions_requests=[genes_partitions.build_add_request(added)], run_requests=runs
        )

    return gene_partitions_sensor
