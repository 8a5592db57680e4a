"""Quality's settings: the data-quality thresholds of the blocking checks (docs/quality.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from flywheel_assets.platform.config import Settings, SettingsError, require, setting

# The columns watched for drift per table, unless FLYWHEEL_DRIFT_COLUMNS says otherwise.
DEFAULT_DRIFT_COLUMNS: dict[str, list[str]] = {
    "user_features": [
        "u_ctr_28d",
        "u_conversion_28d",
        "u_avg_click_price_28d",
        "u_days_since_last_event",
    ],
    "item_features": ["i_price", "i_price_change_7d", "i_ctr_28d", "i_conversion_28d"],
    "score_samples": ["score"],
}


@dataclass(frozen=True)
class QualitySettings(Settings):
    stage = "quality"

    max_quarantine_share: float = setting(
        0.02,
        "FLYWHEEL_MAX_QUARANTINE_SHARE",
        "open quarantine rows (data faults; exact redeliveries excluded) above this share of "
        "the day's events read block the day",
    )
    volume_reference_days: int = setting(
        7, "FLYWHEEL_VOLUME_REFERENCE_DAYS", "days before a day whose median volume it is judged by"
    )
    volume_min_reference_days: int = setting(
        3,
        "FLYWHEEL_VOLUME_MIN_REFERENCE_DAYS",
        "volume is judged only with at least this many reference days",
    )
    volume_max_drop: float = setting(
        0.5,
        "FLYWHEEL_VOLUME_MAX_DROP",
        "error when the day's raw events fall below the median × (1 − this)",
    )
    volume_max_rise: float = setting(
        3.0,
        "FLYWHEEL_VOLUME_MAX_RISE",
        "warning when the day's raw events rise above the median × (1 + this)",
    )
    freshness_hours: float = setting(
        6.0,
        "FLYWHEEL_FRESHNESS_HOURS",
        "the day's newest event should be at most this many hours before the day's end",
    )
    drift_psi_warn: float = setting(
        0.1, "FLYWHEEL_DRIFT_PSI_WARN", "population stability index that warns of drift"
    )
    drift_psi_error: float = setting(
        0.25, "FLYWHEEL_DRIFT_PSI_ERROR", "population stability index that blocks the day"
    )
    drift_ks_alpha: float = setting(
        0.001, "FLYWHEEL_DRIFT_KS_ALPHA", "level of the two-sample Kolmogorov-Smirnov test"
    )
    drift_reference_days: int = setting(
        7, "FLYWHEEL_DRIFT_REFERENCE_DAYS", "days before a day that drift compares it with"
    )
    drift_min_reference_days: int = setting(
        3,
        "FLYWHEEL_DRIFT_MIN_REFERENCE_DAYS",
        "drift is judged only with at least this many reference days",
    )
    drift_warmup_days: int = setting(
        28,
        "FLYWHEEL_DRIFT_WARMUP_DAYS",
        "feature windows fill during a shop's first weeks: drift is judged once the reference "
        "window starts this many days after the first day with events (figures are reported "
        "before)",
    )
    drift_columns: str | None = setting(
        None,
        "FLYWHEEL_DRIFT_COLUMNS",
        "JSON: the columns watched for drift per table (`user_features`, `item_features`, "
        "`score_samples`)",
        shown_default="rates, prices, recency, scores",
    )

    def validate(self) -> None:
        require(
            0 <= self.max_quarantine_share <= 1,
            "FLYWHEEL_MAX_QUARANTINE_SHARE",
            "must be in [0, 1]",
        )
        require(0 < self.volume_max_drop < 1, "FLYWHEEL_VOLUME_MAX_DROP", "must be in (0, 1)")
        require(self.volume_max_rise > 0, "FLYWHEEL_VOLUME_MAX_RISE", "must be positive")
        require(self.freshness_hours > 0, "FLYWHEEL_FRESHNESS_HOURS", "must be positive")
        require(
            min(self.volume_reference_days, self.drift_reference_days) >= 1,
            "FLYWHEEL_VOLUME_REFERENCE_DAYS / FLYWHEEL_DRIFT_REFERENCE_DAYS",
            "reference windows need at least 1 day",
        )
        self.watched_columns()  # a malformed FLYWHEEL_DRIFT_COLUMNS fails at once

    def watched_columns(self) -> dict[str, list[str]]:
        """Table -> the columns watched for drift (a table not listed is not watched)."""
        if not self.drift_columns:
            return DEFAULT_DRIFT_COLUMNS
        try:
            mapping = json.loads(self.drift_columns)
        except ValueError as exc:
            raise SettingsError(f"FLYWHEEL_DRIFT_COLUMNS is invalid: {exc}") from None
        if not isinstance(mapping, dict) or not all(
            isinstance(v, list) and all(isinstance(c, str) for c in v) for v in mapping.values()
        ):
            raise SettingsError(
                "FLYWHEEL_DRIFT_COLUMNS is invalid: must map table names to lists of column names"
            )
        unknown = set(mapping) - set(DEFAULT_DRIFT_COLUMNS)
        if unknown:
            raise SettingsError(
                f"FLYWHEEL_DRIFT_COLUMNS is invalid: unknown tables {sorted(unknown)}; use "
                f"{sorted(DEFAULT_DRIFT_COLUMNS)}"
            )
        return {k: list(v) for k, v in mapping.items()}
