"""The purchase-likelihood job and its daily schedule: after the flywheel's day, for the day
before."""

from __future__ import annotations

import dagster as dg

from flywheel_assets.defs.common import daily, day_before_schedule
from flywheel_assets.defs.likelihood.assets import LIKELIHOOD_ASSETS, likelihood_calibrated
from flywheel_assets.orchestration.executor import flywheel_executor

likelihood_cycle = dg.define_asset_job(
    "likelihood_cycle",
    selection=dg.AssetSelection.assets(*LIKELIHOOD_ASSETS)
    | dg.AssetSelection.checks(likelihood_calibrated),
    partitions_def=daily,
    executor_def=flywheel_executor,
    description="One day of purchase likelihood: backtest, champion model, every user's scores.",
)


# After the flywheel cycle (01:00 UTC) and the forecast (04:00 UTC).
daily_likelihood_schedule = day_before_schedule(
    likelihood_cycle,
    cron="0 5 * * *",
    name="daily_likelihood_cycle",
    description="At 05:00 UTC, who will buy, as of the day before: backtest, fit, score.",
)
