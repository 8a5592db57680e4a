"""Replenishment advice from the demand forecast: an order-up-to (R, S) policy per item.

Every R days (the review period) the item's inventory position is raised to S by an order
that arrives L days later (the lead time). S is set so the expected fill rate (the share of
demand served from stock) equals the configured service level beta:

    fill(S) = 1 - (E[(D_{L+R} - S)+] - E[(D_L - S)+]) / E[D_{L+R} - D_L]

where D_k is the demand over the next k days. The daily demand distribution comes from the
forecast: each day's mean and variance (given, or recovered from p10/p50/p90), a negative
binomial with those moments (Poisson when the spread is at most Poisson's), summed over days by
a seeded Monte Carlo. Formulas and their limits are in docs/forecasting.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

# Swanson's rule: mean ~ 0.3 p10 + 0.4 p50 + 0.3 p90; a normal's p90 - p10 is 2.563 sd.
_SWANSON = (0.3, 0.4, 0.3)
_P10_P90_SD = float(norm.ppf(0.9) - norm.ppf(0.1))

PLAN_COLUMNS = [
    "item_id",
    "lead_time_days",
    "review_days",
    "service_level",
    "expected_demand_review",
    "expected_demand_lead_review",
    "order_up_to",
    "reorder_point",
    "inventory_position",
    "suggested_order_qty",
    "expected_fill_rate",
]


def moments_from_quantiles(
    p10: np.ndarray, p50: np.ndarray, p90: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-day mean and variance from three quantiles (Swanson's rule; normal spread)."""
    p10, p50, p90 = (np.asarray(a, dtype="float64") for a in (p10, p50, p90))
    mean = _SWANSON[0] * p10 + _SWANSON[1] * p50 + _SWANSON[2] * p90
    sd = np.maximum(p90 - p10, 0.0) / _P10_P90_SD
    return np.maximum(mean, 0.0), sd**2


def sample_daily_demand(
    mean: np.ndarray,
    var: np.ndarray,
    n_samples: int,
    rng: np.random.Generator,
    level_shape: float | None = None,
) -> np.ndarray:
    """Draws (samples, items, days) of integer daily demand.

    Each item's demand is Poisson at the forecast's daily mean times one gamma-distributed
    level (mean 1), drawn once per sample and item and shared by all its days: uncertainty
    about an item's level does not cancel over a lead time (a level that is off is off every
    day). ``level_shape`` is the gamma's shape k, as the forecaster measured it on days it did
    not train on (``GlobalForecaster.level_shape``); without it, k is set so the days'
    variances add up to the forecast's (sum(var - mean) = sum(mean)^2 / k). Poisson where there
    is no spread beyond Poisson's."""
    mean = np.maximum(np.asarray(mean, dtype="float64"), 0.0)
    var = np.asarray(var, dtype="float64")
    total = mean.sum(axis=-1)
    if level_shape is None:
        extra = np.maximum(var - mean, 0.0).sum(axis=-1)
        shape_ = np.where(extra > 1e-12, total**2 / np.maximum(extra, 1e-12), np.inf)
    else:
        shape_ = np.full(total.shape, float(level_shape))
    finite = np.isfinite(shape_) & (shape_ > 0)
    k = np.where(finite, shape_, 1.0)
    level = np.where(finite, rng.gamma(k, 1 / k, (n_samples, *total.shape)), 1.0)
    return rng.poisson(mean[None, ...] * level[..., None]).astype("float64")


def _expected_shortfall(d: np.ndarray, s: np.ndarray) -> np.ndarray:
    """E[(D - S)+] per item from samples d (samples, items)."""
    return np.maximum(d - s[None, :], 0.0).mean(axis=0)


def solve_order_up_to(
    d_lead: np.ndarray, d_lead_review: np.ndarray, service_level: float, iterations: int = 60
) -> tuple[np.ndarray, np.ndarray]:
    """The smallest S per item whose expected fill rate reaches ``service_level``, by
    bisection (the fill rate is non-decreasing in S); returns (S, fill rate at S)."""
    cycle = np.maximum((d_lead_review - d_lead).mean(axis=0), 1e-12)

    def fill(s: np.ndarray) -> np.ndarray:
        short = _expected_shortfall(d_lead_review, s) - _expected_shortfall(d_lead, s)
        return 1.0 - short / cycle

    lo = np.zeros(d_lead.shape[1])
    hi = d_lead_review.max(axis=0) + 1.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        ok = fill(mid) >= service_level
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    return hi, fill(hi)


