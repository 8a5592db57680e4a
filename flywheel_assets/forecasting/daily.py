"""A day of forecasting over the warehouse: the work of the forecasting assets.

Each function reads what it needs, calls the plain forecasting functions (panel, model,
baselines, backtest, replenishment) and writes its table, one transaction per day, so a day
re-run replaces its rows. The decision rule (docs/forecasting.md, "Promotion"):

- every day the challenger specification (the configured ForecastParams) and the champion's
  (the parameters of the model behind the alias ``forecast_champion``) are refitted at the same
  rolling origins and scored beside seasonal naive and ETS;
- the challenger's specification replaces the champion's only when it wins the backtest
  (``backtest.challenger_wins``); the first champion is the first challenger that beats
  seasonal naive;
- the specification that wins is fitted on all history through the day and that fitted model
  serves: the alias moves to it with the reason (a new specification, or the champion's
  specification refitted on newer data), in alias_history and the audit trail;
- a champion specification worse than seasonal naive is refused by a blocking check: no
  forecast is published that day (the previous day's stay).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import cached_property, partial

import numpy as np
import pandas as pd

from flywheel_assets.forecasting.backtest import (
    Forecaster,
    backtest,
    challenger_wins,
    rolling_origins,
)
from flywheel_assets.forecasting.baselines import ets, seasonal_naive
from flywheel_assets.forecasting.model import (
    ForecastParams,
    GlobalForecaster,
    fit_predict,
    unit_prices,
)
from flywheel_assets.forecasting.panel import LEVELS, DemandPanel, panels_for_levels
from flywheel_assets.forecasting.replenishment import moments_from_quantiles, replenishment_plan
from flywheel_assets.forecasting.settings import ForecastSettings
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.registry.aliases import (
    decided_against,
    register_and_point,
    serving_for_day,
)

ALIAS = "forecast_champion"
CHALLENGER, CHAMPION = "challenger", "champion"
BASELINES = ("seasonal_naive", "ets")


class NotEnoughHistory(Exception):
    """Too few days of sales for the backtest's origins: nothing to decide yet."""


@dataclass(frozen=True)
class History:
    """What was sold up to ``last_day``, and every price point with the day it became known."""

    sales: pd.DataFrame  # item_id, day, units, revenue
    items: pd.DataFrame  # item_id, category, brand, price
    prices: pd.DataFrame  # item_id, day (valid from), known (known from), price
    source: str  # orders | events
    first_day: dt.date
    last_day: dt.date
    horizon: int

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def sales_rows(self) -> int:
        return len(self.sales)

    @cached_property
    def panels(self) -> dict[str, DemandPanel]:
        """The panels as of the day after ``last_day`` (what a forecast made today knows)."""
        return self.panels_as_of(pd.Timestamp(self.last_day + dt.timedelta(days=1)))

    def panels_as_of(self, origin: pd.Timestamp) -> dict[str, DemandPanel]:
        """Item, category and total panels whose prices are only those known before
        ``origin``: a backtest origin must not see a price change announced after it."""
        known = self.prices[pd.to_datetime(self.prices["known"]) < origin]
        return panels_for_levels(
            self.sales,
            self.items,
            known[["item_id", "day", "price"]],
            start=pd.Timestamp(self.first_day),
            end=pd.Timestamp(self.last_day + dt.timedelta(days=self.horizon)),
        )


def challenger_params(settings: ForecastSettings) -> ForecastParams:
    """The configured specification: the defaults with FLYWHEEL_FORECAST_PARAMS over them."""
    overrides = settings.param_overrides()
    base = ForecastParams().to_dict()
    if "xgb_params" in overrides:
        overrides = {**overrides, "xgb_params": {**base["xgb_params"], **overrides["xgb_params"]}}
    return ForecastParams.from_dict({**base, **overrides})


