"""Quality's blocking checks: row accounting, Great Expectations 1.x suites (flywheel_assets/quality/gx_suites)
run inside our own asset checks (dagster-ge only supports GX < 1.0), and the quarantine share.
ERROR-level checks are blocking, so a failing day stops before anything downstream materialises.
"""

import datetime as dt
import math
from collections.abc import Callable

import dagster as dg
from sqlalchemy.engine import Connection

from flywheel_assets.defs.common import (
    WAREHOUSE_POOL,
    check_days,
    day_start,
    md_table,
    utcnow,
)
from flywheel_assets.defs.ingestion.assets import catalog_items, raw_events, users
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.resources import FlywheelConfig, WarehouseResource
from flywheel_assets.ingestion.accounting import source_accounting
from flywheel_assets.platform.settings import QualityThresholds
from flywheel_assets.platform.warehouse import Warehouse, load_sql, named_params
from flywheel_assets.quality.suites import validate_dataframe

# (warehouse, connection, day) -> (suite parameters, description of what they were built from)
SuiteParameters = Callable[[Warehouse, Connection, dt.date], tuple[dict[str, object], str]]


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
    row = wh.query_df(conn, load_sql("ingestion/event_accounting"), dt=day).iloc[0]
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
    return check_days(
        context, lambda day: _suite_check_day(warehouse, day, rows, suite, parameters)
    )


def _suite_check_day(
    warehouse: WarehouseResource,
    day: dt.date,
    rows: str,
    suite: str,
    parameters: SuiteParameters | None,
) -> dg.AssetCheckResult:
    wh = warehouse.get()
    with wh.begin() as conn:
        if "/" in rows:  # a query: binds :dt, and :prev_dt when it looks at the day before
            sql = load_sql(rows)
            bounds = {"dt": day, "prev_dt": day - dt.timedelta(days=1)}
            df = wh.query_df(conn, sql, **named_params(sql, bounds))
        else:
            df = wh.read_partition(conn, rows, day)
        params, note = parameters(wh, conn, day) if parameters else ({}, "")
    outcome = validate_dataframe(df, suite, parameters=params)
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


def raw_events_parameters(
    thresholds: QualityThresholds,
) -> SuiteParameters:
    """Volume bounds from the trailing days' median and the freshness bound of the day."""

    def params(wh: Warehouse, conn: Connection, day: dt.date) -> tuple[dict[str, object], str]:
        q = thresholds
        counts = wh.query_df(
            conn,
            load_sql("quality/trailing_volume"),
            start_dt=day - dt.timedelta(days=q.volume_reference_days),
            end_dt=day - dt.timedelta(days=1),
        )
        day_end = day_start(day) + dt.timedelta(days=1)
        freshness_min = min(day_end, utcnow()) - dt.timedelta(hours=q.freshness_hours)
        if len(counts) < q.volume_min_reference_days:
            note = (
                f"volume not judged: {len(counts)} of the {q.volume_min_reference_days} "
                f"reference days needed in the {q.volume_reference_days} days before {day}"
            )
            return {"volume_min": 0, "volume_max": None, "freshness_min": freshness_min}, note
        median = float(counts["n"].median())
        vmin = math.floor(median * (1 - q.volume_max_drop))
        vmax = math.ceil(median * (1 + q.volume_max_rise))
        note = (
            f"median {median:.0f} rows/day over {len(counts)} days "
            f"({counts['dt'].min()}..{counts['dt'].max()}); blocking below {vmin} "
            f"(-{q.volume_max_drop:.0%}), warning above {vmax}"
        )
        return {"volume_min": vmin, "volume_max": vmax, "freshness_min": freshness_min}, note

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
    flywheel: FlywheelConfig,
) -> dg.AssetCheckResult:
    return suite_check(
        context,
        warehouse,
        "raw_events",
        "raw_events",
        raw_events_parameters(flywheel.quality()),
    )


# Reasons that are not data faults: exact redeliveries of an event already accepted.
REDELIVERY_REASONS = ("duplicate_event_id", "duplicate_event_id_other_day")


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=accepted_events,
    blocking=True,
    description=(
        "Row-level faults (every quarantine reason except exact redeliveries) stay below "
        "max_quarantine_share of the day's landed events; lists each reason with its count."
    ),
)
def events_quarantine_share(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    flywheel: FlywheelConfig,
) -> dg.AssetCheckResult:
    limit = flywheel.quality().max_quarantine_share

    def check(day: dt.date) -> dg.AssetCheckResult:
        wh = warehouse.get()
        with wh.begin() as conn:
            reasons = wh.query_df(conn, load_sql("quality/quarantine_reasons"), dt=day)
            sample = wh.query_df(conn, load_sql("quality/quarantine_sample"), dt=day, per_reason=2)
            landed = int(_event_counts(wh, conn, day)["landed"])
        faults = reasons[~reasons["reason"].isin(REDELIVERY_REASONS)]
        n_faults = int(faults["n"].sum())
        share = n_faults / landed if landed else 0.0
        ok = share <= limit
        table = reasons.assign(
            share=reasons["n"] / landed if landed else 0.0,
            counts_as_fault=~reasons["reason"].isin(REDELIVERY_REASONS),
        )
        listed = "; ".join(f"{r.reason} ({r.stage}): {r.n}" for r in faults.itertuples())
        sample = sample.assign(
            source_file=sample["source_file"].astype(str).str.rsplit("/", n=1).str[-1],
            payload=sample["payload"].astype(str).str.slice(0, 160),
        )
        return dg.AssetCheckResult(
            passed=ok,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "landed": dg.MetadataValue.int(landed),
                "quarantined_faults": dg.MetadataValue.int(n_faults),
                "quarantine_share": dg.MetadataValue.float(share),
                "max_quarantine_share": dg.MetadataValue.float(limit),
                "reasons": dg.MetadataValue.md(md_table(table)),
                "sample_rows": dg.MetadataValue.md(md_table(sample)),
            },
            description=(
                f"{n_faults} of {landed} landed events ({share:.2%}) quarantined as faults, "
                f"within {limit:.2%}."
                if ok
                else f"{n_faults} of {landed} landed events ({share:.2%}) are quarantined as "
                f"faults, above the {limit:.2%} limit: {listed}. Fix the producer or the "
                "reference data (a missing catalog item), re-deliver and re-materialise the "
                "day, or fix and release rows (flywheel quarantine release, docs/quality.md); "
                "if this share is normal for the shop, raise FLYWHEEL_MAX_QUARANTINE_SHARE."
            ),
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
]
