"""Evaluation's settings: the offline gate and the online experiments (docs/evaluation.md)."""

from __future__ import annotations

from dataclasses import dataclass

from flywheel_assets.platform.config import Settings, require, setting


@dataclass(frozen=True)
class ExperimentSettings(Settings):
    stage = "evaluation"

    min_log_loss_gain: float = setting(
        0.0,
        "FLYWHEEL_MIN_LOG_LOSS_GAIN",
        "the offline gate: the challenger's holdout log loss must beat the champion's by this",
    )
    max_ndcg_drop: float = setting(
        0.01,
        "FLYWHEEL_MAX_NDCG_DROP",
        "the offline gate: the challenger's NDCG@10 may fall at most this below the champion's",
    )
    challenger_traffic_share: float = setting(
        0.5,
        "FLYWHEEL_CHALLENGER_TRAFFIC_SHARE",
        "the challenger's share of users in an experiment",
    )
    experiment_max_days: int = setting(
        7,
        "FLYWHEEL_EXPERIMENT_MAX_DAYS",
        "daily looks before an experiment without a win ends",
        shown_default="`7` (the demo: `3`)",
    )
    experiment_alpha: float = setting(
        0.05, "FLYWHEEL_EXPERIMENT_ALPHA", "the experiments' test level"
    )
    guardrail_revenue_margin: float = setting(
        0.10,
        "FLYWHEEL_GUARDRAIL_REVENUE_MARGIN",
        "non-inferiority margin of revenue per user, a share of the champion's value",
    )
    guardrail_ctr_margin: float = setting(
        0.05, "FLYWHEEL_GUARDRAIL_CTR_MARGIN", "non-inferiority margin of CTR, a share"
    )
    guardrail_latency_margin: float = setting(
        0.25,
        "FLYWHEEL_GUARDRAIL_LATENCY_MARGIN",
        "non-inferiority margin of per-request latency, a share",
    )

    def validate(self) -> None:
        require(
            0 < self.challenger_traffic_share < 1,
            "FLYWHEEL_CHALLENGER_TRAFFIC_SHARE",
            "must be in (0, 1)",
        )
        require(self.experiment_max_days >= 1, "FLYWHEEL_EXPERIMENT_MAX_DAYS", "must be ≥ 1")
        require(0 < self.experiment_alpha < 1, "FLYWHEEL_EXPERIMENT_ALPHA", "must be in (0, 1)")
        for env, margin in (
            ("FLYWHEEL_GUARDRAIL_REVENUE_MARGIN", self.guardrail_revenue_margin),
            ("FLYWHEEL_GUARDRAIL_CTR_MARGIN", self.guardrail_ctr_margin),
            ("FLYWHEEL_GUARDRAIL_LATENCY_MARGIN", self.guardrail_latency_margin),
        ):
            require(margin >= 0, env, "must not be negative")

    def policy(self):  # noqa: ANN201 - evaluation.experiments.ExperimentPolicy
        """The knobs every experiment runs with."""
        from flywheel_assets.evaluation.experiments import ExperimentPolicy

        return ExperimentPolicy(
            traffic_share=self.challenger_traffic_share,
            max_days=self.experiment_max_days,
            alpha=self.experiment_alpha,
            revenue_margin=self.guardrail_revenue_margin,
            ctr_margin=self.guardrail_ctr_margin,
            latency_margin=self.guardrail_latency_margin,
        )
