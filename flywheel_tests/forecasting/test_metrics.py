"""Metrics on tiny hand-computed cases, rolling origins and the decision helpers."""

from __future__ import annotations

import pandas as pd
import pytest

from flywheel_assets.forecasting.backtest import (
    challenger_wins,
    forecast_metrics,
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
    # inside: 4 in [0,3]? no; 1 in [1.5,3]? no; 0 in [0,1] yes; 0 in [0,0.5] yes -> 2/4.
    assert m["coverage_80"] == pytest.approx(0.5)


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