def load_history(wh: Warehouse, day: dt.date, settings: ForecastSettings) -> History:
    """Sales per item and day up to ``day`` (at most ``history_days``), the catalog as of
    ``day`` and its price changes, as item, category and total panels reaching ``horizon``
    days past ``day`` (planned prices of the days to forecast)."""
    horizon = challenger_params(settings).horizon
    from_day = day - dt.timedelta(days=settings.history_days - 1)
    until = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    bounds = {"from_day": dt.datetime.combine(from_day, dt.time()), "until": until}
    with wh.begin() as conn:
        source = settings.source
        if source == "auto":
            has_orders = wh.scalar(conn, load_sql("forecasting/has_orders"), **bounds)
            source = "orders" if has_orders else "events"
        sales = wh.query_df(conn, load_sql(f"forecasting/sales_from_{source}"), **bounds)
        catalog = wh.query_df(conn, load_sql("forecasting/catalog_as_of"), to_day=day)
        prices = wh.query_df(conn, load_sql("forecasting/price_changes"), to_day=day)
    if sales.empty:
        raise NotEnoughHistory(f"no sales up to {day} (source: {source})")
    sales["day"] = pd.to_datetime(sales["day"])
    items = _items(catalog, sales)
    prices = _price_history(prices, sales)
    listed = items.set_index("item_id")["price"]
    unpriced = sales["units_unpriced"].to_numpy("float64")
    sales["revenue"] = sales["revenue"] + unpriced * sales["item_id"].map(listed).fillna(0.0)
    return History(
        sales=sales[["item_id", "day", "units", "revenue"]],
        items=items,
        prices=prices,
        source=source,
        first_day=sales["day"].min().date(),
        last_day=day,
        horizon=horizon,
    )


def _price_history(catalog_prices: pd.DataFrame, sales: pd.DataFrame) -> pd.DataFrame:
    """Each item's price points: the catalog's deliveries (known from their delivery day), and
    what its order lines were priced at on the days it sold (known from the day after: a shop
    with only an order history has no other price, and a catalog delivered once goes stale).
    On one day a sale's price wins over the catalog's."""
    priced = sales["units"] - sales["units_unpriced"]
    sold = sales[(priced > 0) & (sales["revenue"] > 0)]
    realised = pd.DataFrame(
        {
            "item_id": sold["item_id"],
            "day": sold["day"],
            "known": sold["day"] + pd.Timedelta(days=1),
            "price": sold["revenue"] / priced[sold.index],
        }
    )
    catalog = catalog_prices.assign(
        day=pd.to_datetime(catalog_prices["day"]), known=pd.to_datetime(catalog_prices["known"])
    )
    return pd.concat([catalog, realised], ignore_index=True)


def _items(catalog: pd.DataFrame, sales: pd.DataFrame) -> pd.DataFrame:
    """The catalog, plus items that sold but the catalog never delivered (a shop with only an
    order history): no category or brand, priced at their average selling price."""
    sold = sales.groupby("item_id", as_index=False)[["units", "revenue", "units_unpriced"]].sum()
    unknown = sold[~sold["item_id"].isin(catalog["item_id"])]
    # Only the units sold with a price say what a unit sold for.
    priced = unknown["units"] - unknown["units_unpriced"]
    extra = pd.DataFrame(
        {
            "item_id": unknown["item_id"],
            "category": None,
            "brand": None,
            "price": (unknown["revenue"] / priced.where(priced > 0)).fillna(0.0),
        }
    )
    return pd.concat([catalog, extra], ignore_index=True) if len(extra) else catalog


@dataclass(frozen=True)
class BacktestOutcome:
    summary: pd.DataFrame  # level, model, model_version, origins, horizon_days, mase, ...
    per_origin: pd.DataFrame
    origins: list[pd.Timestamp]
    champion_version: str | None
    same_specification: bool
    winner: str  # challenger | champion: the specification that serves next
    reason: str
    history: History


