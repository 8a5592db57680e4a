"""A shop's users as of a day: point-in-time features, and the labels later days give them.

The input is one row per (user, arrival partition ``dt``, activity ``day``) with that day's
counts (``ACTIVITY_COLUMNS``), as the warehouse aggregates it (sql/likelihood/), and the users'
signup dates as delivered. A snapshot for day D reads only rows that had arrived by D
(``dt <= D``) about days up to D (``day <= D``): what a prediction made at the end of D could
have known. A label for D and horizon h is whether the user bought anything on days
D + 1 .. D + h, from every row that ever arrived: the truth as it became known.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

ACTIVITY_COLUMNS = [
    "user_id",
    "dt",
    "day",
    "views",
    "clicks",
    "carts",
    "sessions",
    "purchases",
    "revenue",
]
HORIZONS = (7, 30)
# A user is scored when they did anything in this many days up to the snapshot day.
ACTIVE_DAYS = 90
# Recency of someone who never bought (or not within the history), in days.
NEVER = 400.0

FEATURES = [
    "days_since_purchase",
    "days_since_visit",
    "purchases_7d",
    "purchases_30d",
    "purchases_90d",
    "purchases_365d",
    "purchase_days_365d",
    "revenue_30d",
    "revenue_365d",
    "avg_order_value_365d",
    "views_1d",
    "views_7d",
    "views_30d",
    "clicks_7d",
    "clicks_30d",
    "carts_7d",
    "carts_30d",
    "sessions_7d",
    "sessions_30d",
    "active_days_7d",
    "active_days_30d",
    "views_trend",
    "days_since_signup",
    "days_since_first_seen",
]


@dataclass(frozen=True)
class UserHistory:
    """Per-user daily activity (``ACTIVITY_COLUMNS``) and the users' signup dates
    (``user_id``, ``dt`` delivered, ``signup_date``); days and dts are dates."""

    activity: pd.DataFrame
    users: pd.DataFrame
    # The last day whose data is complete; by default the newest arrival partition.
    through: dt.date | None = None

    def __post_init__(self) -> None:
        missing = set(ACTIVITY_COLUMNS) - set(self.activity.columns)
        if missing:
            raise ValueError(f"activity lacks {sorted(missing)}")

    @property
    def last_day(self) -> dt.date:
        """The last day whose data is complete (``through``, else the newest arrival)."""
        if self.through is not None:
            return self.through
        return max(pd.to_datetime(self.activity["dt"]).max().date(), self._users_last())

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(arrival day, activity day, user code, user ids by code) of every activity row,
        computed once: snapshots of many days reuse them."""
        cached = self.__dict__.get("_arrays")
        if cached is None:
            a = self.activity
            codes, names = pd.factorize(a["user_id"], sort=False)
            cached = (_days(a["dt"]), _days(a["day"]), codes, np.asarray(names, dtype=object))
            # A frozen dataclass: the cache goes around __setattr__, like cached_property.
            self.__dict__["_arrays"] = cached
        return cached

    def _users_last(self) -> dt.date:
        if self.users.empty:
            return dt.date.min
        return pd.to_datetime(self.users["dt"]).max().date()


_COUNTS = ("views", "clicks", "carts", "sessions", "purchases", "revenue")


def _days(values: pd.Series) -> np.ndarray:
    return pd.to_datetime(values).to_numpy("datetime64[D]")


