"""Forecasting's settings: the demand forecast, its backtest and the replenishment advice
(docs/forecasting.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flywheel_assets.platform.config import Settings, json_object, require, setting

SOURCES = ("auto", "orders", "events")


@dataclass(frozen=True)
class ForecastSettings(Settings):
    stage = "forecasting"

    source: str = setting(
        "auto",
        "FLYWHEEL_FORECAST_SOURCE",
        "what was sold: `orders` (order lines), `events` (purchase events, each of its "
        "`quantity` units or one) or "
        "`auto` (order lines when the history has any, else purchase events)",
    )
    history_days: int = setting(
        730, "FLYWHEEL_FORECAST_HISTORY_DAYS", "days of sales history the forecast reads"
    )
    backtest_origins: int = setting(
        4,
        "FLYWHEEL_FORECAST_BACKTEST_ORIGINS",
        "rolling origins (a week apart) every forecaster is scored on",
    )
    params: str = setting(
        "{}",
        "FLYWHEEL_FORECAST_PARAMS",
        "JSON object over the forecaster's defaults (`horizon`, `training_origins`, "
        "`num_boost_round`, `xgb_params`, ...): the challenger's specification",
    )
    lead_time_days: int = setting(
        7, "FLYWHEEL_REPLENISHMENT_LEAD_TIME_DAYS", "days from ordering stock to having it"
    )
    review_days: int = setting(
        1, "FLYWHEEL_REPLENISHMENT_REVIEW_DAYS", "days between two looks at an item's stock"
    )
    service_level: float = setting(
        0.95,
        "FLYWHEEL_REPLENISHMENT_SERVICE_LEVEL",
        "the share of demand to serve from stock (fill rate) the order-up-to level aims at",
    )
    n_jobs: int = setting(
        1, "FLYWHEEL_FORECAST_JOBS", "processes the statistical baselines fit series in"
    )

    def validate(self) -> None:
        require(self.source in SOURCES, "FLYWHEEL_FORECAST_SOURCE", f"must be one of {SOURCES}")
        require(self.history_days >= 60, "FLYWHEEL_FORECAST_HISTORY_DAYS", "must be at least 60")
        require(self.backtest_origins >= 1, "FLYWHEEL_FORECAST_BACKTEST_ORIGINS", "at least 1")
        require(self.lead_time_days >= 0, "FLYWHEEL_REPLENISHMENT_LEAD_TIME_DAYS", "must be >= 0")
        require(self.review_days >= 1, "FLYWHEEL_REPLENISHMENT_REVIEW_DAYS", "must be >= 1")
        require(
            0 < self.service_level < 1, "FLYWHEEL_REPLENISHMENT_SERVICE_LEVEL", "must be in (0, 1)"
        )
        require(self.n_jobs >= 1, "FLYWHEEL_FORECAST_JOBS", "must be at least 1")
        self.param_overrides()

    def param_overrides(self) -> dict[str, Any]:
        return json_object(self.params, "FLYWHEEL_FORECAST_PARAMS")