def run_backtest(wh: Warehouse, day: dt.date, settings: ForecastSettings) -> BacktestOutcome:
    """Score the challenger's and the champion's specifications and the baselines on the same
    rolling origins ending on ``day``; decide which specification serves next. Raises
    NotEnoughHistory when the oldest origin would have too little history."""
    history = load_history(wh, day, settings)
    params = challenger_params(settings)
    origins = rolling_origins(pd.Timestamp(day), settings.backtest_origins, params.horizon, 7)
    oldest = (origins[0].date() - history.first_day).days
    needed = params.min_history + params.origin_step * 2
    if oldest < needed:
        raise NotEnoughHistory(
            f"{history.days} days of sales up to {day}: the backtest's oldest origin "
            f"({origins[0].date()}) needs {needed} days before it; it has {max(oldest, 0)}"
        )
    champion_version, champion_params = _champion(wh, day)
    same = champion_params is None or champion_params.to_dict() == params.to_dict()
    forecasters = {CHALLENGER: partial(fit_predict, params=params)}
    if not same:
        forecasters[CHAMPION] = partial(fit_predict, params=champion_params)
    n_jobs = settings.n_jobs
    forecasters["seasonal_naive"] = partial(seasonal_naive, horizon=params.horizon, n_jobs=n_jobs)
    forecasters["ets"] = partial(ets, horizon=params.horizon, n_jobs=n_jobs)
    as_of = _PanelsAsOf(history)
    summary, per_origin = backtest(
        history.panels,
        {name: as_of.wrap(f) for name, f in forecasters.items()},
        origins,
        params.horizon,
    )
    if champion_version is not None and same:
        # One specification: its scores are the champion's too (fitting it twice would only
        # repeat the same numbers).
        summary = pd.concat(
            [summary, summary[summary["model"] == CHALLENGER].assign(model=CHAMPION)],
            ignore_index=True,
        )
    summary["model_version"] = summary["model"].map({CHAMPION: champion_version})
    winner, reason = decide(summary, champion_version, same)
    return BacktestOutcome(
        summary, per_origin, origins, champion_version, same, winner, reason, history
    )


class _PanelsAsOf:
    """Each forecaster sees, at each origin, the panels of what was known before it (built
    once per origin): the units are the same, the prices only those announced by then."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.cache: dict[pd.Timestamp, dict[str, DemandPanel]] = {}

    def wrap(self, forecaster: Forecaster) -> Forecaster:
        def at_origin(_: dict[str, DemandPanel], origin: pd.Timestamp) -> pd.DataFrame:
            if origin not in self.cache:
                self.cache[origin] = self.history.panels_as_of(origin)
            return forecaster(self.cache[origin], origin)

        return at_origin


def decide(summary: pd.DataFrame, champion_version: str | None, same: bool) -> tuple[str, str]:
    """Which specification serves next, and why (a pure function of the backtest)."""

    def mase(model: str) -> float:
        row = summary[(summary["model"] == model) & (summary["level"] == "item")]
        return float(row["mase"].iloc[0])

    naive = mase("seasonal_naive")
    if champion_version is None:
        return CHALLENGER, (
            f"first forecaster: item MASE {mase(CHALLENGER):.4f} (seasonal naive {naive:.4f})"
        )
    if same:
        return (
            CHAMPION,
            f"the champion's specification refitted on newer data (MASE {mase(CHAMPION):.4f})",
        )
    if challenger_wins(summary, CHAMPION, CHALLENGER):
        return CHALLENGER, (
            f"the challenger's specification wins the backtest: item MASE "
            f"{mase(CHALLENGER):.4f} < {mase(CHAMPION):.4f}"
        )
    return CHAMPION, (
        f"the challenger's specification does not win (item MASE {mase(CHALLENGER):.4f} vs "
        f"{mase(CHAMPION):.4f}, or its 80% interval is further off): the champion's refitted"
    )


def decide_from_table(summary: pd.DataFrame) -> tuple[str, str]:
    """``decide`` from a stored backtest (forecast_backtest rows of a day): the champion's
    version is on its rows; one specification when its scores are the challenger's copy."""
    champ = summary[summary["model"] == CHAMPION]
    if champ.empty:
        return decide(summary, None, True)
    cols = ["level", "mase", "wape", "bias", "coverage_80"]
    ch = summary[summary["model"] == CHALLENGER]
    same = (
        champ.sort_values("level")[cols]
        .reset_index(drop=True)
        .equals(ch.sort_values("level")[cols].reset_index(drop=True))
    )
    return decide(summary, str(champ["model_version"].iloc[0]), same)


def write_backtest(wh: Warehouse, day: dt.date, outcome: BacktestOutcome) -> None:
    rows = outcome.summary.assign(dt=day)[
        ["dt", "level", "model", "model_version", "origins", "horizon_days", "mase", "wape",
         "bias", "coverage_80", "coverage_80_discrete"]
    ]  # fmt: skip
    with wh.begin() as conn:
        wh.delete_partition(conn, "forecast_backtest", day)
        wh.insert_df(conn, "forecast_backtest", rows)


