"""Kafka ingestion: the events topic into the warehouse, exactly once (flywheel_assets/ingestion/kafka.py).

Not partitioned: a run reads from the offsets stored in the warehouse to the end the topic had
when it started. Rows land in the day the broker received them (``kafka_events.dt``) and
``raw_events`` of that day picks them up. Driven by the ``kafka_ingest_every_5_minutes``
schedule, never polled inside a sensor.
"""

import datetime as dt
from collections.abc import Callable

import dagster as dg
import pandas as pd

from flywheel_assets.defs.common import TRANSIENT_RETRY, WAREHOUSE_POOL, md_table
from flywheel_assets.defs.resources import (
    IngestionConfig,
    KafkaConfig,
    PseudonymResource,
    WarehouseResource,
)
from flywheel_assets.ingestion.kafka import (
    BatchResult,
    IngestReport,
    KafkaIngestError,
    ingest_topic,
)
from flywheel_assets.platform.settings import partition_start

DAYS_METADATA = "days"


@dg.asset(
    # Its own group: it is not daily-partitioned, so `--select group:ingestion` with a
    # partition range keeps working without a broker.
    group_name="kafka",
    kinds={"kafka", "python"},
    pool=WAREHOUSE_POOL,
    retry_policy=TRANSIENT_RETRY,
    description=(
        "Behaviour events from the Kafka topic (FLYWHEEL_KAFKA_BOOTSTRAP / FLYWHEEL_KAFKA_TOPIC), "
        "typed by the event contract and pseudonymised; offsets stored with the rows."
    ),
)
def kafka_events(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    ingestion: IngestionConfig,
    pseudonyms: PseudonymResource,
    kafka: KafkaConfig,
) -> dg.MaterializeResult:
    topic = kafka.settings()
    connection = topic.connection()
    if connection is None:
        raise dg.Failure(
            "Kafka is not configured: set FLYWHEEL_KAFKA_BOOTSTRAP (and FLYWHEEL_KAFKA_TOPIC, "
            "default flywheel.events) or configure the `kafka` resource. For a local broker: "
            "scripts/dev-kafka.",
            allow_retries=False,
        )
    try:
        rules = ingestion.settings()
        report = ingest_topic(
            connection,
            warehouse.get(),
            pseudonyms.get(),
            field_map=ingestion.field_maps()["events"],
            future_tolerance=rules.future_tolerance(),
            max_lateness=rules.max_lateness(),
            max_messages=topic.max_messages_per_run,
            earliest_day=dt.date.fromisoformat(partition_start()),
            on_batch=_observe_batch(context),
        )
    except KafkaIngestError as exc:
        raise dg.Failure(str(exc)) from exc
    return dg.MaterializeResult(metadata=kafka_metadata(report))


def _observe_batch(context: dg.AssetExecutionContext) -> Callable[[BatchResult], None]:
    """Records each batch's days as it commits, so a run that fails later still tells
    kafka_late_days_sensor which days got rows."""

    def progress(batch: BatchResult) -> None:
        context.log_event(
            dg.AssetObservation(
                asset_key=context.asset_key,
                metadata={
                    DAYS_METADATA: dg.MetadataValue.json([d.isoformat() for d in batch.days]),
                    "messages": dg.MetadataValue.int(batch.messages),
                },
            )
        )

    return progress


def kafka_metadata(report: IngestReport) -> dict[str, object]:
    days = report.days()
    by_day = pd.DataFrame({"day": list(days), "messages": list(days.values())})
    return {
        "dagster/row_count": dg.MetadataValue.int(report.accepted),
        "topic": report.topic,
        "messages_read": dg.MetadataValue.int(report.messages),
        "messages_quarantined": dg.MetadataValue.int(report.quarantined),  # this read's own
        "batches": dg.MetadataValue.int(len(report.batches)),
        "lag_after_run": dg.MetadataValue.int(report.lag),
        # Read by kafka_late_days_sensor: days whose raw_events must be rebuilt.
        DAYS_METADATA: dg.MetadataValue.json([d.isoformat() for d in days]),
        "messages_by_day": dg.MetadataValue.md(md_table(by_day)),
        "offsets": dg.MetadataValue.md(md_table(report.offsets_frame())),
    }
