"""Quality's blocking checks: row accounting, Great Expectations 1.x suites (flywheel_assets/quality/gx_suites)
run inside our own asset checks (dagster-ge only supports GX < 1.0), and the quarantine share.
ERROR-level checks are blocking, so a failing day stops before anything downstream materialises.

The rules are in ``flywheel_assets.quality.rules`` and ``quality.suites``; the checks here read
them for each day of the run and report.
"""

import datetime as dt
from collections.abc import Callable

import dagster as dg
from sqlalchemy.engine import Connection

from flywheel_assets.defs.common import WAREHOUSE_POOL, check_days, md_table, utcnow
from flywheel_assets.defs.ingestion.assets import catalog_items, orders, raw_events, users
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.resources import QualityConfig, WarehouseResource
from flywheel_assets.ingestion.accounting import event_counts, source_accounting
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.quality import rules
from flywheel_assets.quality.settings import QualitySettings
from flywheel_assets.quality.suites import (
    PartitionValidation,
    SuiteParameters,
    validate_partition,
)


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
        problem = rules.imbalance(c, total, parts)
        return dg.AssetCheckResult(
            passed=problem is None,
            metadata={k: dg.MetadataValue.int(v) for k, v in c.items()},
            description=problem,
        )

    return check_days(context, check)


def _accounting_check(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    total: str,
    parts: tuple[str, str],
) -> dg.AssetCheckResult:
    return _balance_check(context, warehouse, event_counts, total, parts)


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


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=orders,
    blocking=True,
    description="Every order line read is accepted, quarantined or a repeated line.",
)
def orders_accounted(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    return _source_accounted(context, warehouse, "orders")


def suite_check(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    rows: str,
    suite: str,
    parameters: SuiteParameters | None = None,
) -> dg.AssetCheckResult:
    """Run the Great Expectations suite ``suite`` on each day's rows of ``rows``: a table (its
    day's partition), or a reviewed query ``sql/<rows>.sql`` (a name with its folder).

    Failed error expectations give a failed ERROR result (blocking: nothing downstream runs);
    failed warnings only a failed WARN result. ``parameters`` computes the day's suite
    parameters (and a note on how) from the warehouse.
    """

    def check(day: dt.date) -> dg.AssetCheckResult:
        return _suite_result(validate_partition(warehouse.get(), day, rows, suite, parameters))

    return check_days(context, check)


def _suite_result(validation: PartitionValidation) -> dg.AssetCheckResult:
    """A suite's outcome as a check result: ERROR when an error expectation failed, WARN when
    only warnings did."""
    outcome, params, note = validation.outcome, validation.parameters, validation.note
    meta: dict[str, object] = {
        "rows": dg.MetadataValue.int(outcome.rows),
        "failed_errors": dg.MetadataValue.int(len(outcome.failed_errors)),
        "failed_warnings": dg.MetadataValue.int(len(outcome.failed_warnings)),
        "expectations": dg.MetadataValue.md(outcome.to_markdown()),
    }
    if outcome.severity:
        meta["offending_rows"] = dg.MetadataValue.md(outcome.samples_markdown())
    if params:
        meta["suite_parameters"] = dg.MetadataValue.json(
            {k: None if v is None else str(v) for k, v in params.items()}
        )
    if note:
        meta["baseline"] = note
    return dg.AssetCheckResult(
        passed=outcome.severity is None,
        severity=dg.AssetCheckSeverity.WARN
        if outcome.severity == "warn"
        else dg.AssetCheckSeverity.ERROR,
        metadata=meta,
        description=outcome.summary() + (f" Baseline: {note}" if note else ""),
    )


def raw_events_parameters(thresholds: QualitySettings) -> SuiteParameters:
    """Volume bounds from the trailing days' median and the freshness bound of the day."""

    def params(wh: Warehouse, conn: Connection, day: dt.date) -> tuple[dict[str, object], str]:
        return rules.raw_events_parameters(wh, conn, day, thresholds, utcnow())

    return params


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=raw_events,
    blocking=True,
    description=(
        "Great Expectations suite raw_events: schema, types, pseudonyms, ranges, and the day's "
        "volume against the trailing days (blocking) and freshness (warning)."
    ),
)
def raw_events_suite(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    quality: QualityConfig,
) -> dg.AssetCheckResult:
    return suite_check(
        context,
        warehouse,
        "raw_events",
        "raw_events",
        raw_events_parameters(quality.settings()),
    )


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=accepted_events,
    blocking=True,
    description=(
        "Row-level faults (every quarantine reason except exact redeliveries) stay below "
        "max_quarantine_share of the day's events read; lists each reason with its count."
    ),
)
def events_quarantine_share(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    quality: QualityConfig,
) -> dg.AssetCheckResult:
    limit = quality.settings().max_quarantine_share

    def check(day: dt.date) -> dg.AssetCheckResult:
        q = rules.quarantine_share_of_day(warehouse.get(), day, limit)
        return dg.AssetCheckResult(
            passed=q.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "landed": dg.MetadataValue.int(q.landed),
                "quarantined_faults": dg.MetadataValue.int(q.faults),
                "quarantine_share": dg.MetadataValue.float(q.share),
                "max_quarantine_share": dg.MetadataValue.float(q.limit),
                "reasons": dg.MetadataValue.md(md_table(q.reasons)),
                "sample_rows": dg.MetadataValue.md(md_table(q.sample)),
            },
            description=q.description,
        )

    return check_days(context, check)


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
    return suite_check(context, warehouse, "items", "catalog_items")


QUALITY_CHECKS = [
    raw_events_suite,
    events_quarantine_share,
    raw_events_accounted,
    accepted_events_accounted,
    accepted_events_suite,
    catalog_items_suite,
    catalog_items_accounted,
    users_accounted,
    orders_accounted,
]
