"""Who publishes each level's forecast: the champion, or a baseline that beat it there."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flywheel_assets.forecasting import baselines
from flywheel_assets.forecasting.daily import MODEL, baseline_rows, level_publishers
from flywheel_assets.forecasting.model import unit_prices
from flywheel_assets.forecasting.panel import panels_for_levels
from flywheel_tests.forecasting.synthetic import make_shop


def _summary(mase: dict[tuple[str, str], float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"level": level, "model": model, "model_version": None, "origins": 4,
             "horizon_days": 28, "mase": m, "wape": 0.5, "bias": 0.0, "coverage_80": 0.8,
             "coverage_80_discrete": 0.9}
            for (level, model), m in mase.items()
        ]
    )  # fmt: skip


def test_a_baseline_publishes_only_the_aggregate_levels_it_wins() -> None:
    s = _summary(
        {
            ("item", "challenger"): 0.7, ("item", "seasonal_naive"): 1.0, ("item", "ets"): 0.6,
            ("category", "challenger"): 0.8, ("category", "seasonal_naive"): 0.9,
            ("category", "ets"): 0.85,
            ("total", "challenger"): 3.5, ("total", "seasonal_naive"): 1.4, ("total", "ets"): 1.2,
        }
    )  # fmt: skip
    # ETS beats the model at item level too, but items are always the model's: the
    # decision and the blocking check are made there.
    assert level_publishers(s) == {"item": MODEL, "category": MODEL, "total": "ets"}


def test_without_a_backtest_or_a_score_the_model_publishes() -> None:
    assert set(level_publishers(_summary({}).iloc[0:0]).values()) == {MODEL}
    s = _summary(
        {
            ("item", "challenger"): 0.7, ("item", "seasonal_naive"): 1.0,
            ("category", "challenger"): 0.8, ("category", "seasonal_naive"): float("nan"),
            ("total", "challenger"): 0.5, ("total", "seasonal_naive"): 0.6,
        }
    )  # fmt: skip
    assert level_publishers(s) == {"item": MODEL, "category": MODEL, "total": MODEL}


def test_baseline_rows_are_in_the_models_frame_and_priced_like_it() -> None:
    shop = make_shop(n_items=20, n_days=120, seed=4)
    panels = panels_for_levels(shop.sales, shop.items, shop.prices)
    origin = panels["item"].days[-1] - pd.Timedelta(days=27)
    rows = baseline_rows("ets", panels, origin, "total", 28)
    direct = baselines.ets(panels, origin, horizon=28, levels=("total",))
    assert len(rows) == 28 and (rows["level"] == "total").all()
    assert (rows["model_version"] == "ets").all()
    np.testing.assert_allclose(rows["units_p50"], direct["units_p50"])
    np.testing.assert_allclose(rows["units_mean"], rows["units_point"])
    panel = panels["total"]
    price = unit_prices(panel, panel.day_index(origin), np.zeros(28, int), np.arange(1, 29))
    np.testing.assert_allclose(rows["revenue_p50"], rows["units_point"] * price)
    assert (rows["revenue_p50"] > 0).all()
    with pytest.raises(KeyError):
        baseline_rows("prophet", panels, origin, "total", 28)
