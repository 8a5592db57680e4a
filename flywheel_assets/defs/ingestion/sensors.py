"""What starts ingestion by itself: a landing-folder sensor, a Kafka schedule and a sensor that
re-runs a day when the topic delivered more of it after its ingestion ran.

Sensors only look at file names, sizes and the instance's event log; they never read Kafka or
hold the warehouse (docs/decisions.md, "Ingestion automation"). What to request is decided by
``flywheel_assets.ingestion.triggers``; the sensors turn its requests into runs.
"""

import dagster as dg

from flywheel_assets.defs.common import daily, utcnow
from flywheel_assets.defs.ingestion.assets import catalog_items, orders, raw_events, users
from flywheel_assets.defs.ingestion.kafka import DAYS_METADATA, kafka_events
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.quality.checks import QUALITY_CHECKS
from flywheel_assets.defs.serving.assets import served_requests
from flywheel_assets.ingestion.settings import KafkaTopicSettings
from flywheel_assets.ingestion.triggers import DayRequest, landing_tick, late_kafka_requests
from flywheel_assets.orchestration.executor import flywheel_executor
from flywheel_assets.platform.settings import FlywheelPaths

ingest_day_job = dg.define_asset_job(
    "ingest_day",
    selection=dg.AssetSelection.assets(
        catalog_items, users, orders, raw_events, accepted_events, served_requests
    )
    | dg.AssetSelection.checks(*QUALITY_CHECKS),
    partitions_def=daily,
    executor_def=flywheel_executor,
    description="Ingest and check one day: landing files and the topic's rows of that day.",
)


kafka_ingest_job = dg.define_asset_job(
    "kafka_ingest",
    selection=dg.AssetSelection.assets(kafka_events),
    description="Read the events topic from the stored offsets to its current end.",
)


@dg.schedule(
    job=kafka_ingest_job,
    cron_schedule="*/5 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes, when FLYWHEEL_KAFKA_BOOTSTRAP is set.",
)
def kafka_ingest_every_5_minutes(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    if not KafkaTopicSettings.resolve().bootstrap_servers:
        return dg.SkipReason("FLYWHEEL_KAFKA_BOOTSTRAP is not set: no topic to read")
    return dg.RunRequest()


def _run_request(request: DayRequest) -> dg.RunRequest:
    return dg.RunRequest(
        partition_key=request.partition_key, run_key=request.run_key, tags=request.tags
    )


@dg.sensor(
    job=ingest_day_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "New or changed files under FLYWHEEL_LANDING_DIR/<source>/dt=YYYY-MM-DD/ request that "
        "day's ingestion; the run key is the day plus a hash of its files' contents, so the "
        "same files never run twice."
    ),
)
def landing_files_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    landing = FlywheelPaths.from_env().landing_dir
    tick = landing_tick(landing, context.cursor, daily.has_partition_key)
    for warning in tick.warnings:
        context.log.warning(warning)
    return dg.SensorResult(
        run_requests=[_run_request(r) for r in tick.requests], cursor=tick.cursor
    )


@dg.sensor(
    job=ingest_day_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "When a Kafka ingest wrote rows for a day before today (the consumer lagged over "
        "midnight), re-run that day's ingestion so its raw_events include them."
    ),
)
def kafka_late_days_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    # Every committed batch logs an observation with its days, also in runs that fail later.
    result = context.instance.fetch_observations(
        kafka_events.key, limit=500, cursor=context.cursor, ascending=True
    )
    observations = [
        (record.storage_id, _observed_days(record.asset_observation))
        for record in result.records
        if record.asset_observation is not None
    ]
    requests = late_kafka_requests(observations, utcnow().date(), daily.has_partition_key)
    return dg.SensorResult(
        run_requests=[_run_request(r) for r in requests], cursor=result.cursor or context.cursor
    )


def _observed_days(observation: dg.AssetObservation) -> list[str]:
    value = observation.metadata.get(DAYS_METADATA)
    return list((value.value if isinstance(value, dg.JsonMetadataValue) else None) or [])
