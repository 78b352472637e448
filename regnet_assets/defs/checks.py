"""Red lights a user wants without reading logs: stale gene partitions and empty tables.

- ``up_to_date`` on each gene-partitioned asset group (``gene_models``, ``tf_attribution``):
  fails, naming the genes, when a partition was materialized before the dataset it was built
  from (the dataset changed under the models). Re-evaluated by the automation sensor as soon as
  the dataset is re-materialized, so the light turns red before anyone reads a stale model.
- ``up_to_date`` on ``kpnn_summary`` for the whole ``network`` group (pkn → minimal DAG → KPNN):
  the same question for a group that is not gene-partitioned.
- ``has_rows`` on every non-partitioned table: zero rows is never a result.
- ``no_empty_tables`` on the DuckDB catalog: the gene-partitioned tables counted once after all
  partitions are written (counting them in every batched run would read every file each time).

The checks live beside the assets rather than inside them so the asset modules stay about the
science they wrap; tables that are legitimately empty on a real dataset (the simulator's truth
and the recovery scores computed from it) are exempt.
"""

from collections.abc import Sequence

import dagster as dg

from regnet_assets.defs.instance import asset_statuses, parents_by_key, partitioned_keys
from regnet_assets.defs.resources import StorageResource

MAY_BE_EMPTY = {"truth_tf_gene", "truth_signalling", "grn_recovery"}
MAX_LISTED = 50

# Re-run a check when something it depends on was updated since the check last ran, once
# nothing it depends on is still being written (so a backfill of 1,000 runs triggers it once).
RECHECK = (
    dg.AutomationCondition.any_deps_updated().since(dg.AutomationCondition.newly_requested())
    & ~dg.AutomationCondition.any_deps_in_progress()
).with_label("dependencies updated")


def _up_to_date_check(asset: dg.AssetsDefinition, assets: Sequence) -> dg.AssetChecksDefinition:
    key = sorted(asset.keys, key=lambda k: k.to_user_string())[0]
    key = next((k for k in asset.keys if k.path[-1] == asset.node_def.name), key)
    parents = parents_by_key(assets)
    part = partitioned_keys(assets)
    upstream = sorted(
        {p for k in asset.keys for p in parents[k]} - set(asset.keys), key=lambda k: k.to_user_string()
    )

    @dg.asset_check(
        asset=key,
        name="up_to_date",
        additional_deps=[p for p in upstream if p not in part],
        automation_condition=RECHECK,
        description="Every gene partition was materialized after its inputs (fails when the "
        "dataset changed and these genes were not re-run).",
    )
    def up_to_date(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        statuses = asset_statuses(context.instance, assets, list(asset.keys))
        stale = sorted({g for s in statuses.values() for g in s.stale})
        missing = sorted({g for s in statuses.values() for g in s.missing})
        because = sorted({u for s in statuses.values() for u in s.stale_because})
        return dg.AssetCheckResult(
            passed=not stale,
            metadata={
                "stale_genes": len(stale),
                "missing_genes": len(missing),
                "stale_examples": dg.MetadataValue.json(stale[:MAX_LISTED]),
                "missing_examples": dg.MetadataValue.json(missing[:MAX_LISTED]),
                "newer_inputs": dg.MetadataValue.json(because),
            },
            description=(
                f"{len(stale)} gene(s) built before {', '.join(because)} changed: "
                "re-materialize them (the nightly automation does)"
            )
            if stale
            else None,
        )

    return up_to_date


def _group_up_to_date_check(assets: Sequence, group: str, on: dg.AssetKey) -> dg.AssetChecksDefinition:
    """``up_to_date`` for a non-partitioned group: fails, naming the tables, when one was
    materialized before an input it reads (the dataset changed under the network)."""
    keys = sorted(
        {
            k
            for a in assets
            if isinstance(a, dg.AssetsDefinition)
            for k in a.keys
            if a.group_names_by_key[k] == group
        },
        key=lambda k: k.to_user_string(),
    )
    parents = parents_by_key(assets)
    upstream = sorted({p for k in keys for p in parents[k]} - set(keys), key=lambda k: k.to_user_string())

    @dg.asset_check(
        asset=on,
        name="up_to_date",
        additional_deps=[p for p in upstream if p != on],
        automation_condition=RECHECK,
        description=f"Every table of the {group} group was materialized after its inputs (fails "
        "when the dataset changed and the group was not re-run).",
    )
    def up_to_date(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        statuses = asset_statuses(context.instance, assets, keys)
        stale = [k.to_user_string() for k, s in statuses.items() if s.stale]
        because = sorted({u for s in statuses.values() for u in s.stale_because})
        return dg.AssetCheckResult(
            passed=not stale,
            metadata={
                "stale_tables": dg.MetadataValue.json(stale),
                "newer_inputs": dg.MetadataValue.json(because),
            },
            description=f"{', '.join(stale)} built before {', '.join(because)} changed: re-materialize "
            f"the {group} group (the nightly automation does)"
            if stale
            else None,
        )

    return up_to_date


def _has_rows_check(key: dg.AssetKey) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=key, name="has_rows", description="The table has at least one row.")
    def has_rows(storage: StorageResource) -> dg.AssetCheckResult:
        import pyarrow.parquet as pq

        from regnet_assets.storage.parquet import partition_path

        path = partition_path(storage.path, key.path[-1], None)
        if not path.exists():
            return dg.AssetCheckResult(
                passed=False, metadata={"path": str(path)}, description="the table's file does not exist"
            )
        rows = pq.ParquetFile(path).metadata.num_rows
        return dg.AssetCheckResult(passed=rows > 0, metadata={"dagster/row_count": rows})

    return has_rows


def _no_empty_tables_check(catalog_key: dg.AssetKey, tables: list[str]) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=catalog_key,
        name="no_empty_tables",
        description="Every result table (gene-partitioned ones included) has rows.",
    )
    def no_empty_tables(storage: StorageResource) -> dg.AssetCheckResult:
        from regnet_assets.storage import query, table_names

        present = set(table_names(storage.path))
        counts, empty = {}, []
        for name in tables:
            rows = (
                int(query(storage.path, f'SELECT count(*) AS n FROM "{name}"')["n"].item())
                if name in present
                else 0
            )
            counts[name] = rows
            if rows == 0 and name not in MAY_BE_EMPTY:
                empty.append(name)
        return dg.AssetCheckResult(
            passed=not empty,
            metadata={"empty_tables": dg.MetadataValue.json(empty), "rows": dg.MetadataValue.json(counts)},
            description=f"tables with zero rows: {', '.join(empty)}" if empty else None,
        )

    return no_empty_tables


CATALOG_KEY = dg.AssetKey("duckdb_catalog")
NETWORK_SUMMARY_KEY = dg.AssetKey("kpnn_summary")


def build_checks(assets: Sequence, table_assets: Sequence, catalog_key: dg.AssetKey = CATALOG_KEY) -> list:
    """All checks of this module for the given asset list."""
    part = partitioned_keys(assets)
    checks = [
        _up_to_date_check(a, assets)
        for a in assets
        if isinstance(a, dg.AssetsDefinition) and set(a.keys) & part
    ]
    checks.append(_group_up_to_date_check(assets, "network", NETWORK_SUMMARY_KEY))
    table_keys = sorted({k for a in table_assets for k in a.keys}, key=lambda k: k.to_user_string())
    checks += [_has_rows_check(k) for k in table_keys if k not in part and k.path[-1] not in MAY_BE_EMPTY]
    checks.append(_no_empty_tables_check(catalog_key, [k.path[-1] for k in table_keys]))
    return checks
