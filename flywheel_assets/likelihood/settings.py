"""Purchase likelihood's settings (docs/likelihood.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flywheel_assets.platform.config import Settings, json_object, require, setting

SOURCES = ("auto", "orders", "events")


@dataclass(frozen=True)
class LikelihoodSettings(Settings):
    stage = "likelihood"

    source: str = setting(
        "auto",
        "FLYWHEEL_LIKELIHOOD_SOURCE",
        "where purchases come from: `orders` (an order is a purchase), `events` (purchase "
        "events) or `auto` (order lines when the history has any); browsing always comes from "
        "events",
    )
    history_days: int = setting(
        400,
        "FLYWHEEL_LIKELIHOOD_HISTORY_DAYS",
        "days of user activity the model reads at least (more when its windows need them: a "
        "year of features before its oldest training day, 532 days with the defaults)",
    )
    backtest_days: int = setting(
        4, "FLYWHEEL_LIKELIHOOD_BACKTEST_DAYS", "held-out days per horizon, a week apart"
    )
    max_ece: float = setting(
        0.03,
        "FLYWHEEL_LIKELIHOOD_MAX_ECE",
        "the largest expected calibration error on the held-out days the blocking check "
        "lets the champion publish with",
    )
    params: str = setting(
        "{}",
        "FLYWHEEL_LIKELIHOOD_PARAMS",
        "JSON object over the model's default parameters (`num_boost_round`, `training_days`, "
        "`calibration`, `xgb_params`, ...): the challenger's specification",
    )

    def validate(self) -> None:
        require(self.source in SOURCES, "FLYWHEEL_LIKELIHOOD_SOURCE", f"must be one of {SOURCES}")
        require(
            self.history_days >= 120, "FLYWHEEL_LIKELIHOOD_HISTORY_DAYS", "must be at least 120"
        )
        require(self.backtest_days >= 1, "FLYWHEEL_LIKELIHOOD_BACKTEST_DAYS", "at least 1")
        require(0 < self.max_ece < 1, "FLYWHEEL_LIKELIHOOD_MAX_ECE", "must be in (0, 1)")
        self.param_overrides()

    def param_overrides(self) -> dict[str, Any]:
        return json_object(self.params, "FLYWHEEL_LIKELIHOOD_PARAMS")
