"""Evaluation's check: the challenger's scores on the holdout against the reference days."""

import dagster as dg

from flywheel_assets.defs.common import WAREHOUSE_POOL
from flywheel_assets.defs.evaluation.assets import offline_evaluation
from flywheel_assets.defs.features.checks import drift_check
from flywheel_assets.defs.resources import QualityConfig, WarehouseResource


@dg.asset_check(
    asset=offline_evaluation,
    pool=WAREHOUSE_POOL,
    blocking=True,
    description=(
        "PSI and KS of the challenger's holdout scores against the challengers' scores on the "
        "reference days: a model whose outputs jumped is not promoted unseen."
    ),
)
def challenger_score_drift(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    quality: QualityConfig,
) -> dg.AssetCheckResult:
    return drift_check(
        context,
        warehouse,
        quality.settings(),
        "challenger scores",
        "score_samples",
        "score_samples",
        role="challenger",
    )
