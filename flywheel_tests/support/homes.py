"""Demo homes that several test modules read (their fixtures are in flywheel_tests/conftest.py)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from flywheel_assets.simulation.simulator import SimulatorConfig

# The small shop after three days of the real cycle, read by the serving tests and the UI test,
# and whose figures the cycle's determinism test and the governance test compare with their own
# runs: all of them carry this xdist group, so one worker builds it once for all.
SMALL_SHOP_GROUP = "small_shop_home"
SMALL_SHOP_START = dt.date(2026, 2, 1)
SMALL_SHOP_DAYS = 3
SMALL_SHOP_SEED = 11
SMALL_SHOP = SimulatorConfig(
    seed=SMALL_SHOP_SEED, n_users=2_000, n_items=300, sessions_per_day=300, new_users_per_day=30
)


@dataclass(frozen=True)
class DemoHome:
    path: Path
    # Each variable the test guard knows, as run_demo left it for the home (None: unset, as the
    # demo clears a shell's warehouse, folders and partitions).
    environ: dict[str, str | None]
    rows: list[dict[str, object]]  # run_demo's figures, one row per day

    def apply_environment(self) -> None:
        """Point the process at this home as run_demo did (inside ``restored_environment``)."""
        for key, value in self.environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
