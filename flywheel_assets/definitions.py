"""The one Definitions object of the flywheel code location."""

from __future__ import annotations

import dagster as dg

from .assets.automation import AUTOMATION_JOBS, AUTOMATION_SCHEDULES, AUTOMATION_SENSORS
from .assets.features import FEATURE_ASSETS
from .assets.ingestion import catalog_items, raw_events, users
from .assets.kafka import kafka_events
from .assets.promotion import champion_model, offline_evaluation, promotion_decision
from .assets.quality import QUALITY_CHECKS, accepted_events
from .assets.training import TRAINING_CHECKS, challenger_model, training_examples
from .resources import FlywheelConfig, KafkaResource, PseudonymResource, WarehouseResource

ALL_ASSETS = [
    catalog_items,
    users,
    raw_events,
    accepted_events,
    *FEATURE_ASSETS,
    training_examples,
    challenger_model,
    offline_evaluation,
    promotion_decision,
    champion_model,
]
ALL_CHECKS = [*QUALITY_CHECKS, *TRAINING_CHECKS]
# Not partitioned: read by schedule from the topic, outside the daily cycle's job.
STREAM_ASSETS = [kafka_events]

flywheel_cycle = dg.define_asset_job(
    "flywheel_cycle",
    selection=dg.AssetSelection.assets(*ALL_ASSETS),
    description="One turn of the flywheel for a day: ingest, check, features, train, evaluate, promote.",
)

daily_cycle_schedule = dg.build_schedule_from_partitioned_job(
    flywheel_cycle, hour_of_day=1, minute_of_hour=0, name="daily_flywheel_cycle"
)


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
    jobs=[flywheel_cycle, *AUTOMATION_JOBS],
    schedules=[daily_cycle_schedule, *AUTOMATION_SCHEDULES],
    sensors=AUTOMATION_SENSORS,
    resources=resources(),
)
