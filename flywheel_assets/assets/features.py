"""Feature snapshots as of the end of each day, computed by the SQL files in sql/features.

Snapshot D uses only events with event_time before D + 1 day that arrived in partitions up to
D, so serving on day D + 1 and training on day D + 1's impressions see exactly the same values.
"""

import datetime as dt

import dagster as dg

from ..resources import FlywheelConfig, WarehouseResource
from ..warehouse import load_sql
from .common import WAREHOUSE_POOL, daily, day_start, materialize_days, single_run
from .ingestion import catalog_items, users
from .quality import accepted_events


def _window_params(day: dt.date, prior_strength: float) -> dict[str, object]:
    cutoff = day_start(day) + dt.timedelta(days=1)
    return {
        "dt": day,
        "cutoff": cutoff,
        "start_28d": cutoff - dt.timedelta(days=28),
        "start_7d": cutoff - dt.timedelta(days=7),
        "week_ago": day - dt.timedelta(days=7),
        "prior_strength": prior_strength,
    }


def _build(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    flywheel: FlywheelConfig,
    table: str,
) -> dg.MaterializeResult:
    def build(day: dt.date) -> dg.MaterializeResult | dict[str, object]:
        wh = warehouse.get()
        params = _window_params(day, flywheel.prior_strength)
        sql_name = f"features/{table}"
        # Each statement only binds the parameters its SQL names.
        text = load_sql(sql_name)
        used = {k: v for k, v in params.items() if f":{k}" in text}
        with wh.begin() as conn:
            wh.delete_partition(conn, table, day)
            wh.run(conn, sql_name, **used)
            n = wh.count_partition(conn, table, day)
        return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(n)})

    return materialize_days(context, build)


_COMMON = {
    "partitions_def": daily,
    "group_name": "features",
    "kinds": {"sql", "duckdb"},
    "pool": WAREHOUSE_POOL,
    "backfill_policy": single_run,
}


@dg.asset(
    **_COMMON,
    deps=[accepted_events, users],
    description="Per-user activity, smoothed CTR/conversion, recency, region and device.",
)
def user_features(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    return _build(context, warehouse, flywheel, "user_features")


@dg.asset(
    **_COMMON,
    deps=[accepted_events, catalog_items],
    description="Per-item catalog attributes, price change, popularity, smoothed CTR/conversion.",
)
def item_features(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    return _build(context, warehouse, flywheel, "item_features")


@dg.asset(
    **_COMMON,
    deps=[accepted_events, catalog_items],
    description="User x category affinity over 28 days.",
)
def user_category_features(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    return _build(context, warehouse, flywheel, "user_category_features")


@dg.asset(
    **_COMMON, deps=[accepted_events], description="User x item past interactions over 28 days."
)
def user_item_features(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    return _build(context, warehouse, flywheel, "user_item_features")


@dg.asset(
    **_COMMON,
    deps=[accepted_events, users, catalog_items],
    description="Region x category response over 28 days (segment-level taste).",
)
def region_category_features(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    return _build(context, warehouse, flywheel, "region_category_features")


@dg.asset(
    **_COMMON,
    deps=[accepted_events, users, catalog_items],
    description="Region x brand response over 28 days (segment-level taste).",
)
def region_brand_features(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    return _build(context, warehouse, flywheel, "region_brand_features")


FEATURE_ASSETS = [
    user_features,
    item_features,
    user_category_features,
    user_item_features,
    region_category_features,
    region_brand_features,
]
