"""Metrics on tiny hand-computed cases, rolling origins and the decision helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flywheel_assets.forecasting.backtest import (
    challenger_wins,
    forecast_metrics,
    interval_coverage,
    rolling_origins,
    worse_than_seasonal_naive,
)


def test_metrics_by_hand() -> None:
    days = pd.date_range("2024-01-01", periods=9)
    # History of 9 days: seasonal-naive(7) errors |y[7]-y[0]|, |y[8]-y[1]| = |3-1|, |0-2| -> 2.
    history = pd.DataFrame(
        {"level": "item", "key": "a", "day": days, "units": [1, 2, 0, 0, 0, 0, 0, 3, 0]}
    )
    # Series "b" sold nothing: scale 0, excluded from MASE but counted in WAPE/bias/coverage.
    history = pd.concat([history, history.assign(key="b", units=0)], ignore_index=True)
    target = pd.date_range("2024-01-10", periods=2)
    forecast = pd.DataFrame(
        {
            "level": "item",
            "key": ["a", "a", "b", "b"],
            "target_day": list(target) * 2,
            "units_p10": [0.0, 1.5, 0.0, 0.0],
            "units_p50": [2.0, 2.0, 1.0, 0.0],
            "units_p90": [3.0, 3.0, 1.0, 0.5],
        }
    )
    actuals = pd.DataFrame(
        {
            "level": "item",
            "key": ["a", "a", "b", "b"],
            "day": list(target) * 2,
            "units": [4.0, 1.0, 0.0, 0.0],
        }
    )
    m = forecast_metrics(forecast, actuals, history).set_index("level").loc["item"]
    # a: errors -2, +1 -> MAE 1.5 / scale 2 = 0.75; b excluded.
    assert m["mase"] == pytest.approx(0.75)
    # |err| = 2 + 1 + 1 + 0 = 4 over 5 units; signed = -2 + 1 + 1 + 0 = 0.
    assert m["wape"] == pytest.approx(4 / 5)
    assert m["bias"] == pytest.approx(0.0)
    # Jittered: the length of each interval within [y, y + 1]: [4,5] & [0,3] = 0,
    # [1,2] & [1.5,3] = 0.5, [0,1] & [0,1] = 1, [0,1] & [0,0.5] = 0.5 -> 2/4.
    assert m["coverage_80"] == pytest.approx(0.5)
    # Counts in the integer bands 0..3, 1..3, 0..1, 0..0: 4 no, 1 yes, 0 yes, 0 yes -> 3/4.
    assert m["coverage_80_discrete"] == pytest.approx(0.75)


def test_baseline_point_forecast_is_used_when_given() -> None:
    days = pd.date_range("2024-01-01", periods=8)
    # The scale counts from the first sale: |2 - 1| = 1 (the zeros before it are no demand).
    history = pd.DataFrame({"level": "item", "key": "a", "day": days, "units": [1] + [0] * 6 + [2]})
    fc = pd.DataFrame(
        {
            "level": ["item"],
            "key": ["a"],
            "target_day": [pd.Timestamp("2024-01-09")],
            "units_p10": [0.0],
            "units_p50": [1.0],
            "units_p90": [2.0],
            "units_point": [3.0],
        }
    )
    act = pd.DataFrame(
        {"level": ["item"], "key": ["a"], "day": [pd.Timestamp("2024-01-09")], "units": [1.0]}
    )
    m = forecast_metrics(fc, act, history).iloc[0]
    assert m["mase"] == pytest.approx(2.0 / 1.0) and m["bias"] == pytest.approx(2.0)


def test_rolling_origins_only_forecast_observed_days() -> None:
    last = pd.Timestamp("2024-06-30")
    origins = rolling_origins(last, n_origins=4, horizon=28, step=7)
    assert len(origins) == 4 and origins == sorted(origins)
    assert all(o + pd.Timedelta(days=27) <= last for o in origins)
    assert origins[-1] + pd.Timedelta(days=27) == last
    assert [(b - a).days for a, b in zip(origins, origins[1:], strict=False)] == [7, 7, 7]


def _summary(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "level": "item",
                "model": m,
                "origins": 4,
                "horizon_days": 28,
                "mase": mase,
                "wape": 0.5,
                "bias": 0.0,
                "coverage_80": cov,
            }
            for m, mase, cov in rows
        ]
    )


def test_decision_rule() -> None:
    s = _summary(
        [
            ("champ", 0.80, 0.80),
            ("better", 0.70, 0.79),
            ("miscovered", 0.60, 0.70),
            ("worse", 0.85, 0.80),
            ("seasonal_naive", 0.82, 0.9),
        ]
    )
    assert challenger_wins(s, "champ", "better")
    assert not challenger_wins(s, "champ", "miscovered")  # 10 points off vs 0: beyond tolerance
    assert not challenger_wins(s, "champ", "worse")
    assert worse_than_seasonal_naive(s, "worse")
    assert not worse_than_seasonal_naive(s, "champ")
    with pytest.raises(KeyError):
        challenger_wins(s, "champ", "missing")


def test_interval_coverage_of_counts_is_exact_where_most_days_sell_nothing() -> None:
    # An item selling nothing on 85 % of days: its count's own 80 % interval is [0, 0] and
    # covers 85 %; the jittered count's interval covers 80 %, as a calibrated one must.
    rng = np.random.default_rng(2)
    y = rng.choice([0.0, 1.0, 2.0], size=400_000, p=[0.85, 0.1, 0.05])
    z = y + rng.random(len(y))
    lo, hi = np.quantile(z, 0.1), np.quantile(z, 0.9)
    assert interval_coverage(y, lo, hi).mean() == pytest.approx(0.8, abs=0.005)
    assert ((y >= 0) & (y <= 0)).mean() == pytest.approx(0.85, abs=0.005)
    # Its integer band floor(lo)..floor(hi) is the count's quantile interval: 0..1 units.
    assert (np.floor(lo), np.floor(hi)) == (0.0, 1.0)
