"""Shared pieces of the asset layer: partitions, the warehouse pool, partition bounds."""

import datetime as dt
from collections.abc import Callable
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from flywheel_assets.platform.clock import day_start, utcnow
from flywheel_assets.platform.settings import partition_end, partition_start

# The glue's clock is the platform's (naive UTC, as the warehouse stores timestamps).
__all__ = ["day_start", "utcnow"]


def _daily() -> dg.DailyPartitionsDefinition:
    """Open-ended partitions reach into today (end_offset=1: today's files can be ingested as
    they land); a home whose days are over (a demo's) ends them at its last day, so the UI
    shows only its days."""
    end = partition_end()
    if end is None:
        return dg.DailyPartitionsDefinition(start_date=partition_start(), end_offset=1)
    last = dt.date.fromisoformat(end)
    return dg.DailyPartitionsDefinition(
        start_date=partition_start(), end_date=(last + dt.timedelta(days=1)).isoformat()
    )


daily = _daily()

# DuckDB allows one writing process per file: every warehouse-touching step takes this pool,
# whose limit dagster.yaml sets to 1.
WAREHOUSE_POOL = "flywheel_warehouse"


def md_table(df: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """A small DataFrame as a markdown table for the UI (no tabulate dependency)."""
    if df.empty:
        return "_(no rows)_"
    cols = [str(c) for c in df.columns]

    def fmt(v: object) -> str:
        # Missing is "–" (not nan/None); a count stored as a float reads as a count; a tiny
        # p-value keeps its magnitude instead of rounding to 0.0000.
        if v is None or (pd.api.types.is_scalar(v) and pd.isna(v)):
            return "–"
        if isinstance(v, float | np.floating):
            v = float(v)
            if v.is_integer() and abs(v) >= 2:
                return f"{int(v):,}"
            if v != 0 and abs(v) < 1e-4:
                return f"{v:.2e}"
            return format(v, floatfmt)
        if isinstance(v, int | np.integer) and not isinstance(v, bool):
            return f"{int(v):,}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def partition_days(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> list[dt.date]:
    """The days of this run: one for a daily run, several for a single-run backfill range."""
    return [dt.date.fromisoformat(k) for k in context.partition_keys]


# Ranges from the CLI (`dagster asset materialize --partition-range A...B`) run in one process;
# every asset processes the days of its range in order, one transaction per day.
single_run = dg.BackfillPolicy.single_run()


# A warehouse or broker that restarts mid-run: every step is idempotent (a day is one
# transaction, Kafka offsets are stored with the rows), so retrying is safe. Errors that a retry
# cannot fix (an unreadable file, a bad field map) raise Failure(allow_retries=False).
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL)


def daily_asset(group: str, kinds: set[str]) -> dict[str, object]:
    """The arguments every flywheel asset shares: daily partitions, its stage's group, the
    warehouse pool, single-run backfills and retries of transient failures."""
    return {
        "partitions_def": daily,
        "group_name": group,
        "kinds": kinds,
        "pool": WAREHOUSE_POOL,
        "backfill_policy": single_run,
        "retry_policy": TRANSIENT_RETRY,
    }


# Assets whose warehouse table has another name than the asset (the rest: the same name).
ASSET_TABLES = {
    "catalog_items": "items",
    "accepted_events": "events",
    "challenger_model": "model_registry",
    "offline_evaluation": "offline_evaluations",
    "online_evaluation": "experiment_results",
    "promotion_decision": "promotion_decisions",
}


def column_schema(context: dg.AssetExecutionContext) -> dict[str, object]:
    """``dagster/column_schema`` of the asset's warehouse table, read from the warehouse itself
    (information_schema: the types as DuckDB or PostgreSQL hold them); {} when the asset writes
    no table of its name (models, decisions, files)."""
    from flywheel_assets.platform.warehouse import load_sql

    resource = getattr(context.resources, "warehouse", None)
    if resource is None:
        return {}
    name = context.asset_key.path[-1]
    wh = resource.get()
    with wh.begin() as conn:
        cols = wh.query_df(
            conn, load_sql("reporting/table_columns"), table=ASSET_TABLES.get(name, name)
        )
    if cols.empty:
        return {}
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(str(r.column_name), str(r.data_type).lower()) for r in cols.itertuples()
        ]
    )
    return {"dagster/column_schema": schema}


