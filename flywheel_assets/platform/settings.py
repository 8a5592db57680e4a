"""Where things live, from the environment (documented in README.md, "Configuration").

Read when a run starts or the CLI runs, never at import time, so one code location serves the
embedded default and production.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = ".flywheel"
PARTITION_START_ENV = "FLYWHEEL_PARTITION_START"
DEFAULT_PARTITION_START = "2024-01-01"


@dataclass(frozen=True)
class FlywheelPaths:
    home: Path
    landing_dir: Path
    models_dir: Path | str  # a folder, or an fsspec URL such as s3://bucket/models
    warehouse_url: str

    @classmethod
    def from_env(cls, home: str | Path | None = None) -> FlywheelPaths:
        root = Path(home or os.environ.get("FLYWHEEL_HOME") or DEFAULT_HOME).expanduser().resolve()
        landing = os.environ.get("FLYWHEEL_LANDING_DIR") or str(root / "landing")
        models = os.environ.get("FLYWHEEL_MODELS_DIR") or str(root / "models")
        url = os.environ.get("FLYWHEEL_WAREHOUSE_URL") or f"duckdb:///{root / 'warehouse.duckdb'}"
        return cls(root, Path(landing).expanduser().resolve(), models_location(models), url)


def models_location(text: str) -> Path | str:
    """A local folder as an absolute Path; a URL with a scheme (``s3://…``) as given."""
    if "://" in text and not text.startswith("file://"):
        return text
    return Path(text.removeprefix("file://")).expanduser().resolve()


def partition_start() -> str:
    """First day of the daily partitions (structural, so read when definitions load)."""
    return os.environ.get(PARTITION_START_ENV, DEFAULT_PARTITION_START)


@dataclass(frozen=True)
class QualityThresholds:
    """The data-quality knobs (docs/quality.md). Each can be set in the resource config or by
    its environment variable (``FLYWHEEL_`` + the field name upper-cased); else the default."""

    # Open quarantine rows (data faults; exact redeliveries excluded) above this share of the
    # day's landed events block the day.
    max_quarantine_share: float = 0.02
    # Volume: the day's raw events against the median of up to volume_reference_days before
    # it; judged only with at least volume_min_reference_days of history.
    volume_reference_days: int = 7
    volume_min_reference_days: int = 3
    volume_max_drop: float = 0.5  # error below median * (1 - drop)
    volume_max_rise: float = 3.0  # warning above median * (1 + rise)
    # Freshness: the day's newest event should be at most this many hours before its end.
    freshness_hours: float = 6.0
    # Drift of features and model scores against the reference days (flywheel_assets/drift.py).
    drift_psi_warn: float = 0.1
    drift_psi_error: float = 0.25
    drift_ks_alpha: float = 0.001
    drift_reference_days: int = 7
    drift_min_reference_days: int = 3
    # Feature windows fill during a shop's first weeks, which reads as drift every day: drift
    # is judged only once the reference window starts this many days after the first day
    # with events (28 = the longest feature window). Figures are reported before that.
    drift_warmup_days: int = 28

    @classmethod
    def resolve(cls, overrides: dict[str, float | int | None]) -> QualityThresholds:
        """Config values first, then FLYWHEEL_<NAME> variables, then the defaults."""
        values: dict[str, float | int] = {}
        for name, f in cls.__dataclass_fields__.items():
            given = overrides.get(name)
            env = os.environ.get(f"FLYWHEEL_{name.upper()}")
            kind = int if f.type == "int" else float
            if given is not None:
                values[name] = kind(given)
            elif env:
                try:
                    values[name] = kind(env)
                except ValueError:
                    raise ValueError(
                        f"FLYWHEEL_{name.upper()}={env!r} is not a valid {kind.__name__}"
                    ) from None
        out = cls(**values)
        out.validate()
        return out

    def validate(self) -> None:
        if not 0 <= self.max_quarantine_share <= 1:
            raise ValueError("max_quarantine_share must be in [0, 1]")
        if not 0 < self.volume_max_drop < 1:
            raise ValueError("volume_max_drop must be in (0, 1)")
        if self.volume_max_rise <= 0 or self.freshness_hours <= 0:
            raise ValueError("volume_max_rise and freshness_hours must be positive")
        if min(self.volume_reference_days, self.drift_reference_days) < 1:
            raise ValueError("reference windows need at least 1 day")
