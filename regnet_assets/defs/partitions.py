"""The one partitioning of regnet: a dynamic partition per modelable gene (DESIGN §4)."""

import dagster as dg

GENES = "genes"
genes_partitions = dg.DynamicPartitionsDefinition(name=GENES)
