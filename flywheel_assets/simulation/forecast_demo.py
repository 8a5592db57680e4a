"""`flywheel demo-forecast`: a shop with only its order history, forecast and measured against
the simulator's truth (docs/forecasting.md, "On the simulator").

The simulator draws ``days`` days of order lines from its world (simulation/demand.py) and
the 28 days after them, which stay hidden. The shop's history is exported as one file and
imported as a shop would (`flywheel import orders`: split into its days, ingested in one run
of the orders asset), its catalog delivered on the first day; then one run of the forecast
job for the last day backtests, fits, forecasts and plans. The hidden days then score what
was published: the forecast against the actual units and the true expected units, the
80% interval's coverage, and the replenishment plan's fill rate when the true demand is drawn
over those days.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flywheel_assets.forecasting.backtest import interval_coverage
from flywheel_assets.forecasting.panel import LEVELS
from flywheel_assets.forecasting.replenishment import fill_rate_over_lead_time
from flywheel_assets.forecasting.settings import ForecastSettings
from flywheel_assets.ingestion.imports import plan_import, write_import
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.simulation.demand import DemandHistory, demand_history
from flywheel_assets.simulation.demo import (
    prepare_home,
    run_job_for_day,
    write_env_file,
    write_landing,
)
from flywheel_assets.simulation.simulator import ORDER_EXTRA_UNITS

HORIZON = 28


@dataclass(frozen=True)
class ForecastDemoResult:
    backtest: pd.DataFrame  # the day's forecast_backtest rows
    scores: pd.DataFrame  # the published forecast on the hidden days, per level
    fill_rate: float
    service_level: float
    day: dt.date
    model_version: str


def run_forecast_demo(
    *,
    home: Path,
    days: int = 400,
    items: int = 500,
    seed: int = 1,
    start: dt.date = dt.date(2025, 1, 1),
    units_per_day: float | None = None,
) -> ForecastDemoResult:
    paths = prepare_home(home, seed=seed)
    last = start + dt.timedelta(days=days - 1)
    write_env_file(paths, start, days, None)
    print(f"flywheel demo-forecast home: {paths.home}", file=sys.stderr)
    history = demand_history(
        start,
        days + HORIZON,
        seed=seed,
        n_items=items,
        new_items_per_day=max(1, items // 200),
        # A price change per item about every two months (the ranking demo's world changes 20
        # prices a day among 1,000 items: a busy sale calendar for a forecast).
        price_changes_per_day=max(1, items // 60),
        units_per_day=units_per_day or items * 0.6,
    )
    cutoff = pd.Timestamp(last + dt.timedelta(days=1))
    export = paths.home / "orders-export.parquet"
    history.orders[history.orders["order_time"] < cutoff].to_parquet(export, index=False)
    for day, delivered in history.catalog_changes.items():
        if day <= last and len(delivered):
            write_landing(delivered, paths.landing_dir, "catalog", day, "jsonl")
    plan = write_import(
        plan_import(export), paths.landing_dir, today=last, first_partition=start
    ).plan
    print(
        f"exported {plan.rows_read:,} order lines of {days} days; importing them into their "
        "days, then one forecast run...",
        file=sys.stderr,
    )
    wh = Warehouse(paths.warehouse_url)
    wh.migrate()
    _record_truth(wh, history)
    _materialize_history(start, last)
    _materialize_forecast(last)
    return score(wh, history, last)


def _record_truth(wh: Warehouse, history: DemandHistory) -> None:
    truth = history.truth.assign(dt=history.truth["day"].dt.date)
    with wh.begin() as conn:
        for day in truth["dt"].unique():
            wh.delete_partition(conn, "simulator_demand", day)
        wh.insert_df(conn, "simulator_demand", truth[["dt", "item_id", "expected_units"]])


def _materialize_history(start: dt.date, last: dt.date) -> None:
    """The catalog of the first day and every day's orders, one run each (single-run
    backfills over the range, as `flywheel import orders` starts)."""
    import dagster as dg

    from flywheel_assets.defs.ingestion.assets import catalog_items, orders
    from flywheel_assets.defs.quality.checks import catalog_items_accounted, orders_accounted
    from flywheel_assets.defs.resources import resources

    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    for assets, checks, first in (
        ([catalog_items], [catalog_items_accounted], start),
        ([orders], [orders_accounted], start),
    ):
        result = dg.materialize(
            [*assets, *checks],
            resources=resources(),
            instance=dg.DagsterInstance.get(),
            tags={
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat(),
                "flywheel/source": "demo-forecast",
            },
            run_config=quiet,
            raise_on_error=False,
        )
        if not result.success:
            raise SystemExit("ingesting the history failed; see the run in the Dagster UI")


def _materialize_forecast(day: dt.date) -> None:
    from flywheel_assets.defs.forecasting.jobs import forecast_cycle

    run_job_for_day(forecast_cycle.name, day, "demo-forecast")


def _at_level(frame: pd.DataFrame, value: str, level: str, catalog: pd.Series) -> pd.DataFrame:
    """Per-item daily ``value`` (item_id, day) summed to ``level``'s series (key, day)."""
    key = {"item": frame["item_id"], "category": frame["item_id"].map(catalog), "total": "total"}
    return frame.assign(key=key[level]).groupby(["key", "day"], as_index=False)[value].sum()