def replenishment_plan(
    forecast: pd.DataFrame,
    lead_time_days: int,
    service_level: float = 0.95,
    review_days: int = 1,
    inventory: pd.DataFrame | None = None,
    n_samples: int = 2000,
    seed: int = 0,
    level_shape: float | None = None,
) -> pd.DataFrame:
    """Per item: the order-up-to level S, reorder point and suggested order quantity.

    ``forecast``: the item rows of a demand forecast (level == "item" if a level column is
    there): key or item_id, target_day and either units_mean and units_var or units_p10,
    units_p50, units_p90, covering at least ``lead_time_days + review_days`` days.
    ``inventory``: optional item_id, on_hand, on_order (default 0 and 0). The reorder point is
    S minus the expected demand over one review period: the inventory position at which the
    next review's order is due. Suggested order = max(0, S - inventory position), rounded up to
    whole units.
    """
    if not 0 < service_level < 1:
        raise ValueError("service_level must be in (0, 1)")
    f = forecast
    if "level" in f:
        f = f[f["level"] == "item"]
    f = f.rename(columns={"key": "item_id"}) if "item_id" not in f else f
    f = f.sort_values(["item_id", "target_day"], kind="mergesort")
    days_needed = lead_time_days + review_days
    f = f.groupby("item_id", sort=True).head(days_needed)
    counts = f.groupby("item_id", sort=True).size()
    if (counts < days_needed).any():
        raise ValueError(f"the forecast covers fewer than lead time + review = {days_needed} days")
    item_ids = counts.index.to_numpy()
    if {"units_mean", "units_var"} <= set(f.columns):
        mean, var = f["units_mean"].to_numpy("float64"), f["units_var"].to_numpy("float64")
    else:
        mean, var = moments_from_quantiles(f["units_p10"], f["units_p50"], f["units_p90"])
    mean = mean.reshape(len(item_ids), days_needed)
    var = var.reshape(len(item_ids), days_needed)

    rng = np.random.default_rng(seed)
    daily = sample_daily_demand(mean, var, n_samples, rng, level_shape)  # samples, items, days
    cum = daily.cumsum(axis=2)
    d_lead = cum[:, :, lead_time_days - 1] if lead_time_days > 0 else np.zeros(cum.shape[:2])
    d_lead_review = cum[:, :, -1]
    s, fill = solve_order_up_to(d_lead, d_lead_review, service_level)

    review_mean = mean[:, lead_time_days:].sum(axis=1)
    position = np.zeros(len(item_ids))
    if inventory is not None and len(inventory):
        inv = inventory.assign(item_id=inventory["item_id"].astype(str)).set_index("item_id")
        inv = inv.reindex(item_ids.astype(str))
        for column in ("on_hand", "on_order"):
            if column in inv:
                position += inv[column].fillna(0.0).to_numpy("float64")
    return pd.DataFrame(
        {
            "item_id": item_ids,
            "lead_time_days": lead_time_days,
            "review_days": review_days,
            "service_level": service_level,
            "expected_demand_review": review_mean,
            "expected_demand_lead_review": mean.sum(axis=1),
            "order_up_to": s,
            "reorder_point": s - review_mean,
            "inventory_position": position,
            "suggested_order_qty": np.ceil(np.maximum(s - position, 0.0) - 1e-9),
            "expected_fill_rate": fill,
        }
    )[PLAN_COLUMNS]


DemandSampler = Callable[[np.random.Generator, int], np.ndarray]


@dataclass(frozen=True)
class SimulationResult:
    fill_rate: float  # served / demanded, all items pooled
    item_fill_rate: np.ndarray
    demand: float
    served: float


def simulate_fill_rate(
    plan: pd.DataFrame,
    demand_sampler: DemandSampler,
    days: int,
    seed: int = 0,
    warmup_days: int | None = None,
) -> SimulationResult:
    """Run the plan's (R, S) policy day by day with backorders against true demand.

    ``demand_sampler(rng, day)`` returns one day's demand per plan row. Each review day the
    inventory position (net stock + on order) is raised to S; the order arrives ``L`` days
    later, before that day's demand. Demand is served from positive net stock; the rest is
    backordered. The first ``warmup_days`` (default L + R) are not counted so the pipeline
    starts in steady state. S is used as given (real-valued): ordering fractional units keeps
    the simulation on the formula's assumptions; rounding orders up only raises the fill rate.
    """
    rng = np.random.default_rng(seed)
    s = plan["order_up_to"].to_numpy("float64")
    lead = int(plan["lead_time_days"].iloc[0])
    review = int(plan["review_days"].iloc[0])
    warmup = lead + review if warmup_days is None else warmup_days
    net = s.copy()
    pipeline = np.zeros((lead + 1, len(s)))  # pipeline[k]: arriving in k days
    demanded = np.zeros(len(s))
    served = np.zeros(len(s))
    for day in range(days + warmup):
        if day % review == 0:
            order = np.maximum(s - (net + pipeline.sum(axis=0)), 0.0)
            pipeline[lead] += order
        net += pipeline[0]
        pipeline = np.vstack([pipeline[1:], np.zeros((1, len(s)))])
        d = np.asarray(demand_sampler(rng, day), dtype="float64")
        served_today = np.minimum(d, np.maximum(net, 0.0))
        net -= d
        if day >= warmup:
            demanded += d
            served += served_today
    total = float(demanded.sum())
    return SimulationResult(
        fill_rate=float(served.sum() / total) if total > 0 else 1.0,
        item_fill_rate=np.divide(served, demanded, out=np.ones_like(served), where=demanded > 0),
        demand=total,
        served=float(served.sum()),
    )


def fill_rate_over_lead_time(plan: pd.DataFrame, demand: np.ndarray) -> float:
    """The fill rate of one replenishment cycle against demand drawn from the truth, pooled
    over the plan's items (units-weighted): with the inventory position raised to S today,
    the review period's demand served from stock is what the lead time's demand left,

        fill = 1 - sum_i (E[(D_{L+R} - S_i)+] - E[(D_L - S_i)+]) / sum_i E[D_{L+R} - D_L],

    ``demand``: (samples, items in the plan's order, at least L + R days) of true demand."""
    lead = int(plan["lead_time_days"].iloc[0])
    review = int(plan["review_days"].iloc[0])
    s = plan["order_up_to"].to_numpy("float64")
    cum = demand[:, :, : lead + review].cumsum(axis=2)
    d_lead = cum[:, :, lead - 1] if lead > 0 else np.zeros(cum.shape[:2])
    d_all = cum[:, :, -1]
    short = _expected_shortfall(d_all, s) - _expected_shortfall(d_lead, s)
    cycle = (d_all - d_lead).mean(axis=0).sum()
    return float(1.0 - short.sum() / cycle) if cycle > 0 else 1.0
