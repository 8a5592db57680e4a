"""Ingestion's settings: how landed rows are read and judged, and the Kafka topic."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flywheel_assets.platform.config import Settings, require, setting


@dataclass(frozen=True)
class IngestionSettings(Settings):
    stage = "ingestion"

    field_map: str | None = setting(
        None,
        "FLYWHEEL_FIELD_MAP",
        "YAML/JSON file mapping a producer's field names and event types "
        "([docs/events.md](docs/events.md))",
        shown_default="built-in aliases only",
    )
    max_event_lateness_days: float = setting(
        30.0,
        "FLYWHEEL_MAX_EVENT_LATENESS_DAYS",
        "events older than this before their delivery day are quarantined as `too_old_event` "
        "(`0`: any lateness is accepted)",
    )
    future_tolerance_hours: float = setting(
        1.0,
        "FLYWHEEL_FUTURE_TOLERANCE_HOURS",
        "events stamped later than this after their delivery day's end (or now) are "
        "quarantined as `future_event`",
    )

    def validate(self) -> None:
        require(
            self.max_event_lateness_days >= 0,
            "FLYWHEEL_MAX_EVENT_LATENESS_DAYS",
            "must not be negative (0 accepts any lateness)",
        )
        require(self.future_tolerance_hours >= 0, "FLYWHEEL_FUTURE_TOLERANCE_HOURS", "must be ≥ 0")

    def max_lateness(self) -> dt.timedelta | None:
        d = self.max_event_lateness_days
        return None if d <= 0 else dt.timedelta(days=d)

    def future_tolerance(self) -> dt.timedelta:
        return dt.timedelta(hours=self.future_tolerance_hours)

    def field_maps(self) -> dict:
        """One FieldMap per source (the built-in aliases, extended by FLYWHEEL_FIELD_MAP);
        raises ingestion.field_maps.FieldMapError for a bad file."""
        from flywheel_assets.ingestion.field_maps import load_field_maps

        return load_field_maps(self.field_map)


@dataclass(frozen=True)
class KafkaTopicSettings(Settings):
    stage = "ingestion"

    bootstrap_servers: str | None = setting(
        None,
        "FLYWHEEL_KAFKA_BOOTSTRAP",
        "Kafka bootstrap servers; unset means no topic is read",
    )
    topic: str = setting("flywheel.events", "FLYWHEEL_KAFKA_TOPIC", "the events topic")
    consumer_group: str = setting(
        "flywheel",
        "FLYWHEEL_KAFKA_CONSUMER_GROUP",
        "the consumer group (offsets live in the warehouse, with the rows)",
    )
    batch_size: int = setting(
        50_000, "FLYWHEEL_KAFKA_BATCH_SIZE", "messages per warehouse transaction"
    )
    max_messages_per_run: int | None = setting(
        None,
        "FLYWHEEL_KAFKA_MAX_MESSAGES_PER_RUN",
        "stop a run after this many messages (the next run goes on)",
        shown_default="unset (to the topic's end)",
    )
    stall_timeout_s: float = setting(
        30.0,
        "FLYWHEEL_KAFKA_STALL_TIMEOUT_S",
        "a run fails when the broker delivers nothing for this long before the topic's end",
    )
    security_protocol: str | None = setting(
        None, "FLYWHEEL_KAFKA_SECURITY_PROTOCOL", "e.g. `SASL_SSL`"
    )
    sasl_mechanism: str | None = setting(
        None, "FLYWHEEL_KAFKA_SASL_MECHANISM", "e.g. `SCRAM-SHA-512`"
    )
    username: str | None = setting(None, "FLYWHEEL_KAFKA_USERNAME", "the SASL user")
    password: str | None = setting(
        None, "FLYWHEEL_KAFKA_PASSWORD", "the SASL password", secret=True
    )

    def validate(self) -> None:
        require(self.batch_size >= 1, "FLYWHEEL_KAFKA_BATCH_SIZE", "must be at least 1")
        require(
            not (self.username and not self.password),
            "FLYWHEEL_KAFKA_PASSWORD",
            "FLYWHEEL_KAFKA_USERNAME is set but the password is not: export the SASL password "
            "in the environment of the run",
        )

    def client_config(self) -> dict[str, str]:
        """librdkafka's security settings."""
        extra = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.username,
            "sasl.password": self.password if self.username else None,
        }
        return {k: v for k, v in extra.items() if v}

    def connection(self):  # noqa: ANN201 - ingestion.kafka.KafkaSettings, imported lazily
        """The consumer's connection settings; None when no broker is configured."""
        from flywheel_assets.ingestion.kafka import KafkaSettings

        if not self.bootstrap_servers:
            return None
        return KafkaSettings(
            bootstrap_servers=self.bootstrap_servers,
            topic=self.topic,
            consumer=self.consumer_group,
            batch_size=self.batch_size,
            stall_timeout_s=self.stall_timeout_s,
            client_config=self.client_config(),
        )
