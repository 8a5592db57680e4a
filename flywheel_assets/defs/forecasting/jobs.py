"""The forecasting job and its daily schedule: after the flywheel's day, for the day before."""

from __future__ import annotations

import dagster as dg

from flywheel_assets.defs.common import daily, day_before_schedule
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


# After the flywheel cycle (01:00 UTC by default): the day's orders are ingested by then.
daily_forecast_schedule = day_before_schedule(
    forecast_cycle,
    cron="0 4 * * *",
    name="daily_forecast_cycle",
    description="At 04:00 UTC, the forecast for the day before: backtest, fit, forecast, plan.",
)
