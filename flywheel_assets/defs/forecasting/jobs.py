"""The forecasting job and its daily schedule: after the flywheel's day, for the day before."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from flywheel_assets.defs.common import daily
from flywheel_assets.defs.forecasting.assets import FORECAST_ASSETS, forecast_beats_seasonal_naive
from flywheel_assets.orchestration.executor import flywheel_executor

forecast_cycle = dg.define_asset_job(
    "forecast_cycle",
    selection=dg.AssetSelection.assets(*FORECAST_ASSETS)
    | dg.AssetSelection.checks(forecast_beats_seasonal_naive),
    partitions_def=daily,
    executor_def=flywheel_executor,
    description=(
        "One day of demand forecasting: backtest, champion forecaster, forecast, replenishment."
    ),
)


@dg.schedule(
    job=forecast_cycle,
    # After the flywheel cycle (01:00 UTC by default): the day's orders are ingested by then.
    cron_schedule="0 4 * * *",
    execution_timezone="UTC",
    name="daily_forecast_cycle",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 04:00 UTC, the forecast for the day before: backtest, fit, forecast, plan.",
)
def daily_forecast_schedule(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    day = context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    key = day.isoformat()
    if not daily.has_partition_key(key):
        return dg.SkipReason(f"{key} is not one of the daily partitions: nothing to run")
    return dg.RunRequest(run_key=f"forecast-{key}", partition_key=key)
