"""Dagster resources: thin, configured from the environment, holding no state between runs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from .config import FlywheelPaths
from .pseudonym import Pseudonymiser
from .warehouse import Warehouse

_MIGRATED: set[str] = set()


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse. ``url`` unset means FLYWHEEL_WAREHOUSE_URL, else DuckDB in FLYWHEEL_HOME."""

    url: str | None = None
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def get(self) -> Warehouse:
        if self._warehouse is None:
            self._warehouse = Warehouse(self.url or FlywheelPaths.from_env().warehouse_url)
            if self._warehouse.url not in _MIGRATED:
                self._warehouse.migrate()
                _MIGRATED.add(self._warehouse.url)
        return self._warehouse

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._warehouse is not None:
            self._warehouse.dispose()


class FlywheelConfig(dg.ConfigurableResource):
    """Folders and the knobs of the cycle. Unset folders come from FLYWHEEL_* variables."""

    home: str | None = None
    landing_dir: str | None = None
    models_dir: str | None = None
    training_window_days: int = 14
    label: str = "purchase"
    holdout_fraction: float = 0.3
    future_tolerance_hours: float = 1.0
    min_log_loss_gain: float = 0.0
    max_ndcg_drop: float = 0.01
    prior_strength: float = 20.0

    def paths(self) -> FlywheelPaths:
        base = FlywheelPaths.from_env(self.home)
        return FlywheelPaths(
            home=base.home,
            landing_dir=base.landing_dir
            if self.landing_dir is None
            else _resolve(self.landing_dir),
            models_dir=base.models_dir if self.models_dir is None else _resolve(self.models_dir),
            warehouse_url=base.warehouse_url,
        )


class PseudonymResource(dg.ConfigurableResource):
    """The pseudonymisation key: only from the environment (FLYWHEEL_PSEUDONYM_KEY)."""

    key: str

    def get(self) -> Pseudonymiser:
        return Pseudonymiser(self.key)


def _resolve(p: str) -> Path:
    return Path(p).expanduser().resolve()
