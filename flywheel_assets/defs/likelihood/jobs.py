"""The purchase-likelihood job and its daily schedule: after the flywheel's day, for the day
before."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from flywheel_assets.defs.common import daily
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


@dg.schedule(
    job=likelihood_cycle,
    # After the flywheel cycle (01:00 UTC) and the forecast (04:00 UTC).
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    name="daily_likelihood_cycle",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 05:00 UTC, who will buy, as of the day before: backtest, fit, score.",
)
def daily_likelihood_schedule(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    day = context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    key = day.isoformat()
    if not daily.has_partition_key(key):
        return dg.SkipReason(f"{key} is not one of the daily partitions: nothing to run")
    return dg.RunRequest(run_key=f"likelihood-{key}", partition_key=key)
