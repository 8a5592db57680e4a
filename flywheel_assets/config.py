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
    models_dir: Path
    warehouse_url: str

    @classmethod
    def from_env(cls, home: str | Path | None = None) -> FlywheelPaths:
        root = Path(home or os.environ.get("FLYWHEEL_HOME") or DEFAULT_HOME).expanduser().resolve()
        landing = os.environ.get("FLYWHEEL_LANDING_DIR") or str(root / "landing")
        models = os.environ.get("FLYWHEEL_MODELS_DIR") or str(root / "models")
        url = os.environ.get("FLYWHEEL_WAREHOUSE_URL") or f"duckdb:///{root / 'warehouse.duckdb'}"
        return cls(
            root, Path(landing).expanduser().resolve(), Path(models).expanduser().resolve(), url
        )


def partition_start() -> str:
    """First day of the daily partitions (structural, so read when definitions load)."""
    return os.environ.get(PARTITION_START_ENV, DEFAULT_PARTITION_START)
