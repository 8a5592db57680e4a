"""Feature tables, computed by the SQL files in sql/features, in two layers.

Daily activity aggregates (``*_activity_daily``) are the only feature assets that read
``events``, and each reads one partition: the events that arrived on day D, grouped by the
day they happened. Snapshots (``*_features``) sum the aggregates of partitions up to D over a
window of event days before D + 1, so snapshot D uses only events that happened before the end
of D and had arrived by then. A day costs one partition of events plus a sum over small daily
rows, never a re-read of 28 days of events; and because a partition's aggregate depends only on
that partition, a backfill over a range gives the values the daily runs gave. Serving on day
D + 1 and training on day D + 1's impressions both read snapshot D.
"""

import datetime as dt

import dagster as dg

from flywheel_assets.defs.common import (
    column_schema,
    daily_asset,
    day_start,
    materialize_days,
    partition_days,
)
from flywheel_assets.defs.ingestion.assets import catalog_items, users
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.resources import FlywheelConfig, WarehouseResource
from flywheel_assets.features.snapshots import build_sql
from flywheel_assets.platform.warehouse import named_params


def window_params(day: dt.date, prior_strength: float) -> dict[str, object]:
    """The bound parameters of every feature SQL file for snapshot ``day``: windows are whole
    event days ending with ``day``; ``cutoff`` (the end of ``day``) is what ages count to."""
    return {
        "dt": day,
        "cutoff": day_start(day) + dt.timedelta(days=1),
        "end_day": day + dt.timedelta(days=1),
        "start_28d": day - dt.timedelta(days=27),
        "start_7d": day - dt.timedelta(days=6),
        "start_1d": day,
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
        params = window_params(day, flywheel.prior_strength)
        sql = build_sql(table)
        with wh.begin() as conn:
            wh.delete_partition(conn, table, day)
            wh.execute(conn, sql, **named_params(sql, params))
            n = wh.count_partition(conn, table, day)
        return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(n)})

    return materialize_days(context, build)


def _build_aggregate(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, table: str
) -> dg.MaterializeResult:
    """A daily aggregate for every day of the run in one statement and one transaction: a
    partition's rows depend only on its own events, so a range gives the days' values, and a
    backfill reads its events once instead of once per day."""
    days = partition_days(context)
    wh = warehouse.get()
    with wh.begin() as conn:
        for day in days:
            wh.delete_partition(conn, table, day)
        wh.run(conn, f"features/{table}", start_dt=min(days), end_dt=max(days))
        rows = {day: wh.count_partition(conn, table, day) for day in days}
    meta: dict[str, object] = {
        "dagster/row_count": dg.MetadataValue.int(sum(rows.values())),
        **column_schema(context),
    }
    if len(days) > 1:
        meta["partition_range"] = f"{days[0]}...{days[-1]} ({len(days)} days)"
    else:
        meta["partition"] = days[0].isoformat()
    return dg.MaterializeResult(metadata=meta)


_COMMON = daily_asset("features", {"sql", "duckdb"})


# A snapshot of day D sums the daily aggregates of D and the 27 days before: its lineage says
# so, and re-materialising an old day's aggregate marks every snapshot that read it stale.
window_28d = dg.TimeWindowPartitionMapping(
    start_offset=-27, end_offset=0, allow_nonexistent_upstream_partitions=True
)


def _dep(asset: dg.AssetsDefinition) -> dg.AssetDep | dg.AssetsDefinition:
    if asset.key.path[-1].endswith("_activity_daily"):
        return dg.AssetDep(asset, partition_mapping=window_28d)
    return asset


def feature_asset(
    table: str, deps: list[dg.AssetsDefinition], description: str
) -> dg.AssetsDefinition:
    """A daily feature snapshot computed by its reviewed SQL (``features.snapshots.build_sql``):
    every feature table is the same asset over a different SQL file or template."""

    @dg.asset(name=table, **_COMMON, deps=[_dep(d) for d in deps], description=description)
    def _asset(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
    ) -> dg.MaterializeResult:
        if table.endswith("_activity_daily"):
            return _build_aggregate(context, warehouse, table)
        return _build(context, warehouse, flywheel, table)

    return _asset


user_activity_daily = feature_asset(
    "user_activity_daily",
    [accepted_events],
    "Per-user event counts of the events that arrived this day, by the day they happened.",
)
item_activity_daily = feature_asset(
    "item_activity_daily",
    [accepted_events],
    "Per-item event counts of the events that arrived this day, by the day they happened.",
)
user_item_activity_daily = feature_asset(
    "user_item_activity_daily",
    [accepted_events],
    "Per user x item event counts of the events that arrived this day, by the day they happened.",
)
ACTIVITY_ASSETS = [user_activity_daily, item_activity_daily, user_item_activity_daily]

user_features = feature_asset(
    "user_features",
    [user_activity_daily, users],
    "Per-user counts over 1, 7 and 28 days, smoothed CTR/conversion, recency, frequency, price "
    "affinity, region and device.",
)
item_features = feature_asset(
    "item_features",
    [item_activity_daily, catalog_items],
    "Per-item catalog attributes, price change, age, popularity, smoothed CTR/conversion.",
)

FEATURE_ASSETS = [
    user_features,
    item_features,
    feature_asset(
        "user_category_features",
        [user_item_activity_daily, item_features],
        "User x category affinity over 28 days.",
    ),
    feature_asset(
        "user_brand_features",
        [user_item_activity_daily, item_features],
        "User x brand affinity over 28 days.",
    ),
    feature_asset(
        "region_category_features",
        [user_item_activity_daily, user_features, item_features],
        "Region x category response over 28 days (segment-level taste).",
    ),
    feature_asset(
        "region_brand_features",
        [user_item_activity_daily, user_features, item_features],
        "Region x brand response over 28 days (segment-level taste).",
    ),
]
