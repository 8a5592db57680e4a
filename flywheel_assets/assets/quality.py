"""Quality: relational rules into `events` + quarantine, and the blocking checks of the cycle.

Great Expectations 1.x suites (flywheel_assets/gx_suites) run inside our own asset checks:
dagster-ge only supports GX < 1.0. ERROR-level checks are blocking, so a failing day stops
before anything downstream of it materialises.
"""

import datetime as dt
from collections.abc import Callable

import dagster as dg
from sqlalchemy.engine import Connection

from ..accounting import record_accounting, source_accounting
from ..quality import validate_dataframe
from ..resources import WarehouseResource
from ..warehouse import Warehouse, load_sql
from .common import (
    WAREHOUSE_POOL,
    accounting_metadata,
    check_days,
    daily_asset,
    materialize_days,
    md_table,
    utcnow,
)
from .ingestion import catalog_items, raw_events, users


@dg.asset(
    **daily_asset("quality", {"sql", "duckdb"}),
    deps=[raw_events, catalog_items],
    description=(
        "Events that pass the relational rules (not a redelivery of another day's event, item "
        "known to the catalog); the rest go to quarantine with the reason."
    ),
)
def accepted_events(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    def build(day: dt.date) -> dg.MaterializeResult | dict[str, object]:
        wh = warehouse.get()
        with wh.begin() as conn:
            wh.delete_partition(conn, "events", day)
            wh.run(conn, "ingestion/delete_quarantine", dt=day, source="events", stage="quality")
            wh.run(conn, "ingestion/accept_events", dt=day)
            wh.run(conn, "ingestion/quarantine_events", dt=day, now=utcnow())
            accounting = record_accounting(wh, conn, day, "events", utcnow())
            counts = wh.query_df(conn, load_sql("quality/event_accounting"), dt=day).iloc[0]
            by_type = wh.query_df(conn, load_sql("quality/events_by_type"), dt=day)
        accepted = int(counts["accepted"])
        raw = int(counts["raw"])
        return dg.MaterializeResult(
            metadata={
                **accounting_metadata(accounting),
                "dagster/row_count": dg.MetadataValue.int(accepted),
                "rows_quarantined": dg.MetadataValue.int(int(counts["quarantined_quality"])),
                "quarantine_share": dg.MetadataValue.float(1 - accepted / raw if raw else 0.0),
                "events_by_type": dg.MetadataValue.md(md_table(by_type)),
            }
        )

    return materialize_days(context, build)


def _balance_check(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    counts: Callable[[Warehouse, Connection, dt.date], dict[str, int]],
    total: str,
    parts: tuple[str, ...],
) -> dg.AssetCheckResult:
    """Pass when, for every day of the run, count ``total`` equals the sum of ``parts``,
    all recounted from the tables by ``counts``."""

    def check(day: dt.date) -> dg.AssetCheckResult:
        wh = warehouse.get()
        with wh.begin() as conn:
            c = counts(wh, conn, day)
        ok = c[total] == sum(c[p] for p in parts)
        return dg.AssetCheckResult(
            passed=ok,
            metadata={k: dg.MetadataValue.int(v) for k, v in c.items()},
            description=None
            if ok
            else f"{total} ({c[total]}) != {' + '.join(parts)} "
            f"({' + '.join(str(c[p]) for p in parts)}): rows were lost or doubled; "
            "re-materialise the day",
        )

    return check_days(context, check)


def _event_counts(wh: Warehouse, conn: Connection, day: dt.date) -> dict[str, int]:
    """The columns of sql/quality/event_accounting.sql."""
    row = wh.query_df(conn, load_sql("quality/event_accounting"), dt=day).iloc[0]
    return {k: int(v) for k, v in row.items()}


def _accounting_check(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    total: str,
    parts: tuple[str, str],
) -> dg.AssetCheckResult:
    return _balance_check(context, warehouse, _event_counts, total, parts)


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=raw_events,
    blocking=True,
    description="Every landed row is in raw_events or quarantine.",
)
def raw_events_accounted(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    return _accounting_check(context, warehouse, "landed", ("raw", "quarantined_ingestion"))


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=accepted_events,
    blocking=True,
    description="Every raw row is accepted or quarantined.",
)
def accepted_events_accounted(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    return _accounting_check(context, warehouse, "raw", ("accepted", "quarantined_quality"))


def _source_accounted(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, source: str
) -> dg.AssetCheckResult:
    return _balance_check(
        context,
        warehouse,
        lambda wh, conn, day: source_accounting(wh, conn, day, source),
        "rows_read",
        ("rows_accepted", "rows_quarantined", "rows_duplicate"),
    )


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=catalog_items,
    blocking=True,
    description="Every catalog row read is accepted, quarantined or a superseded duplicate.",
)
def catalog_items_accounted(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    return _source_accounted(context, warehouse, "catalog")


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=users,
    blocking=True,
    description="Every user row read is accepted, quarantined or a superseded duplicate.",
)
def users_accounted(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    return _source_accounted(context, warehouse, "users")


def suite_check(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, sql_name: str, suite: str
) -> dg.AssetCheckResult:
    """Run the Great Expectations suite ``suite`` on each day's rows of ``sql_name``."""
    return check_days(context, lambda day: _suite_check_day(warehouse, day, sql_name, suite))


def _suite_check_day(
    warehouse: WarehouseResource, day: dt.date, sql_name: str, suite: str
) -> dg.AssetCheckResult:
    wh = warehouse.get()
    with wh.begin() as conn:
        df = wh.query_df(conn, load_sql(sql_name), dt=day)
    outcome = validate_dataframe(df, suite)
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rows": dg.MetadataValue.int(outcome.rows),
            "failed_errors": dg.MetadataValue.int(len(outcome.failed_errors)),
            "failed_warnings": dg.MetadataValue.int(len(outcome.failed_warnings)),
            "expectations": dg.MetadataValue.md(outcome.to_markdown()),
        },
        description=outcome.summary(),
    )


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=accepted_events,
    blocking=True,
    description="Great Expectations suite accepted_events.",
)
def accepted_events_suite(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    return suite_check(context, warehouse, "quality/events_partition", "accepted_events")


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=catalog_items,
    blocking=True,
    description="Great Expectations suite catalog_items.",
)
def catalog_items_suite(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    return suite_check(context, warehouse, "quality/items_partition", "catalog_items")


QUALITY_CHECKS = [
    raw_events_accounted,
    accepted_events_accounted,
    accepted_events_suite,
    catalog_items_suite,
    catalog_items_accounted,
    users_accounted,
]