def read_backtest(wh: Warehouse, day: dt.date) -> pd.DataFrame:
    with wh.begin() as conn:
        return wh.read_partition(conn, "forecast_backtest", day)


def _champion(wh: Warehouse, day: dt.date) -> tuple[str | None, ForecastParams | None]:
    """The champion that day ``day`` is decided against, and its specification."""
    version, row = decided_against(wh, "forecasting", ALIAS, day)
    if row is None:
        return None, None
    return version, ForecastParams.from_dict(json.loads(row["params_json"]))


@dataclass(frozen=True)
class FittedChampion:
    model_version: str
    moved: bool
    reason: str
    lineage: dict
    n_train_rows: int


def fit_champion(
    wh: Warehouse,
    day: dt.date,
    settings: ForecastSettings,
    *,
    winner: str,
    reason: str,
    models_dir: object,
    code_version: str | None,
    actor: str,
    now: dt.datetime,
) -> FittedChampion:
    """Fit the winning specification on all history through ``day``, register it and point
    ``forecast_champion`` at it. Re-running the day registers the same bytes (a no-op)."""
    from flywheel_assets.training.model import save_artefact

    history = load_history(wh, day, settings)
    _, champion_params = _champion(wh, day)
    params = (
        champion_params
        if winner == CHAMPION and champion_params is not None
        else challenger_params(settings)
    )
    model = GlobalForecaster(params).fit(history.panels, pd.Timestamp(day + dt.timedelta(days=1)))
    data = model.to_bytes()
    version = model.model_version
    uri, sha = save_artefact(data, models_dir, version)  # type: ignore[arg-type]
    lineage = {**model.lineage(), "source": history.source, "sales_rows": history.sales_rows}
    moved = register_and_point(
        wh,
        "forecasting",
        ALIAS,
        {
            "model_version": version,
            "dt": day,
            "artefact_uri": uri,
            "sha256": sha,
            "params_json": json.dumps(params.to_dict(), sort_keys=True),
            "lineage_json": json.dumps(lineage, sort_keys=True, default=str),
            "n_train_rows": int(lineage.get("rows_available", 0)),
            "code_version": code_version,
            "created_at": now,
            "created_by": actor,
        },
        actor=actor,
        reason=reason,
        now=now,
        day=day,
    )
    return FittedChampion(version, moved, reason, lineage, int(lineage.get("rows_available", 0)))


def load_champion(wh: Warehouse, day: dt.date) -> tuple[str, GlobalForecaster]:
    """The model that serves ``day`` (``registry.aliases.serving_for_day``), loaded."""
    from flywheel_assets.training.model import read_artefact

    version, row = serving_for_day(wh, "forecasting", ALIAS, day, "forecast_model")
    return version, GlobalForecaster.from_bytes(read_artefact(row["artefact_uri"], row["sha256"]))


MODEL = "model"
_BASELINE_FORECASTERS = {"seasonal_naive": seasonal_naive, "ets": ets}


def level_publishers(summary: pd.DataFrame) -> dict[str, str]:
    """Who publishes each level's forecast: the champion (``MODEL``), except at the category
    and total levels where a baseline scored a lower MASE than the serving specification on
    the day's backtest, which then publishes that level instead. A shop reads its total and
    its categories too, and a forecast that loses to ETS on the same origins is not worth
    publishing (measured on the 400-day demo: the model's total MASE 3.5, ETS's 1.2; a
    history of barely a year cannot teach the model the yearly season). The item level is
    always the model's: the decision and the blocking check are made there."""
    publishers = {level: MODEL for level in LEVELS}
    if summary.empty:
        return publishers
    winner, _ = decide_from_table(summary)
    for level in LEVELS[1:]:
        mase = summary[summary["level"] == level].set_index("model")["mase"].dropna()
        if winner not in mase:
            continue
        best = min((b for b in BASELINES if b in mase), key=lambda b: mase[b], default=None)
        if best is not None and mase[best] < mase[winner]:
            publishers[level] = best
    return publishers


