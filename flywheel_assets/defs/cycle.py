"""The daily cycle: the job that turns the flywheel for one day, and the schedule that runs it."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from flywheel_assets.defs.common import daily
from flywheel_assets.orchestration.executor import flywheel_executor
from flywheel_assets.platform.settings import CycleSettings

# Every daily-partitioned stage; the Kafka stream (group "kafka", not partitioned) is read by
# its own schedule, outside the cycle.
CYCLE_GROUPS = (
    "ingestion",
    "quality",
    "features",
    "serving",
    "training",
    "evaluation",
    "promotion",
    "reporting",
)

flywheel_cycle = dg.define_asset_job(
    "flywheel_cycle",
    selection=dg.AssetSelection.groups(*CYCLE_GROUPS),
    # Warehouse steps run one at a time anyway (pool of 1): a process per step would only add
    # its start-up, about half of a day's cycle on 2 cores (docs/decisions.md, 48).
    executor_def=flywheel_executor,
    description="One turn of the flywheel for a day: ingest, check, features, train, evaluate, promote.",
)


# When the daily cycle runs: structural, so read when the code location loads (like the
# partitions); a change needs a reload of the code location.
_CYCLE = CycleSettings.resolve()
CYCLE_CRON = _CYCLE.cycle_cron
CYCLE_TIMEZONE = _CYCLE.cycle_timezone


@dg.schedule(
    job=flywheel_cycle,
    cron_schedule=CYCLE_CRON,
    execution_timezone=CYCLE_TIMEZONE,
    name="daily_flywheel_cycle",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        f"At {CYCLE_CRON!r} ({CYCLE_TIMEZONE}; FLYWHEEL_CYCLE_CRON, FLYWHEEL_CYCLE_TIMEZONE), "
        "the whole cycle for the day before: ingest, check, features, train, evaluate, decide, "
        "publish."
    ),
)
def daily_cycle_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    # Not build_schedule_from_partitioned_job: the partitions reach into today (end_offset=1,
    # so today's files can be ingested as they arrive), and that helper would pick today.
    # Partitions are UTC days; "the day before" is the UTC day before the tick.
    day = context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    key = day.isoformat()
    if not daily.has_partition_key(key):
        return dg.SkipReason(
            f"{key} is not one of the daily partitions (FLYWHEEL_PARTITION_START, "
            "FLYWHEEL_PARTITION_END): nothing to run"
        )
    # Dagster dedupes a schedule's run keys within one tick only: with a cron that ticks more
    # than once a day, a day runs again only if its earlier runs failed or were cancelled.
    earlier = context.instance.get_runs(
        filters=dg.RunsFilter(
            job_name=flywheel_cycle.name,
            tags={"dagster/schedule_name": "daily_flywheel_cycle", "dagster/partition": key},
        ),
        limit=20,
    )
    done = [
        r
        for r in earlier
        if r.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    ]
    if done:
        return dg.SkipReason(
            f"{key} already has a cycle run ({done[0].run_id}, {done[0].status.value})"
        )
    return dg.RunRequest(partition_key=key, run_key=f"daily_cycle:{key}")
