"""regnet's definitions with a gene batch of 50, for the backfill-planning test.

Loaded by Dagster as a code location (the test's workspace), like ``regnet_assets.definitions``.
"""

import dagster as dg

from regnet_assets.defs.definitions import ALL_ASSETS, make_resources

BATCH = 50
assets = [
    a.with_attributes(backfill_policy=dg.BackfillPolicy.multi_run(BATCH))
    if a.partitions_def is not None
    else a
    for a in ALL_ASSETS
]
defs = dg.Definitions(assets=assets, resources=make_resources())