def snapshot(history: UserHistory, day: dt.date, active_days: int = ACTIVE_DAYS) -> pd.DataFrame:
    """Features of every user active in the ``active_days`` days up to ``day``, as known at
    the end of ``day``: user_id and ``FEATURES``, sorted by user_id.

    Vectorised over users with ``np.bincount`` on integer user codes: a backtest builds dozens
    of snapshots, and a group-by per feature and window cost 10 times the boosting
    (docs/benchmarks.md, bench/likelihood)."""
    d = np.datetime64(day, "D")
    arrived, when, codes, names = history.arrays()
    n = len(names)
    known = (arrived <= d) & (when <= d)
    age = (d - when).astype("int64")  # 0 = the snapshot day itself
    first_seen = np.full(n, np.iinfo("int64").min)
    np.maximum.at(first_seen, codes[known], age[known])  # the oldest age known
    sel = known & (age < 365)
    a = history.activity
    # One row per (user, day): two arrivals of one day add up.
    daily = (
        pd.DataFrame(
            {
                "u": codes[sel],
                "age": age[sel],
                **{c: a[c].to_numpy("float64")[sel] for c in _COUNTS},
            }
        )
        .groupby(["u", "age"], sort=False, as_index=False)
        .sum()
    )
    u, ag = daily["u"].to_numpy(), daily["age"].to_numpy()
    col = {c: daily[c].to_numpy() for c in _COUNTS}
    bought = col["purchases"] > 0
    visited = (col["views"] + col["clicks"] + col["carts"]) > 0

    def total(values: np.ndarray, days: int) -> np.ndarray:
        m = ag < days
        return np.bincount(u[m], weights=values[m], minlength=n)

    def newest(mask: np.ndarray) -> np.ndarray:
        out = np.full(n, np.inf)
        np.minimum.at(out, u[mask], ag[mask].astype("float64"))
        return out

    active = total((bought | visited).astype("float64"), active_days) > 0
    f: dict[str, np.ndarray] = {}
    f["days_since_purchase"] = np.where(np.isinf(p := newest(bought)), NEVER, p)
    f["days_since_visit"] = np.where(np.isinf(v := newest(visited)), NEVER, v)
    for h in (7, 30, 90, 365):
        f[f"purchases_{h}d"] = total(col["purchases"], h)
    f["purchase_days_365d"] = total(bought.astype("float64"), 365)
    f["revenue_30d"] = total(col["revenue"], 30)
    f["revenue_365d"] = total(col["revenue"], 365)
    with np.errstate(invalid="ignore", divide="ignore"):
        f["avg_order_value_365d"] = np.where(
            f["purchases_365d"] > 0, f["revenue_365d"] / f["purchases_365d"], np.nan
        )
    f["views_1d"] = total(col["views"], 1)
    for h in (7, 30):
        for c in ("views", "clicks", "carts", "sessions"):
            f[f"{c}_{h}d"] = total(col[c], h)
        f[f"active_days_{h}d"] = total((visited | bought).astype("float64"), h)
    f["views_trend"] = (f["views_7d"] + 1.0) / (f["views_30d"] * 7 / 30 + 1.0)
    # Capped at the year the other windows see: a longer history must not make the same user
    # look older when scored than in the training snapshots.
    f["days_since_first_seen"] = np.minimum(first_seen, 364).astype("float64")
    keep = np.flatnonzero(active)
    keep = keep[np.argsort(names[keep], kind="stable")]
    users = names[keep]
    out = pd.DataFrame({"user_id": users})
    for name in FEATURES:
        if name != "days_since_signup":
            out[name] = f[name][keep]
    out["days_since_signup"] = _signup_age(history.users, users, d)
    return out[["user_id", *FEATURES]]


def _signup_age(users: pd.DataFrame, ids: np.ndarray, d: np.datetime64) -> np.ndarray:
    """Days from signup to ``d`` by the latest delivery up to ``d`` (NaN: not delivered)."""
    if users.empty:
        return np.full(len(ids), np.nan)
    u = users[_days(users["dt"]) <= d].sort_values("dt").drop_duplicates("user_id", keep="last")
    signup = pd.Series(_days(u["signup_date"]), index=u["user_id"].to_numpy()).reindex(ids)
    age = (d - signup.to_numpy("datetime64[D]")).astype("float64")
    return np.where(pd.isna(signup).to_numpy(), np.nan, age)


def labels(
    history: UserHistory, day: dt.date, users: np.ndarray, horizons: tuple[int, ...] = HORIZONS
) -> pd.DataFrame:
    """Per user: 1 when they bought anything on days ``day`` + 1 .. ``day`` + h, for each
    horizon h (``y_7d``, ``y_30d``). Raises when those days are not all observed yet."""
    d = np.datetime64(day, "D")
    last = np.datetime64(history.last_day, "D")
    if d + max(horizons) > last:
        raise ValueError(
            f"labels of {day} need days up to {day + dt.timedelta(days=max(horizons))}; "
            f"the history ends on {history.last_day}"
        )
    _, when, codes, names = history.arrays()
    purchased = history.activity["purchases"].to_numpy() > 0
    out = pd.DataFrame({"user_id": users})
    for h in horizons:
        m = purchased & (when > d) & (when <= d + h)
        out[f"y_{h}d"] = np.isin(users, names[np.unique(codes[m])]).astype("int8")
    return out
