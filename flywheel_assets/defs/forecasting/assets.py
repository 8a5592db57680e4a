"""Forecasting: the backtest that decides, the champion forecaster, the day's demand forecast
and the replenishment advice (docs/forecasting.md).

The work is in ``flywheel_assets.forecasting.daily``; the assets read the settings, call it
and report. They run in their own job, ``forecast_cycle``, after the flywheel's day: a
backtest refits several models at several origins, which the ranking cycle need not wait for.
"""

import datetime as dt
import getpass

import dagster as dg
import pandas as pd

from flywheel_assets.defs.common import (
    check_days,
    daily_asset,
    materialize_days,
    md_table,
    utcnow,
)
from flywheel_assets.defs.ingestion.assets import catalog_items, orders
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.resources import ForecastConfig, PathsConfig, WarehouseResource
from flywheel_assets.forecasting import daily
from flywheel_assets.forecasting.backtest import worse_than_seasonal_naive
from flywheel_assets.platform.plots import backtest_markdown, forecast_markdown

_FORECASTING = daily_asset("forecasting", {"xgboost", "python"})


def _backtest_metadata(day: dt.date, outcome: daily.BacktestOutcome) -> dict[str, object]:
    """The backtest's scores for the UI: a table per level and model, the item-level figures
    of each model, each model's time and item MASE by origin."""
    s = outcome.summary
    table = s.sort_values(["level", "mase"])[
        ["level", "model", "mase", "wape", "bias", "coverage_80", "coverage_80_discrete"]
    ]
    item = s[s["level"] == "item"].set_index("model")
    seconds = (
        outcome.per_origin.drop_duplicates(["model", "origin"]).groupby("model")["seconds"].sum()
    )
    return {
        "backtested": True,
        "dagster/row_count": dg.MetadataValue.int(len(s)),
        "origins": ", ".join(str(o.date()) for o in outcome.origins),
        "history_days": dg.MetadataValue.int(outcome.history.days),
        "sales_source": outcome.history.source,
        "winner": outcome.winner,
        "reason": outcome.reason,
        **{
            f"item_mase_{m}": dg.MetadataValue.float(float(item.loc[m, "mase"])) for m in item.index
        },
        "item_coverage_80": dg.MetadataValue.float(
            float(item.loc[daily.CHALLENGER, "coverage_80"])
        ),
        "item_coverage_80_discrete": dg.MetadataValue.float(
            float(item.loc[daily.CHALLENGER, "coverage_80_discrete"])
        ),
        "scores": dg.MetadataValue.md(md_table(table)),
        "seconds_per_model": dg.MetadataValue.md(md_table(seconds.round(1).reset_index())),
        "mase_by_origin": dg.MetadataValue.md(
            backtest_markdown(outcome.per_origin, f"{day}: item MASE at each origin")
        ),
    }


@dg.asset(
    **_FORECASTING,
    deps=[orders, accepted_events, catalog_items],
    description=(
        "The challenger's and the champion's forecasting specifications, seasonal naive and "
        "ETS, each refitted and scored on the same rolling origins ending on the day: MASE, "
        "WAPE, bias and the 80% interval's coverage (of jittered counts, and of whole-unit "
        "bands) per level (item, category, total). Decides which specification forecasts next "
        "and which forecaster publishes the category and total levels."
    ),
)
def forecast_backtest(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, forecasting: ForecastConfig
) -> dg.MaterializeResult:
    settings = forecasting.settings()

    def build(day: dt.date) -> dict[str, object]:
        wh = warehouse.get()
        try:
            outcome = daily.run_backtest(wh, day, settings)
        except daily.NotEnoughHistory as exc:
            context.log.warning(str(exc))
            with wh.begin() as conn:
                wh.delete_partition(conn, "forecast_backtest", day)
            return {"backtested": False, "reason": str(exc)}
        daily.write_backtest(wh, day, outcome)
        return _backtest_metadata(day, outcome)

    return materialize_days(context, build)


