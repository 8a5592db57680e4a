"""Feature snapshots as of the end of each day, computed by the SQL files in sql/features.

Snapshot D uses only events with event_time before D + 1 day that arrived in partitions up to
D, so serving on day D + 1 and training on day D + 1's impressions see exactly the same values.
"""

import datetime as dt

import dagster as dg

from ..resources import FlywheelConfig, WarehouseResource
from ..warehouse import load_sql, named_params
from .common import daily_asset, day_start, materialize_days
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
        with wh.begin() as conn:
            wh.delete_partition(conn, table, day)
            wh.run(conn, sql_name, **named_params(load_sql(sql_name), params))
            n = wh.count_partition(conn, table, day)
        return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(n)})

    return materialize_days(context, build)


_COMMON = daily_asset("features", {"sql", "duckdb"})


def feature_asset(
    table: str, deps: list[dg.AssetsDefinition], description: str
) -> dg.AssetsDefinition:
    """A daily feature snapshot computed by ``sql/features/<table>.sql``: every feature table
    is the same asset over a different reviewed SQL file."""

    @dg.asset(name=table, **_COMMON, deps=deps, description=description)
    def _asset(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
    ) -> dg.MaterializeResult:
        return _build(context, warehouse, flywheel, table)

    return _asset


user_features = feature_asset(
    "user_features",
    [accepted_events, users],
    "Per-user activity, smoothed CTR/conversion, recency, region and device.",
)
item_features = feature_asset(
    "item_features",
    [accepted_events, catalog_items],
    "Per-item catalog attributes, price change, popularity, smoothed CTR/conversion.",
)

FEATURE_ASSETS = [
    user_features,
    item_features,
    feature_asset(
        "user_category_features",
        [accepted_events, item_features],
        "User x category affinity over 28 days.",
    ),
    feature_asset(
        "user_item_features", [accepted_events], "User x item past interactions over 28 days."
    ),
    feature_asset(
        "region_category_features",
        [accepted_events, user_features, item_features],
        "Region x category response over 28 days (segment-level taste).",
    ),
    feature_asset(
        "region_brand_features",
        [accepted_events, user_features, item_features],
        "Region x brand response over 28 days (segment-level taste).",
    ),
]