def score(wh: Warehouse, history: DemandHistory, day: dt.date) -> ForecastDemoResult:
    """The day's published forecast and plan against the hidden days that followed."""
    with wh.begin() as conn:
        forecast = wh.read_partition(conn, "demand_forecasts", day)
        backtest = wh.read_partition(conn, "forecast_backtest", day)
        plan = wh.read_partition(conn, "replenishment_plan", day)
    if forecast.empty:
        raise SystemExit(f"no forecast was published for {day}: see the forecast_cycle run")
    forecast["day"] = pd.to_datetime(forecast["target_day"])
    after = pd.Timestamp(day)
    units = history.units()
    units = units[units["day"] > after]
    truth = history.truth[history.truth["day"] > after]
    catalog = history.catalog.set_index("item_id")["category"]
    by_level = {level: _at_level(units, "units", level, catalog) for level in LEVELS}
    truth_by_level = {level: _at_level(truth, "expected_units", level, catalog) for level in LEVELS}
    rows = []
    for level, actual in by_level.items():
        f = forecast[forecast["level"] == level]
        j = f.merge(actual, on=["key", "day"], how="left").merge(
            truth_by_level[level], on=["key", "day"], how="left"
        )
        j["units"] = j["units"].fillna(0.0)
        j["expected_units"] = j["expected_units"].fillna(0.0)
        y = j["units"].to_numpy()
        # The median count: the floor of the jittered median (docs/forecasting.md).
        point = np.floor(j["units_p50"].to_numpy())
        lo, hi = j["units_p10"].to_numpy(), j["units_p90"].to_numpy()
        rows.append(
            {
                "level": level,
                "published_by": str(f["model_version"].iloc[0]),
                "series": j["key"].nunique(),
                "wape": float(np.abs(point - y).sum() / max(y.sum(), 1e-9)),
                "wape_truth": float(np.abs(j["expected_units"] - y).sum() / max(y.sum(), 1e-9)),
                "bias": float((point - y).sum() / max(y.sum(), 1e-9)),
                "coverage_80": float(interval_coverage(y, lo, hi).mean()),
                "coverage_80_discrete": float(((y >= np.floor(lo)) & (y <= np.floor(hi))).mean()),
                "mae_vs_truth": float(np.abs(point - j["expected_units"]).mean()),
            }
        )
    settings = ForecastSettings.resolve()
    lead_review = settings.lead_time_days + settings.review_days
    lam = (
        truth.pivot_table(index="item_id", columns="day", values="expected_units", fill_value=0.0)
        .reindex(plan["item_id"])
        .fillna(0.0)
        .to_numpy()[:, :lead_review]
    )
    # As the simulator sells: order lines, each of 1 + Poisson(ORDER_EXTRA_UNITS) units.
    rng = np.random.default_rng(day.toordinal())
    lines = rng.poisson(lam[None] / (1 + ORDER_EXTRA_UNITS), size=(4000, *lam.shape))
    demand = lines + rng.poisson(ORDER_EXTRA_UNITS * lines)
    fill = fill_rate_over_lead_time(plan, demand)
    return ForecastDemoResult(
        backtest=backtest,
        scores=pd.DataFrame(rows),
        fill_rate=fill,
        service_level=settings.service_level,
        day=day,
        model_version=str(forecast.loc[forecast["level"] == "item", "model_version"].iloc[0]),
    )
