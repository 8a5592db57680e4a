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

    def _users_last(self) -> dt.date:
        if self.users.empty:
            return dt.date.min
        return pd.to_datetime(self.users["dt"]).max().date()


def _days(values: pd.Series) -> np.ndarray:
    return pd.to_datetime(values).to_numpy("datetime64[D]")


def snapshot(history: UserHistory, day: dt.date, active_days: int = ACTIVE_DAYS) -> pd.DataFrame:
    """Features of every user active in the ``active_days`` days up to ``day``, as known at
    the end of ``day``: user_id and ``FEATURES``, sorted by user_id."""
    d = np.datetime64(day, "D")
    a = history.activity
    arrived, when = _days(a["dt"]), _days(a["day"])
    a = a[(arrived <= d) & (when <= d)]
    age = (d - _days(a["day"])).astype("int64")  # 0 = the snapshot day itself
    a = a.assign(age=age)
    recent = a[a["age"] < active_days]
    active = recent.loc[(recent[["views", "clicks", "carts", "purchases"]].sum(axis=1) > 0)]
    users = np.sort(active["user_id"].unique())
    a = a[a["user_id"].isin(users) & (a["age"] < 365)]
    # One row per (user, day): two arrivals of one day add up.
    a = a.groupby(["user_id", "age"], as_index=False)[
        ["views", "clicks", "carts", "sessions", "purchases", "revenue"]
    ].sum()
    out = pd.DataFrame(index=pd.Index(users, name="user_id"))

    def window(col: str, days: int) -> pd.Series:
        w = a[a["age"] < days]
        return w.groupby("user_id")[col].sum().reindex(users, fill_value=0).astype("float64")

    def last_age(mask: pd.Series) -> pd.Series:
        return a[mask].groupby("user_id")["age"].min().reindex(users).astype("float64")

    bought = a["purchases"] > 0
    visited = (a["views"] + a["clicks"] + a["carts"]) > 0
    out["days_since_purchase"] = last_age(bought).fillna(NEVER).to_numpy()
    out["days_since_visit"] = last_age(visited).fillna(NEVER).to_numpy()
    for h in (7, 30, 90, 365):
        out[f"purchases_{h}d"] = window("purchases", h).to_numpy()
    out["purchase_days_365d"] = (
        a[bought].groupby("user_id").size().reindex(users, fill_value=0).astype("float64")
    ).to_numpy()
    out["revenue_30d"] = window("revenue", 30).to_numpy()
    out["revenue_365d"] = window("revenue", 365).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["avg_order_value_365d"] = np.where(
            out["purchases_365d"] > 0, out["revenue_365d"] / out["purchases_365d"], np.nan
        )
    out["views_1d"] = window("views", 1).to_numpy()
    for h in (7, 30):
        for col in ("views", "clicks", "carts", "sessions"):
            out[f"{col}_{h}d"] = window(col, h).to_numpy()
        act = a[(a["age"] < h) & (visited | bought)]
        out[f"active_days_{h}d"] = (
            act.groupby("user_id").size().reindex(users, fill_value=0).astype("float64").to_numpy()
        )
    out["views_trend"] = (out["views_7d"] + 1.0) / (out["views_30d"] * 7 / 30 + 1.0)
    first_seen = (
        history.activity.assign(_a=arrived, _w=when)
        .loc[lambda f: (f["_a"] <= d) & (f["_w"] <= d)]
        .groupby("user_id")["_w"]
        .min()
        .reindex(users)
    )
    out["days_since_first_seen"] = (
        (d - first_seen.to_numpy("datetime64[D]")).astype("int64").astype("float64")
    )
    out["days_since_signup"] = _signup_age(history.users, users, d)
    return out[FEATURES].reset_index()


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
    a = history.activity
    when = _days(a["day"])
    out = pd.DataFrame({"user_id": users})
    for h in horizons:
        bought = a[(a["purchases"] > 0) & (when > d) & (when <= d + h)]["user_id"].unique()
        out[f"y_{h}d"] = np.isin(users, bought).astype("int8")
    return out