def _value(v: object) -> object:
    return v.value if isinstance(v, dg.MetadataValue) else v


def materialize_days(
    context: dg.AssetExecutionContext,
    build_day: Callable[[dt.date], dg.MaterializeResult | dict[str, object]],
) -> dg.MaterializeResult:
    """Run ``build_day`` for each day of the run; metadata of the last day (row counts summed)."""
    days = partition_days(context)
    metas: list[dict[str, object]] = []
    for day in days:
        result = build_day(day)
        metas.append(
            dict(result.metadata or {}) if isinstance(result, dg.MaterializeResult) else result
        )
        if len(days) > 1:
            context.log.info(f"{context.asset_key.to_user_string()}: {day} done")
    if len(days) == 1:
        return dg.MaterializeResult(
            metadata={**metas[0], "partition": days[0].isoformat(), **column_schema(context)}
        )
    meta = {**metas[-1], **column_schema(context)}
    if all("dagster/row_count" in m for m in metas):
        meta["dagster/row_count"] = dg.MetadataValue.int(
            sum(int(_value(m["dagster/row_count"])) for m in metas)
        )
    meta["partition_range"] = f"{days[0]}...{days[-1]} ({len(days)} days)"
    return dg.MaterializeResult(metadata=meta)


def check_days(
    context: dg.AssetCheckExecutionContext, check_day: Callable[[dt.date], dg.AssetCheckResult]
) -> dg.AssetCheckResult:
    """Run ``check_day`` for each day of the run; it passes only if every day passes."""
    days = partition_days(context)
    results = [(day, check_day(day)) for day in days]
    if len(results) == 1:
        return results[0][1]
    failed = [(d, r) for d, r in results if not r.passed]
    # An ERROR failure on any day outranks warnings on others: it must block.
    errors = [(d, r) for d, r in failed if r.severity == dg.AssetCheckSeverity.ERROR]
    shown = (errors or failed)[0][1] if failed else results[-1][1]
    return dg.AssetCheckResult(
        passed=not failed,
        severity=shown.severity,
        metadata={
            **(shown.metadata or {}),
            "days_checked": len(days),
            "days_failed": ", ".join(str(d) for d, _ in failed) or "none",
        },
        description="; ".join(f"{d}: {r.description}" for d, r in failed)
        if failed
        else shown.description,
    )


def accounting_metadata(counts: dict[str, int]) -> dict[str, object]:
    """Row accounting (read = accepted + quarantined + duplicates) as UI metadata, under the
    names the demo's table and `flywheel status` use (rows_<name>)."""
    return {
        "rows_read": dg.MetadataValue.int(counts["rows_read"]),
        "rows_accepted": dg.MetadataValue.int(counts["rows_accepted"]),
        "rows_quarantined": dg.MetadataValue.int(counts["rows_quarantined"]),
        "rows_duplicates": dg.MetadataValue.int(counts["rows_duplicate"]),
        "accounting": dg.MetadataValue.md(
            md_table(
                pd.DataFrame(
                    {
                        "read": [counts["rows_read"]],
                        "accepted": [counts["rows_accepted"]],
                        "quarantined": [counts["rows_quarantined"]],
                        "duplicates": [counts["rows_duplicate"]],
                    }
                )
            )
        ),
    }


def day_before_schedule(
    job: Any, *, cron: str, name: str, description: str
) -> dg.ScheduleDefinition:
    """A daily schedule (UTC) running ``job`` for the day before, one run per day (run key
    ``<job>-<day>``); a day outside the daily partitions is skipped, saying so."""

    @dg.schedule(
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        name=name,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _day_before(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        day = context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(days=1)
        key = day.isoformat()
        if not daily.has_partition_key(key):
            return dg.SkipReason(f"{key} is not one of the daily partitions: nothing to run")
        return dg.RunRequest(run_key=f"{job.name}-{key}", partition_key=key)

    return _day_before
