"""Sensors: register the dataset's modelable genes as ``genes`` partitions."""


from pathlib import Path

import dagster as dg

from regnet_assets.defs.partitions import GENES, genes_partitions
from regnet_assets.storage import read_table


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


def gene_sensor_factory(storage_root_fn):
    @dg.sensor(name="gene_partitions_sensor", minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def gene_partitions_sensor(context: dg.SensorEvaluationContext):
        """Registers genes of the latest ``genes`` table that are not partitions yet."""
        added = new_genes(context.instance, modelable_genes(storage_root_fn()))
        if not added:
            return dg.SkipReason("no new modelable genes")
        return dg.SensorResult(dynamic_partitions_requests=[genes_partitions.build_add_request(added)])

    return gene_partitions_sensor
