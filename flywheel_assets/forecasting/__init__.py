"""Demand forecasting: item, category and shop forecasts with intervals, a rolling-origin
backtest against statistical baselines, and replenishment advice.

Plain functions on pandas frames and dense panels (no Dagster, no warehouse, no environment),
so the assets, the CLI and the tests call the same code. docs/forecasting.md describes the
model, the conformal intervals, the metrics, the decision rule and the replenishment formulas.
"""

from __future__ import annotations

from flywheel_assets.forecasting.backtest import (
    backtest,
    challenger_wins,
    forecast_metrics,
    rolling_origins,
    worse_than_seasonal_naive,
)
from flywheel_assets.forecasting.baselines import ets, seasonal_naive
from flywheel_assets.forecasting.model import ForecastParams, GlobalForecaster, fit_predict
from flywheel_assets.forecasting.panel import DemandPanel, build_item_panel, panels_for_levels
from flywheel_assets.forecasting.replenishment import replenishment_plan, simulate_fill_rate

__all__ = [
    "DemandPanel",
    "ForecastParams",
    "GlobalForecaster",
    "backtest",
    "build_item_panel",
    "challenger_wins",
    "ets",
    "fit_predict",
    "forecast_metrics",
    "panels_for_levels",
    "replenishment_plan",
    "rolling_origins",
    "seasonal_naive",
    "simulate_fill_rate",
    "worse_than_seasonal_naive",
]
