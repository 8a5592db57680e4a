"""The one Definitions object of the flywheel code location."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

from flywheel_assets.defs.automation import (
    AUTOMATION_JOBS,
    AUTOMATION_SCHEDULES,
    AUTOMATION_SENSORS,
)
from flywheel_assets.defs.common import daily
from flywheel_assets.defs.features.assets import ACTIVITY_ASSETS, FEATURE_ASSETS
from flywheel_assets.defs.features.checks import FEATURE_CHECKS
from flywheel_assets.defs.ingestion.assets import catalog_items, raw_events, users
from flywheel_assets.defs.ingestion.kafka import kafka_events
from flywheel_assets.defs.promotion import (
    champion_model,
    offline_evaluation,
    online_evaluation,
    promotion_decision,
    rollback_job,
)
from flywheel_assets.defs.quality import QUALITY_CHECKS, accepted_events
from flywheel_assets.defs.reporting import flywheel_health
from flywheel_assets.defs.resources import (
    FlywheelConfig,
    KafkaResource,
    PseudonymResource,
    WarehouseResource,
)
from flywheel_assets.defs.serving import online_features, served_requests
from flywheel_assets.defs.training import TRAINING_CHECKS, challenger_model, training_examples

ALL_ASSETS = [
    catalog_items,
    users,
    raw_events,
    accepted_events,
    *ACTIVITY_ASSETS,
    *FEATURE_ASSETS,
    online_features,
    served_requests,
    training_examples,
    challenger_model,
    offline_evaluation,
    online_evaluation,
    promotion_decision,
    champion_model,
    flywheel_health,
]
ALL_CHECKS = [*QUALITY_CHECKS, *FEATURE_CHECKS, *TRAINING_CHECKS]
# Not partitioned: read by schedule from the topic, outside the daily cycle's job.
STREAM_ASSETS = [kafka_events]

flywheel_cycle = dg.define_asset_job(
    "flywheel_cycle",
    selection=dg.AssetSelection.assets(*ALL_ASSETS),
    # Warehouse steps run one at a time anyway (pool of 1): a process per step would only add
    # its start-up, about half of a day's cycle on 2 cores (docs/decisions.md, 48).
    executor_def=dg.in_process_executor,
    description="One turn of the flywheel for a day: ingest, check, features, train, evaluate, promote.",
)


# When the daily cycle runs: structural (read when definitions load), like the partitions.
CYCLE_CRON = os.environ.get("FLYWHEEL_CYCLE_CRON", "0 1 * * *")
CYCLE_TIMEZONE = os.environ.get("FLYWHEEL_CYCLE_TIMEZONE", "UTC")


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
        return dg.SkipReason(f"{key} is before the first partition (FLYWHEEL_PARTITION_START)")
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


def resources() -> dict[str, object]:
    """Resources configured from the environment; secrets only through EnvVar."""
    return {
        "warehouse": WarehouseResource(),
        "flywheel": FlywheelConfig(),
        "pseudonyms": PseudonymResource(key=dg.EnvVar("FLYWHEEL_PSEUDONYM_KEY")),
        "kafka": KafkaResource(),
    }


defs = dg.Definitions(
    assets=[*ALL_ASSETS, *STREAM_ASSETS],
    asset_checks=ALL_CHECKS,
    jobs=[flywheel_cycle, rollback_job, *AUTOMATION_JOBS],
    schedules=[daily_cycle_schedule, *AUTOMATION_SCHEDULES],
    sensors=AUTOMATION_SENSORS,
    resources=resources(),
    executor=dg.in_process_executor,
)
