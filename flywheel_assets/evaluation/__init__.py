"""Evaluation: offline metrics, the offline gate, experiments and the public statistics API.

Users call the statistics on their own logs (the import path is stable)::

    from flywheel_assets.evaluation import ab_test, estimate_policy_value, srm_test

Plain functions, no Dagster (docs/evaluation.md). The modules: ``offline`` (AUC, log loss,
NDCG, recall, calibration, the offline gate), ``off_policy`` (IPS, SNIPS, DM, DR),
``online_stats`` (sequential tests, SRM, CUPED, Holm), ``experiments`` (an experiment's daily
look and verdict), ``promotion`` (the day's decision, a pure function). ``holdout`` and
``online`` run the offline comparison and the daily look on the warehouse; they use the
registry, so they are imported by name, not from here.
"""

from flywheel_assets.evaluation.off_policy import (
    PolicyValue,
    estimate_policy_value,
    estimate_ranking_value,
)
from flywheel_assets.evaluation.offline import (
    OfflineMetrics,
    auc,
    calibration,
    log_loss,
    ndcg_at_k,
    offline_metrics,
    promotion_rule,
    recall_at_k,
)
from flywheel_assets.evaluation.online_stats import (
    ABTestResult,
    GuardrailResult,
    SRMResult,
    ab_test,
    assign_variant,
    cuped_adjust,
    holm_adjust,
    non_inferiority_test,
    required_sample_size,
    srm_test,
)

__all__ = [
    "ABTestResult",
    "GuardrailResult",
    "OfflineMetrics",
    "PolicyValue",
    "SRMResult",
    "ab_test",
    "assign_variant",
    "auc",
    "calibration",
    "cuped_adjust",
    "estimate_policy_value",
    "estimate_ranking_value",
    "holm_adjust",
    "log_loss",
    "ndcg_at_k",
    "non_inferiority_test",
    "offline_metrics",
    "promotion_rule",
    "recall_at_k",
    "required_sample_size",
    "srm_test",
]