def baseline_rows(
    name: str, panels: dict[str, DemandPanel], origin: pd.Timestamp, level: str, horizon: int
) -> pd.DataFrame:
    """A baseline's forecast of one level in the model's frame: its point forecast is its
    mean (ETS's, seasonal naive's last week), revenue priced like the model's."""
    f = _BASELINE_FORECASTERS[name](panels, origin, horizon=horizon, levels=(level,))
    panel = panels[level]
    series = np.repeat(np.arange(panel.n_series), horizon)
    h = np.tile(np.arange(1, horizon + 1), panel.n_series)
    price = unit_prices(panel, panel.day_index(origin), series, h)
    return f.assign(units_mean=f["units_point"], revenue_p50=f["units_point"].to_numpy() * price)


def forecast_day(
    wh: Warehouse, day: dt.date, settings: ForecastSettings
) -> tuple[pd.DataFrame, History]:
    """The day's forecast for the days after it, written to demand_forecasts (the day's rows
    replaced); with the history it was made from. Each level's rows come from who publishes
    it (``level_publishers``), named in model_version: the champion's version, or a
    baseline's name at a level where it won the day's backtest."""
    version, model = load_champion(wh, day)
    history = load_history(wh, day, settings)
    origin = pd.Timestamp(day + dt.timedelta(days=1))
    forecast = model.predict(history.panels, origin)
    for level, name in level_publishers(read_backtest(wh, day)).items():
        if name != MODEL:
            rows = baseline_rows(name, history.panels, origin, level, model.params.horizon)
            forecast = pd.concat(
                [
                    forecast[forecast["level"] != level],
                    rows[forecast.columns.intersection(rows.columns)],
                ],
                ignore_index=True,
            )
    rows = forecast.assign(dt=day, target_day=pd.to_datetime(forecast["target_day"]).dt.date)
    rows = rows[
        ["dt", "level", "key", "target_day", "units_p10", "units_p50", "units_p90",
         "units_mean", "revenue_p50", "model_version"]
    ]  # fmt: skip
    with wh.begin() as conn:
        wh.delete_partition(conn, "demand_forecasts", day)
        wh.insert_df(conn, "demand_forecasts", rows)
    return rows, history


def plan_day(wh: Warehouse, day: dt.date, settings: ForecastSettings) -> pd.DataFrame:
    """Per item, from the day's forecast: the order-up-to level, reorder point and suggested
    order for the configured lead time, review period and fill rate."""
    with wh.begin() as conn:
        forecast = wh.read_partition(conn, "demand_forecasts", day)
    items = forecast[forecast["level"] == "item"]
    if items.empty:
        raise LookupError(f"no item forecast made on {day}: materialise demand_forecast first")
    # The mean the model estimates (its calibrated weights of the quantiles), and the variance
    # the 10-90% spread implies.
    _, var = moments_from_quantiles(items["units_p10"], items["units_p50"], items["units_p90"])
    version = str(items["model_version"].iloc[0])
    plan = replenishment_plan(
        items.assign(units_var=var),
        lead_time_days=settings.lead_time_days,
        service_level=settings.service_level,
        review_days=settings.review_days,
        seed=day.toordinal(),
        level_shape=_level_shape(wh, version),
    )
    rows = pd.DataFrame(
        {
            "dt": day,
            "item_id": plan["item_id"],
            "lead_time_days": settings.lead_time_days,
            "review_days": settings.review_days,
            "service_level": settings.service_level,
            "demand_lead_time": plan["expected_demand_lead_review"],
            "reorder_point": plan["reorder_point"],
            "order_up_to": plan["order_up_to"],
            "suggested_order_qty": plan["suggested_order_qty"],
            "model_version": version,
        }
    )
    with wh.begin() as conn:
        wh.delete_partition(conn, "replenishment_plan", day)
        wh.insert_df(conn, "replenishment_plan", rows)
    return rows


def _level_shape(wh: Warehouse, version: str) -> float | None:
    """How far off an item's level can be over a week, as the forecaster measured it on days
    it did not train on (its lineage); None for a forecaster that did not measure it."""
    with wh.begin() as conn:
        row = wh.query_df(conn, load_sql("forecasting/get_model"), model_version=version)
    if row.empty:
        return None
    shape = json.loads(row["lineage_json"].iloc[0]).get("level_shape", {}).get("item")
    return None if shape is None else float(shape)
