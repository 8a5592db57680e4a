"""Replenishment: the (R, S) formulas on hand-checkable cases, and the simulated fill rate of
plans from a calibrated forecast within 2 points of the service level."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import poisson

from flywheel_assets.forecasting.replenishment import (
    moments_from_quantiles,
    replenishment_plan,
    simulate_fill_rate,
    solve_order_up_to,
)


def test_order_up_to_by_hand() -> None:
    # Two equally likely scenarios: D_L = 0 or 2, D_{L+R} = 1 or 3 (one unit in the cycle).
    d_lead = np.array([[0.0], [2.0]])
    d_lead_review = np.array([[1.0], [3.0]])
    # fill(S) = 1 - (E(D_LR - S)+ - E(D_L - S)+) / 1: S = 2 -> 0.5, S = 2.5 -> 0.75, 3 -> 1.
    s, fill = solve_order_up_to(d_lead, d_lead_review, 0.75)
    assert s[0] == pytest.approx(2.5, abs=1e-6) and fill[0] == pytest.approx(0.75, abs=1e-6)
    # fill is flat at 0.5 for S in [1, 2] (the cycle's unit is short exactly when D_L = 2):
    # the smallest S reaching it is 1.
    s, _ = solve_order_up_to(d_lead, d_lead_review, 0.5)
    assert s[0] == pytest.approx(1.0, abs=1e-6)


def test_simulation_by_hand() -> None:
    # Demand of exactly 1 a day, L = 2, R = 1: the stock after an arrival is S - 2, so S = 3
    # serves everything and S = 2.5 serves half of each day's unit.
    for s, expected in ((3.0, 1.0), (2.5, 0.5), (2.0, 0.0)):
        plan = pd.DataFrame({"order_up_to": [s], "lead_time_days": [2], "review_days": [1]})
        result = simulate_fill_rate(plan, lambda rng, day: np.ones(1), days=50)
        assert result.fill_rate == pytest.approx(expected)


def test_moments_from_quantiles() -> None:
    mean, var = moments_from_quantiles(np.array([1.0]), np.array([2.0]), np.array([4.0]))
    assert mean[0] == pytest.approx(0.3 + 0.8 + 1.2)
    assert var[0] == pytest.approx((3.0 / 2.5631031) ** 2, rel=1e-6)


def test_plan_columns_reorder_point_and_order_quantity() -> None:
    f = pd.DataFrame(
        {
            "level": "item",
            "key": np.repeat(["a", "b"], 5),
            "target_day": np.tile(pd.date_range("2024-01-01", periods=5), 2),
            "units_mean": np.repeat([2.0, 0.5], 5),
            "units_var": np.repeat([2.0, 1.5], 5),
        }
    )
    inventory = pd.DataFrame({"item_id": ["a"], "on_hand": [3.0], "on_order": [4.0]})
    plan = replenishment_plan(
        f, lead_time_days=3, service_level=0.95, review_days=2, inventory=inventory
    ).set_index("item_id")
    assert plan.loc["a", "expected_demand_review"] == pytest.approx(4.0)
    assert plan.loc["a", "expected_demand_lead_review"] == pytest.approx(10.0)
    assert plan.loc["a", "reorder_point"] == pytest.approx(plan.loc["a", "order_up_to"] - 4.0)
    assert plan.loc["a", "inventory_position"] == 7.0 and plan.loc["b", "inventory_position"] == 0
    assert plan.loc["a", "suggested_order_qty"] == np.ceil(plan.loc["a", "order_up_to"] - 7.0)
    assert (plan["expected_fill_rate"] >= 0.95).all()
    assert plan.loc["a", "order_up_to"] > 10.0  # above mean lead+review demand at 95 %
    with pytest.raises(ValueError, match="fewer than"):
        replenishment_plan(f, lead_time_days=7, service_level=0.95)


def _calibrated_forecast(lam: np.ndarray, days: int, quantiles: bool) -> pd.DataFrame:
    f = pd.DataFrame(
        {
            "level": "item",
            "key": np.repeat([f"i{i:03d}" for i in range(len(lam))], days),
            "target_day": np.tile(pd.date_range("2024-01-01", periods=days), len(lam)),
        }
    )
    rate = np.repeat(lam, days)
    if quantiles:
        for q in (10, 50, 90):
            f[f"units_p{q}"] = poisson.ppf(q / 100, rate)
    else:
        f["units_mean"], f["units_var"] = rate, rate
    return f


@pytest.mark.parametrize("quantiles", [False, True], ids=["moments", "p10-p50-p90"])
@pytest.mark.parametrize("beta", [0.9, 0.95])
def test_simulated_fill_rate_within_two_points(quantiles: bool, beta: float) -> None:
    """Poisson truth (many slow movers); the forecast is the truth's own distribution, given
    as moments or as its integer p10/p50/p90 (measured: within 0.2 and 1.5 points)."""
    lam = np.exp(np.random.default_rng(1).normal(0.0, 1.0, 200))
    lead, review = 7, 1
    plan = replenishment_plan(
        _calibrated_forecast(lam, lead + review, quantiles), lead, beta, review, n_samples=1000
    )
    result = simulate_fill_rate(plan, lambda rng, day: rng.poisson(lam), days=1000, seed=5)
    assert abs(result.fill_rate - beta) <= 0.02
