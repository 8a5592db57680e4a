"""Dense demand panels: the sales, catalog and price frames as series x day matrices.

Forecasting reads lags and rolling windows of many series at once; a dense float32 matrix per
quantity (units, revenue, price) makes those slices cheap and makes "a missing item-day is a
day without sales" explicit. Item, category and whole-shop panels share the same day index, so
one global model can read all three levels the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

LEVELS = ("item", "category", "total")
TOTAL_KEY = "total"


@dataclass(frozen=True)
class DemandPanel:
    """One level's series over consecutive days.

    ``units``/``revenue``/``price`` are (series, day) float32 matrices. ``price`` is the list
    price as of each day (item level: forward-filled price changes, known in advance, so a
    planned price of a future day is a legitimate input; category/total: the plain mean of the
    members' list prices, which moves only with the price schedule, never with sales).
    ``category``/``brand`` hold names (None when unknown) so a model encodes them with its own
    vocabulary.
    """

    level: str
    keys: np.ndarray
    days: pd.DatetimeIndex
    units: np.ndarray
    revenue: np.ndarray
    price: np.ndarray
    category: np.ndarray
    brand: np.ndarray

    @property
    def n_series(self) -> int:
        return len(self.keys)

    def day_index(self, day: pd.Timestamp | str) -> int:
        """Column of ``day``; may equal ``len(days)`` or more (a day after the panel ends)."""
        return int((pd.Timestamp(day) - self.days[0]).days)

    def long(
        self, start: pd.Timestamp | str | None = None, end: pd.Timestamp | str | None = None
    ) -> pd.DataFrame:
        """The panel's units as a long frame (level, key, day, units), days in [start, end]."""
        lo = 0 if start is None else max(0, self.day_index(start))
        hi = len(self.days) if end is None else min(len(self.days), self.day_index(end) + 1)
        block = self.units[:, lo:hi]
        return pd.DataFrame(
            {
                "level": self.level,
                "key": np.repeat(self.keys, block.shape[1]),
                "day": np.tile(self.days[lo:hi].to_numpy(), self.n_series),
                "units": block.reshape(-1).astype("float64"),
            }
        )


def _day_range(
    sales: pd.DataFrame, start: pd.Timestamp | str | None, end: pd.Timestamp | str | None
) -> pd.DatetimeIndex:
    first = pd.Timestamp(start) if start is not None else pd.Timestamp(sales["day"].min())
    last = pd.Timestamp(end) if end is not None else pd.Timestamp(sales["day"].max())
    return pd.date_range(first.normalize(), last.normalize(), freq="D")


def _price_matrix(
    items: pd.DataFrame, prices: pd.DataFrame | None, days: pd.DatetimeIndex
) -> np.ndarray:
    """Price as of each day: the last change on or before it, else the catalog price."""
    n, m = len(items), len(days)
    mat = np.full((n, m), np.nan, dtype="float64")
    if prices is not None and len(prices):
        pos = pd.Index(items["item_id"].astype(str))
        p = prices.assign(item_id=prices["item_id"].astype(str), day=pd.to_datetime(prices["day"]))
        p = p[p["item_id"].isin(pos) & (p["day"] <= days[-1])]
        # A change before the panel starts still sets the first day's price: keep the latest one.
        p = p.assign(col=((p["day"].dt.normalize() - days[0]).dt.days).clip(lower=0))
        p = p.sort_values(["item_id", "day"], kind="mergesort").drop_duplicates(
            ["item_id", "col"], keep="last"
        )
        mat[pos.get_indexer(p["item_id"]), p["col"].to_numpy()] = p["price"].to_numpy("float64")
        mat = pd.DataFrame(mat).ffill(axis=1).to_numpy()
    catalog = pd.to_numeric(items["price"], errors="coerce").to_numpy("float64")
    mat = np.where(np.isnan(mat), catalog[:, None], mat)
    return mat.astype("float32")


def build_item_panel(
    sales: pd.DataFrame,
    items: pd.DataFrame,
    prices: pd.DataFrame | None = None,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
) -> DemandPanel:
    """Item-level panel over [start, end] (default: the sales' first to last day).

    Series are the catalog's items sorted by id; sales of items not in the catalog are
    dropped, item-days without a sales row are zero. ``end`` may lie after the last sale so
    the price matrix carries planned prices of the days to forecast.
    """
    items = items.assign(item_id=items["item_id"].astype(str)).sort_values(
        "item_id", kind="mergesort"
    )
    items = items.drop_duplicates("item_id", keep="last").reset_index(drop=True)
    days = _day_range(sales, start, end)
    keys = items["item_id"].to_numpy(dtype=object)
    units = np.zeros((len(keys), len(days)), dtype="float32")
    revenue = np.zeros_like(units)
    s = sales.assign(item_id=sales["item_id"].astype(str), day=pd.to_datetime(sales["day"]))
    col = (s["day"].dt.normalize() - days[0]).dt.days.to_numpy()
    row = pd.Index(keys).get_indexer(s["item_id"])
    ok = (row >= 0) & (col >= 0) & (col < len(days))
    # add.at: duplicate rows of one item-day add up instead of overwriting each other.
    np.add.at(units, (row[ok], col[ok]), s["units"].to_numpy("float32")[ok])
    np.add.at(revenue, (row[ok], col[ok]), s["revenue"].to_numpy("float32")[ok])

    def names(column: str) -> np.ndarray:
        if column not in items:
            return np.full(len(keys), None, dtype=object)
        # Missing is None whatever the frame's dtype (NaN, pd.NA or None under pandas 2 and 3).
        return np.array(
            [None if pd.isna(x) else str(x) for x in items[column].tolist()], dtype=object
        )

    return DemandPanel(
        level="item",
        keys=keys,
        days=days,
        units=units,
        revenue=revenue,
        price=_price_matrix(items, prices, days),
        category=names("category"),
        brand=names("brand"),
    )


def aggregate_panel(panel: DemandPanel, groups: np.ndarray, level: str) -> DemandPanel:
    """Sum units and revenue of ``panel``'s series by ``groups`` (one name per series);
    the price is the plain mean of the members' list prices."""
    keys, inverse = np.unique(groups.astype(str), return_inverse=True)
    member = sparse.csr_matrix(
        (np.ones(panel.n_series, dtype="float32"), (inverse, np.arange(panel.n_series))),
        shape=(len(keys), panel.n_series),
    )
    counts = np.asarray(member.sum(axis=1)).reshape(-1, 1)
    category = keys.astype(object) if level == "category" else np.full(len(keys), None, object)
    return DemandPanel(
        level=level,
        keys=keys.astype(object),
        days=panel.days,
        units=np.asarray(member @ panel.units, dtype="float32"),
        revenue=np.asarray(member @ panel.revenue, dtype="float32"),
        price=np.asarray((member @ panel.price) / counts, dtype="float32"),
        category=category,
        brand=np.full(len(keys), None, dtype=object),
    )


def panels_for_levels(
    sales: pd.DataFrame,
    items: pd.DataFrame,
    prices: pd.DataFrame | None = None,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
) -> dict[str, DemandPanel]:
    """Item, category (key = category name) and total (key = "total") panels."""
    item = build_item_panel(sales, items, prices, start, end)
    cats = np.array(["" if c is None else c for c in item.category], dtype=object)
    return {
        "item": item,
        "category": aggregate_panel(item, cats, "category"),
        "total": aggregate_panel(item, np.full(item.n_series, TOTAL_KEY, dtype=object), "total"),
    }
