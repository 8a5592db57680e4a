"""A shop's order history from the simulator's world, with the true demand behind it.

The ranking demo plays sessions one request at a time (about 1.5 s a day); a demand forecast
needs a year or two of history. This module draws that history directly from the same world
(its catalog, categories, prices and price changes, new items, and each item's true appeal to
the user population), day by day, vectorised:

    expected units of item i on day t = base x appeal_i x weekday(t) x season(t)
                                        x growth_i(t) x (price_i,t / list price_i) ^ -elasticity

Each order line is 1 + Poisson(ORDER_EXTRA_UNITS) units, like the ranking demo's orders. The
expected units are the truth a perfect forecast would give; a forecast's accuracy and a
replenishment policy's fill rate can be measured against them (docs/forecasting.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flywheel_assets.simulation.simulator import (
    ORDER_EXTRA_UNITS,
    ShopSimulator,
    SimulatorConfig,
    item_id,
    raw_user_id,
)

# Shoppers buy more at the weekend (Monday first); a yearly swell peaking in December.
WEEKDAY = np.array([0.92, 0.9, 0.93, 0.97, 1.05, 1.13, 1.1])
SEASON_AMPLITUDE = 0.15
PRICE_ELASTICITY = 1.5
# Each item's demand drifts by up to about 40% a year, up or down.
GROWTH_STD_PER_YEAR = 0.25


@dataclass(frozen=True)
class DemandHistory:
    orders: pd.DataFrame  # order lines in the orders contract (raw user ids)
    truth: pd.DataFrame  # day, item_id, expected_units
    catalog: pd.DataFrame  # every item live on the last day: item_id, title, category, brand, price
    # What the shop's catalog feed delivered each day: new items and price changes.
    catalog_changes: dict[dt.date, pd.DataFrame]

    def units(self) -> pd.DataFrame:
        """Units sold per item and day (only days with sales)."""
        o = self.orders
        return (
            o.assign(day=pd.to_datetime(o["order_time"]).dt.normalize())
            .groupby(["item_id", "day"], as_index=False)["quantity"]
            .sum()
            .rename(columns={"quantity": "units"})
        )


def demand_history(
    start: dt.date, days: int, *, seed: int = 1, units_per_day: float = 600.0, **config: object
) -> DemandHistory:
    """``days`` days of orders from ``start``, about ``units_per_day`` units a day in all."""
    world = SimulatorConfig(seed=seed, **config)  # type: ignore[arg-type]
    rng = np.random.default_rng([seed, start.toordinal(), 77])
    last = start + dt.timedelta(days=days - 1)
    # Every item the history will hold, and its appeal to the whole user population.
    final = ShopSimulator(world, start=start)
    final.advance_to(last)
    n_all = len(final._item_cat)
    appeal = final.popularity_scores(np.arange(n_all))
    appeal = appeal / appeal.mean()
    growth = rng.normal(0, GROWTH_STD_PER_YEAR, n_all)
    base = units_per_day / world.n_items
    n_users = len(final._user_seg)
    # A second copy walks the days, so each day sees that day's catalog and prices.
    sim = ShopSimulator(world, start=start)
    list_price = np.zeros(n_all)
    order_frames, truth_frames = [], []
    changes: dict[dt.date, pd.DataFrame] = {}
    for d in range(days):
        day = start + dt.timedelta(days=d)
        sim.advance_to(day)
        changes[day] = sim.catalog_records(day)
        n = len(sim._item_cat)
        price = sim._item_price.copy()
        list_price[:n] = np.where(list_price[:n] > 0, list_price[:n], price)
        season = 1 + SEASON_AMPLITUDE * np.cos(2 * np.pi * (day.timetuple().tm_yday - 355) / 365.25)
        lam = (
            base
            * appeal[:n]
            * WEEKDAY[day.weekday()]
            * season
            * np.exp(growth[:n] * d / 365.25)
            * (price / list_price[:n]) ** -PRICE_ELASTICITY
        )
        truth_frames.append(
            pd.DataFrame({"day": pd.Timestamp(day), "item_id": _ids(n), "expected_units": lam})
        )
        day_rng = np.random.default_rng([seed, day.toordinal(), 78])
        lines = day_rng.poisson(lam / (1 + ORDER_EXTRA_UNITS))
        items = np.repeat(np.arange(n), lines)
        if not len(items):
            continue
        seconds = np.sort(day_rng.integers(0, 86_400, len(items)))
        order_frames.append(
            pd.DataFrame(
                {
                    "order_id": [f"h{day:%Y%m%d}-{k:06d}" for k in range(len(items))],
                    "user_id": [raw_user_id(u) for u in day_rng.integers(0, n_users, len(items))],
                    "item_id": [item_id(i) for i in items],
                    "quantity": 1 + day_rng.poisson(ORDER_EXTRA_UNITS, len(items)),
                    "price": price[items],
                    "order_time": pd.Timestamp(day) + pd.to_timedelta(seconds, unit="s"),
                }
            )
        )
    return DemandHistory(
        orders=pd.concat(order_frames, ignore_index=True),
        truth=pd.concat(truth_frames, ignore_index=True),
        catalog=final.catalog_records(last, full=True),
        catalog_changes=changes,
    )


def _ids(n: int) -> list[str]:
    return [item_id(i) for i in range(n)]
