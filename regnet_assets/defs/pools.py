"""The ``gpu`` pool that the training and attribution steps claim, and a guard for a Dagster race.

Dagster creates a pool's limit row (from ``concurrency.pools.default_limit``) when a step first
claims the pool. On PostgreSQL, when several runs do this at once on a fresh instance, all but one
fail: the INSERT hits the unique key, PostgreSQL aborts the transaction, and Dagster's fallback
UPDATE then fails with ``InFailedSqlTransaction`` (dagster-io/dagster#33552, open). Creating
the row once, from the one process that launches the runs, leaves nothing to race over.
"""

from collections.abc import Iterable

import dagster as dg

GPU_POOL = "gpu"


def initialize_pools(instance: dg.DagsterInstance, pools: Iterable[str] = (GPU_POOL,)) -> list[str]:
    """Create the default-limit row of each pool that has none yet; returns the pools created."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits or instance.global_op_concurrency_default_limit is None:
        return []
    known = storage.get_concurrency_keys()
    created = [pool for pool in pools if pool not in known]
    for pool in created:
        storage.initialize_concurrency_limit_to_default(pool)
    return created