@dg.asset_check(
    asset=forecast_backtest,
    blocking=True,
    pool=_FORECASTING["pool"],
    description=(
        "The specification that would forecast next beats seasonal naive at item level (lower "
        "MASE); otherwise no forecaster is fitted or published for the day."
    ),
)
def forecast_beats_seasonal_naive(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    def check(day: dt.date) -> dg.AssetCheckResult:
        summary = daily.read_backtest(warehouse.get(), day)
        if summary.empty:
            return dg.AssetCheckResult(
                passed=True, description=f"{day}: no backtest (not enough history yet)"
            )
        winner, reason = daily.decide_from_table(summary)
        worse = worse_than_seasonal_naive(summary, winner)
        item = summary[summary["level"] == "item"].set_index("model")["mase"]
        return dg.AssetCheckResult(
            passed=not worse,
            description=(
                f"{winner} item MASE {item[winner]:.4f} vs seasonal naive "
                f"{item['seasonal_naive']:.4f}" + ("" if not worse else ": worse; not published")
            ),
            metadata={"winner": winner, "reason": reason},
        )

    return check_days(context, check)


@dg.asset(
    **_FORECASTING,
    deps=[forecast_backtest],
    description=(
        "The winning forecasting specification fitted on all history through the day, "
        "registered with its lineage (forecast_models) and made the forecast_champion (every "
        "move in alias_history and the audit trail)."
    ),
)
def forecast_model(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    paths: PathsConfig,
    forecasting: ForecastConfig,
) -> dg.MaterializeResult:
    from flywheel_assets.training.daily import code_version

    settings = forecasting.settings()

    def build(day: dt.date) -> dict[str, object]:
        wh = warehouse.get()
        summary = daily.read_backtest(wh, day)
        if summary.empty:
            return {"fitted": False, "reason": "no backtest for the day (not enough history)"}
        winner, reason = daily.decide_from_table(summary)
        fitted = daily.fit_champion(
            wh,
            day,
            settings,
            winner=winner,
            reason=reason,
            models_dir=paths.paths().models_dir,
            code_version=code_version(),
            actor=f"dagster:{getpass.getuser()}",
            now=utcnow(),
        )
        lineage = fitted.lineage
        return {
            "fitted": True,
            "model_version": fitted.model_version,
            "alias_moved": fitted.moved,
            "reason": fitted.reason,
            "train_rows": dg.MetadataValue.int(fitted.n_train_rows),
            "history": f"{lineage.get('first_day')} to {day} ({lineage.get('history_days')} days)",
            "training_origins": ", ".join(lineage.get("training_origins", [])),
            "calibration": dg.MetadataValue.json(lineage.get("calibration_adjustment", {})),
            "sales_source": str(lineage.get("source")),
        }

    return materialize_days(context, build)


@dg.asset(
    **_FORECASTING,
    deps=[forecast_model],
    description=(
        "The champion's forecast made on the day: units (10th, 50th, 90th percentiles of the "
        "jittered count) and revenue per item, category and the whole shop for each of the "
        "next days (demand_forecasts). A category or total level where a baseline beat the "
        "champion in the day's backtest is published by that baseline (its name in "
        "model_version)."
    ),
)
def demand_forecast(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, forecasting: ForecastConfig
) -> dg.MaterializeResult:
    settings = forecasting.settings()

    def build(day: dt.date) -> dict[str, object]:
        wh = warehouse.get()
        try:
            rows, history = daily.forecast_day(wh, day, settings)
        except LookupError as exc:
            context.log.warning(str(exc))
            return {"forecast": False, "reason": str(exc)}
        total = rows[rows["level"] == "total"]
        past = history.panels["total"].long(day - dt.timedelta(days=55), day)
        levels = rows.groupby("level").agg(
            published_by=("model_version", "first"),
            series=("key", "nunique"),
            units_p50=("units_p50", "sum"),
            revenue=("revenue_p50", "sum"),
        )
        return {
            "forecast": True,
            "dagster/row_count": dg.MetadataValue.int(len(rows)),
            "model_version": str(rows.loc[rows["level"] == "item", "model_version"].iloc[0]),
            "horizon_days": dg.MetadataValue.int(int(rows["target_day"].nunique())),
            "shop_units_next_horizon": dg.MetadataValue.float(float(total["units_p50"].sum())),
            "shop_revenue_next_horizon": dg.MetadataValue.float(float(total["revenue_p50"].sum())),
            "levels": dg.MetadataValue.md(md_table(levels.reset_index())),
            "shop_forecast": dg.MetadataValue.md(
                forecast_markdown(
                    past,
                    total.assign(target_day=pd.to_datetime(total["target_day"])),
                    f"{day}: the whole shop's units, sold and forecast",
                )
            ),
        }

    return materialize_days(context, build)


@dg.asset(
    **daily_asset("forecasting", {"python"}),
    deps=[demand_forecast],
    description=(
        "Per item: the order-up-to level, reorder point and suggested order quantity for the "
        "configured lead time, review period and fill rate, from the day's forecast "
        "distribution (docs/forecasting.md, Replenishment)."
    ),
)
def replenishment_plan(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, forecasting: ForecastConfig
) -> dg.MaterializeResult:
    settings = forecasting.settings()

    def build(day: dt.date) -> dict[str, object]:
        try:
            plan = daily.plan_day(warehouse.get(), day, settings)
        except LookupError as exc:
            context.log.warning(str(exc))
            return {"planned": False, "reason": str(exc)}
        top = plan.sort_values("suggested_order_qty", ascending=False).head(10)
        return {
            "planned": True,
            "dagster/row_count": dg.MetadataValue.int(len(plan)),
            "lead_time_days": dg.MetadataValue.int(settings.lead_time_days),
            "service_level": dg.MetadataValue.float(settings.service_level),
            "units_to_order": dg.MetadataValue.float(float(plan["suggested_order_qty"].sum())),
            "largest_orders": dg.MetadataValue.md(
                md_table(
                    top[["item_id", "demand_lead_time", "reorder_point", "suggested_order_qty"]]
                )
            ),
        }

    return materialize_days(context, build)


FORECAST_ASSETS = [forecast_backtest, forecast_model, demand_forecast, replenishment_plan]
