"""What starts ingestion by itself: a landing-folder sensor, a Kafka schedule and a sensor that
re-runs a day when the topic delivered more of it after its ingestion ran.

Sensors only look at file names, sizes and the instance's event log; they never read Kafka or
hold the warehouse (docs/decisions.md, "Ingestion automation").
"""

import datetime as dt
import hashlib
import json
import os
from collections import defaultdict
from pathlib import Path

import dagster as dg

from flywheel_assets.defs.common import daily, utcnow
from flywheel_assets.defs.ingestion.assets import catalog_items, raw_events, users
from flywheel_assets.defs.ingestion.kafka import DAYS_METADATA, kafka_events
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.quality.checks import QUALITY_CHECKS
from flywheel_assets.defs.serving.assets import served_requests
from flywheel_assets.ingestion.landing import file_sha256, list_landing_files
from flywheel_assets.platform.settings import FlywheelPaths

LANDING_SOURCES = ("events", "catalog", "users", "requests")


ingest_day_job = dg.define_asset_job(
    "ingest_day",
    selection=dg.AssetSelection.assets(
        catalog_items, users, raw_events, accepted_events, served_requests
    )
    | dg.AssetSelection.checks(*QUALITY_CHECKS),
    partitions_def=daily,
    executor_def=dg.in_process_executor,
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
    if not os.environ.get("FLYWHEEL_KAFKA_BOOTSTRAP"):
        return dg.SkipReason("FLYWHEEL_KAFKA_BOOTSTRAP is not set: no topic to read")
    return dg.RunRequest()


def landing_day_digests(
    landing_dir: Path, cursor: dict[str, list]
) -> tuple[dict[str, str], dict[str, list], list[str]]:
    """Per day with landing files, a digest of (source, file name, SHA-256) of all its files;
    the new cursor (path -> [size, mtime_ns, sha256], so unchanged files are not re-hashed);
    and warnings for folders that are not ``dt=YYYY-MM-DD``."""
    entries: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    new_cursor: dict[str, list] = {}
    warnings: list[str] = []
    for source in LANDING_SOURCES:
        root = landing_dir / source
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if not folder.is_dir():
                continue
            try:
                day = dt.date.fromisoformat(folder.name.removeprefix("dt="))
                if not folder.name.startswith("dt="):
                    raise ValueError(folder.name)
            except ValueError:
                warnings.append(f"{folder}: not a dt=YYYY-MM-DD folder, ignored")
                continue
            for path in list_landing_files(landing_dir, source, day):
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue  # moved away while we looked
                previous = cursor.get(str(path))
                if previous and previous[:2] == [st.st_size, st.st_mtime_ns]:
                    sha = previous[2]
                else:
                    sha = file_sha256(path)
                new_cursor[str(path)] = [st.st_size, st.st_mtime_ns, sha]
                entries[day.isoformat()].append((source, path.name, sha))
    digests = {
        day: hashlib.sha256(json.dumps(sorted(files)).encode()).hexdigest()[:16]
        for day, files in entries.items()
    }
    return dict(sorted(digests.items())), new_cursor, warnings


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
    cursor = json.loads(context.cursor) if context.cursor else {}
    files, seen = cursor.get("files", {}), cursor.get("days", {})
    digests, new_files, warnings = landing_day_digests(landing, files)
    for w in warnings:
        context.log.warning(w)
    requests = []
    days: dict[str, list] = {}
    for day, digest in digests.items():
        # The run key counts the day's changes, so files put back as they were (A, A', A)
        # run again instead of matching the first run's key while the warehouse holds A'.
        last_digest, changes = seen.get(day, [None, 0])
        if digest != last_digest:
            changes += 1
        days[day] = [digest, changes]
        if not daily.has_partition_key(day):
            context.log.warning(
                f"landing files for {day} are outside the daily partitions (FLYWHEEL_PARTITION_START "
                "to tomorrow): not ingested"
            )
            continue
        requests.append(
            dg.RunRequest(
                partition_key=day,
                run_key=f"landing:{day}:{digest}:{changes}",
                tags={"flywheel/trigger": "landing_files", "flywheel/landing_digest": digest},
            )
        )
    return dg.SensorResult(
        run_requests=requests, cursor=json.dumps({"files": new_files, "days": days})
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
    today = utcnow().date().isoformat()
    requests = []
    for record in result.records:
        observation = record.asset_observation
        if observation is None:
            continue
        value = observation.metadata.get(DAYS_METADATA)
        days = value.value if isinstance(value, dg.JsonMetadataValue) else []
        for day in days or []:
            if day < today and daily.has_partition_key(day):
                requests.append(
                    dg.RunRequest(
                        partition_key=day,
                        run_key=f"kafka-late:{day}:{record.storage_id}",
                        tags={"flywheel/trigger": "kafka_late_rows"},
                    )
                )
    return dg.SensorResult(run_requests=requests, cursor=result.cursor or context.cursor)
