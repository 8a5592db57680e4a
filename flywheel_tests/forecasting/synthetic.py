"""A synthetic shop with known demand, for forecasting tests and the bench.

Daily units of item i on day t are Poisson (or negative binomial) with mean
``lam[i, t] = base_i * weekly_c(i)[weekday] * trend_i(t) * (price[i, t] / list_i) ** -elast_i``:
a lognormal base rate (many slow movers, so much of the catalog is intermittent), a weekly
profile per category, a slow multiplicative trend and 20-35 % price promotions of a week. The
true mean is returned so tests can draw fresh outcomes from the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SyntheticShop:
    sales: pd.DataFrame
    items: pd.DataFrame
    prices: pd.DataFrame
    lam: np.ndarray  # (items, days) true daily mean, rows in items' order
    price: np.ndarray  # (items, days) price in effect
    days: pd.DatetimeIndex
    dispersion: float | None  # negative binomial shape r; None = Poisson

    def draw(self, rng: np.random.Generator, lam: np.ndarray) -> np.ndarray:
        """Units drawn from the truth with mean ``lam`` (any shape)."""
        if self.dispersion is None:
            return rng.poisson(lam).astype("float64")
        r = self.dispersion
        return rng.negative_binomial(r, r / (r + np.maximum(lam, 1e-12))).astype("float64")


def make_shop(
    n_items: int = 200,
    n_days: int = 200,
    n_categories: int = 4,
    seed: int = 0,
    start: str = "2024-01-01",
    dispersion: float | None = None,
) -> SyntheticShop:
    rng = np.random.default_rng(seed)
    days = pd.date_range(start, periods=n_days, freq="D")
    item_ids = np.array([f"i{i:05d}" for i in range(n_items)], dtype=object)
    cat = rng.integers(0, n_categories, n_items)
    brands = np.array([f"b{b}" for b in rng.integers(0, 12, n_items)], dtype=object)
    brands[rng.random(n_items) < 0.1] = None
    list_price = np.round(np.exp(rng.normal(np.log(30.0), 0.6, n_items)), 2)

    base = np.exp(rng.normal(np.log(0.8), 1.2, n_items))
    weekly = 1.0 + rng.uniform(0.15, 0.5, (n_categories, 1)) * np.sin(
        2 * np.pi * (np.arange(7)[None, :] + rng.uniform(0, 7, (n_categories, 1))) / 7
    )
    dow = days.dayofweek.to_numpy()
    season = weekly[cat][:, dow]
    t = np.arange(n_days) / 365.0
    trend = np.exp(rng.normal(0.0, 0.4, n_items)[:, None] * t[None, :])

    # About one promotion every 40 days per item: 7 days at a 20-35 % discount.
    price = np.repeat(list_price[:, None], n_days, axis=1)
    changes = []
    for i in range(n_items):
        for s in np.flatnonzero(rng.random(n_days) < 1 / 40):
            e = min(n_days, s + 7)
            disc = np.round(list_price[i] * (1 - rng.uniform(0.2, 0.35)), 2)
            price[i, s:e] = disc
    for i in range(n_items):
        change = np.flatnonzero(np.diff(price[i], prepend=np.nan) != 0)
        changes.extend((item_ids[i], days[c], price[i, c]) for c in change[1:])
    elasticity = rng.uniform(1.0, 2.5, n_items)
    lam = base[:, None] * season * trend * (price / list_price[:, None]) ** -elasticity[:, None]

    shop = SyntheticShop(
        sales=pd.DataFrame(),
        items=pd.DataFrame(
            {
                "item_id": item_ids,
                "category": [f"c{c}" for c in cat],
                "brand": brands,
                "price": list_price,
            }
        ),
        prices=pd.DataFrame(changes, columns=["item_id", "day", "price"]),
        lam=lam,
        price=price,
        days=days,
        dispersion=dispersion,
    )
    units = shop.draw(rng, lam)
    rows, cols = np.nonzero(units)
    sales = pd.DataFrame(
        {
            "item_id": item_ids[rows],
            "day": days[cols],
            "units": units[rows, cols],
            "revenue": units[rows, cols] * price[rows, cols],
        }
    )
    return SyntheticShop(
        sales=sales,
        items=shop.items,
        prices=shop.prices,
        lam=lam,
        price=price,
        days=days,
        dispersion=dispersion,
    )
