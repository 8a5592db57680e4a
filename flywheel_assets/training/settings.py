"""Training's settings: the labelled examples and the XGBoost challenger (docs/models.md)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flywheel_assets.platform.config import Settings, json_object, require, setting

# Mirrors training.model.BIAS_CORRECTIONS and LABELS (kept here so settings import no XGBoost).
BIAS_CORRECTIONS = ("position", "ipw", "position+ipw", "none", "unbiased_lambdarank")
LABEL_NAMES = ("purchase", "click")


@dataclass(frozen=True)
class TrainingSettings(Settings):
    stage = "training"

    window_days: int = setting(
        14, "FLYWHEEL_TRAINING_WINDOW_DAYS", "days of labelled examples a challenger trains on"
    )
    label: str = setting(
        "purchase", "FLYWHEEL_LABEL", "what the ranker predicts: `purchase` or `click`"
    )
    holdout_fraction: float = setting(
        0.3,
        "FLYWHEEL_HOLDOUT_FRACTION",
        "the share of the day's last hours held out for the offline evaluation",
    )
    label_window_hours: float = setting(
        24.0,
        "FLYWHEEL_LABEL_WINDOW_HOURS",
        "a click or purchase labels an impression of the same request and item at most this "
        "long after it (and arriving the same day)",
    )
    bias_correction: str = setting(
        "position",
        "FLYWHEEL_BIAS_CORRECTION",
        "how training removes the logging policy's bias: `position`, `ipw`, `position+ipw`, "
        "`none`, `unbiased_lambdarank` ([docs/models.md](docs/models.md))",
    )
    max_ipw_weight: float = setting(
        20.0, "FLYWHEEL_MAX_IPW_WEIGHT", "inverse-propensity weights are clipped at this"
    )
    xgb_params: str = setting(
        "{}", "FLYWHEEL_XGB_PARAMS", "JSON object of XGBoost parameters over the defaults"
    )
    warm_start: bool = setting(
        False,
        "FLYWHEEL_WARM_START",
        "`true`: boost the champion on the partitions it has not seen instead of a full retrain",
    )
    warm_start_rounds: int = setting(
        200, "FLYWHEEL_WARM_START_ROUNDS", "boosting rounds added to the champion when warm"
    )
    realtime_features: bool = setting(
        True,
        "FLYWHEEL_REALTIME_FEATURES",
        "`true`: challengers learn from the session's last hour as of each request "
        "([docs/realtime.md](docs/realtime.md)); `false`: the day-old snapshot only",
    )
    dask_scheduler: str | None = setting(
        None,
        "FLYWHEEL_DASK_SCHEDULER",
        "a Dask scheduler address (`tcp://dask:8786`): train with `xgboost.dask` on that cluster",
        shown_default="unset (in process)",
    )
    code_version: str | None = setting(
        None,
        "FLYWHEEL_CODE_VERSION",
        "the code version recorded with every model (e.g. the image's git SHA)",
        shown_default="`git describe` of the checkout, else the package version",
    )

    def validate(self) -> None:
        require(self.window_days >= 1, "FLYWHEEL_TRAINING_WINDOW_DAYS", "must be at least 1")
        require(self.label in LABEL_NAMES, "FLYWHEEL_LABEL", f"must be one of {LABEL_NAMES}")
        require(0 < self.holdout_fraction < 1, "FLYWHEEL_HOLDOUT_FRACTION", "must be in (0, 1)")
        require(
            self.bias_correction in BIAS_CORRECTIONS,
            "FLYWHEEL_BIAS_CORRECTION",
            f"{self.bias_correction!r} is not one of {list(BIAS_CORRECTIONS)}",
        )
        require(self.max_ipw_weight >= 1, "FLYWHEEL_MAX_IPW_WEIGHT", "must be at least 1")
        require(self.label_window_hours > 0, "FLYWHEEL_LABEL_WINDOW_HOURS", "must be positive")
        self.params()

    def params(self) -> dict[str, Any]:
        """The XGBoost parameters over the defaults (FLYWHEEL_XGB_PARAMS)."""
        return json_object(self.xgb_params, "FLYWHEEL_XGB_PARAMS")

    def spec(self, day: dt.date, warm_start_from: str | None = None):  # noqa: ANN201
        """The challenger's training specification for ``day`` (training.challenger.TrainingSpec,
        stored with every model)."""
        from flywheel_assets.training.challenger import TrainingSpec

        return TrainingSpec(
            day=day,
            window_days=self.window_days,
            holdout_fraction=self.holdout_fraction,
            label=self.label,
            bias_correction=self.bias_correction,
            max_ipw_weight=self.max_ipw_weight,
            params=self.params(),
            num_boost_round=self.warm_start_rounds if warm_start_from else 1000,
            warm_start_from=warm_start_from,
            realtime_features=self.realtime_features,
        )
