"""Features' settings."""

from __future__ import annotations

from dataclasses import dataclass

from flywheel_assets.platform.config import Settings, require, setting


@dataclass(frozen=True)
class FeatureSettings(Settings):
    stage = "features"

    prior_strength: float = setting(
        20.0,
        "FLYWHEEL_PRIOR_STRENGTH",
        "pseudo-impressions of the shop-wide rate that smooth every CTR and conversion feature",
    )

    def validate(self) -> None:
        require(self.prior_strength >= 0, "FLYWHEEL_PRIOR_STRENGTH", "must not be negative")
