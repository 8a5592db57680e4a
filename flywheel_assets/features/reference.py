"""The event-derived feature columns restated directly in pandas, from raw events.

Not used by the pipeline: it is an independent statement of what sql/features computes, read
straight from the events of every partition up to the snapshot day (a full recompute, no daily
aggregates), so tests can check that the incremental SQL gives the same values and
bench/features can compare the SQL with a vectorised pandas build of the same features.

Point in time, as in the SQL: snapshot D sees events that arrived in partitions up to D
(``dt <= D``) and happened in the window of event days ending with D (before the end of D).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

EVENT_COLUMNS = ["dt", "event_type", "event_time", "user_id", "item_id", "price"]
_TYPES = {
    "impression": "impressions",
    "view": "views",
    "click": "clicks",
    "add_to_cart": "carts",
    "purchase": "purchases",
}


def _window(events: pd.DataFrame, day: dt.date, days: int = 28) -> pd.DataFrame:
    dts = pd.to_datetime(events["dt"])
    event_day = events["event_time"].dt.normalize()
    end = pd.Timestamp(day) + pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=days)
    keep = (dts <= pd.Timestamp(day)) & (event_day >= start) & (event_day < end)
    w = events.loc[keep, EVENT_COLUMNS].copy()
    w["event_day"] = event_day[keep]
    for event_type, name in _TYPES.items():
        w[name] = (w["event_type"] == event_type).astype("int64")
    return w


def _days_before(cutoff: pd.Timestamp, times: pd.Series) -> pd.Series:
    return (cutoff - times).dt.total_seconds() / 86400.0


def _smoothed_rates(out: pd.DataFrame, strength: float) -> tuple[pd.Series, pd.Series]:
    """CTR and conversion shrunk towards the population's (Beta prior of ``strength``)."""
    prior_ctr = (out["clicks"].sum() + 1) / (out["impressions"].sum() + 20)
    prior_conv = (out["purchases"].sum() + 1) / (out["clicks"].sum() + 20)
    ctr = (out["clicks"] + strength * prior_ctr) / (out["impressions"] + strength)
    conv = (out["purchases"] + strength * prior_conv) / (out["clicks"] + strength)
    return ctr, conv


def user_activity_features(
    events: pd.DataFrame, day: dt.date, prior_strength: float
) -> pd.DataFrame:
    """The event-derived columns of user_features for users active in the window."""
    w = _window(events, day)
    cutoff = pd.Timestamp(day) + pd.Timedelta(days=1)
    start_7d = cutoff - pd.Timedelta(days=7)
    start_1d = cutoff - pd.Timedelta(days=1)
    is_click = w["event_type"] == "click"
    is_purchase = w["event_type"] == "purchase"
    w["click_price"] = w["price"].where(is_click)
    w["purchase_price"] = w["price"].where(is_purchase)
    for span, start in (("7d", start_7d), ("1d", start_1d)):
        recent = (w["event_day"] >= start).astype("int64")
        for name in _TYPES.values():
            w[f"{name}_{span}"] = w[name] * recent
    g = w.groupby("user_id", sort=False)
    out = g[[*_TYPES.values(), *[f"{n}_{s}" for s in ("7d", "1d") for n in _TYPES.values()]]].sum()
    out["active_days"] = g["event_day"].nunique()
    out["avg_click_price"] = g["click_price"].mean()
    out["avg_purchase_price"] = g["purchase_price"].mean()
    out["last_event"] = g["event_time"].max()
    ctr, conv = _smoothed_rates(out, prior_strength)
    return pd.DataFrame(
        {
            "u_impressions_28d": out["impressions"],
            "u_views_28d": out["views"],
            "u_clicks_28d": out["clicks"],
            "u_carts_28d": out["carts"],
            "u_purchases_28d": out["purchases"],
            "u_clicks_7d": out["clicks_7d"],
            "u_purchases_7d": out["purchases_7d"],
            "u_ctr_28d": ctr,
            "u_conversion_28d": conv,
            "u_avg_click_price_28d": out["avg_click_price"],
            "u_days_since_last_event": _days_before(cutoff, out["last_event"]),
            "u_impressions_1d": out["impressions_1d"],
            "u_views_1d": out["views_1d"],
            "u_clicks_1d": out["clicks_1d"],
            "u_carts_1d": out["carts_1d"],
            "u_purchases_1d": out["purchases_1d"],
            "u_impressions_7d": out["impressions_7d"],
            "u_views_7d": out["views_7d"],
            "u_carts_7d": out["carts_7d"],
            "u_active_days_28d": out["active_days"].astype("int64"),
            "u_avg_purchase_price_28d": out["avg_purchase_price"],
        }
    ).rename_axis("user_id")


def item_activity_features(
    events: pd.DataFrame, day: dt.date, prior_strength: float
) -> pd.DataFrame:
    """The event-derived columns of item_features for items active in the window."""
    w = _window(events, day)
    start_7d = pd.Timestamp(day) - pd.Timedelta(days=6)
    recent = (w["event_day"] >= start_7d).astype("int64")
    for name in ("impressions", "clicks", "purchases"):
        w[f"{name}_7d"] = w[name] * recent
    cols = ["impressions", "clicks", "purchases", "carts"]
    out = w.groupby("item_id", sort=False)[
        [*cols, "impressions_7d", "clicks_7d", "purchases_7d"]
    ].sum()
    ctr, conv = _smoothed_rates(out, prior_strength)
    return pd.DataFrame(
        {
            "i_impressions_28d": out["impressions"],
            "i_clicks_28d": out["clicks"],
            "i_purchases_28d": out["purchases"],
            "i_ctr_28d": ctr,
            "i_conversion_28d": conv,
            "i_impressions_7d": out["impressions_7d"],
            "i_clicks_7d": out["clicks_7d"],
            "i_purchases_7d": out["purchases_7d"],
            "i_carts_28d": out["carts"],
        }
    ).rename_axis("item_id")


def user_item_features(events: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """user_item_features (without dt) for the pairs active in the window."""
    w = _window(events, day)
    cutoff = pd.Timestamp(day) + pd.Timedelta(days=1)
    w["click_time"] = w["event_time"].where(w["event_type"] == "click")
    g = w.groupby(["user_id", "item_id"], sort=False)
    out = g[["impressions", "clicks", "purchases", "views", "carts"]].sum()
    times = g[["click_time", "event_time"]].max()
    return pd.DataFrame(
        {
            "ui_impressions_28d": out["impressions"],
            "ui_clicks_28d": out["clicks"],
            "ui_purchases_28d": out["purchases"],
            "ui_days_since_last_click": _days_before(cutoff, times["click_time"]),
            "ui_views_28d": out["views"],
            "ui_carts_28d": out["carts"],
            "ui_days_since_last_event": _days_before(cutoff, times["event_time"]),
        }
    )


def snapshot(events: pd.DataFrame, day: dt.date, prior_strength: float) -> dict[str, pd.DataFrame]:
    """All three reference tables for snapshot ``day``, indexed by their keys."""
    events = events.assign(event_time=pd.to_datetime(events["event_time"]))
    return {
        "user_features": user_activity_features(events, day, prior_strength),
        "item_features": item_activity_features(events, day, prior_strength),
        "user_item_features": user_item_features(events, day),
    }


__all__ = ["snapshot", "user_activity_features", "item_activity_features", "user_item_features"]
