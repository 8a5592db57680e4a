"""The one Definitions object of the flywheel code location."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from .assets.automation import AUTOMATION_JOBS, AUTOMATION_SCHEDULES, AUTOMATION_SENSORS
from .assets.common import daily
from .assets.feature_checks import FEATURE_CHECKS
from .assets.features import ACTIVITY_ASSETS, FEATURE_ASSETS
from .assets.ingestion import catalog_items, raw_events, users
from .assets.kafka import kafka_events
from .assets.promotion import (
    champion_model,
    offline_evaluation,
    online_evaluation,
    promotion_decision,
    rollback_job,
)
from .assets.quality import QUALITY_CHECKS, accepted_events
from .assets.serving import online_features
from .assets.training import TRAINING_CHECKS, challenger_model, training_examples
from .resources import FlywheelConfig, KafkaResource, PseudonymResource, WarehouseResource

ALL_ASSETS = [
    catalog_items,
    users,
    raw_events,
    accepted_events,
    *ACTIVITY_ASSETS,
    *FEATURE_ASSETS,
    online_features,
    training_examples,
    challenger_model,
    offline_evaluation,
    online_evaluation,
    promotion_decision,
    champion_model,
]
ALL_CHECKS = [*QUALITY_CHECKS, *FEATURE_CHECKS, *TRAINING_CHECKS]
# Not partitioned: read by schedule from the topic, outside the daily cycle's job.
STREAM_ASSETS = [kafka_events]

flywheel_cycle = dg.define_asset_job(
    "flywheel_cycle",
    selection=dg.AssetSelection.assets(*ALL_ASSETS),
    description="One turn of the flywheel for a day: ingest, check, features, train, evaluate, promote.",
)


@dg.schedule(
    job=flywheel_cycle,
    cron_schedule="0 1 * * *",
    execution_timezone="UTC",
    name="daily_flywheel_cycle",
    description="At 01:00 UTC, the whole cycle for the day that just ended.",
)
def daily_cycle_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    # Not build_schedule_from_partitioned_job: the partitions reach into today (end_offset=1,
    # so today's files can be ingested as they arrive), and that helper would pick today.
    day = context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    key = day.isoformat()
    if not daily.has_partition_key(key):
        return dg.SkipReason(f"{key} is before the first partition (FLYWHEEL_PARTITION_START)")
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
)
