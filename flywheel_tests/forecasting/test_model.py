"""The global forecaster: no leakage, determinism to the byte, well-formed quantiles."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from flywheel_assets.forecasting.model import (
    ForecastParams,
    GlobalForecaster,
    feature_names,
    jitter_counts,
    panel_features,
)
from flywheel_assets.forecasting.panel import DemandPanel, panels_for_levels
from flywheel_tests.forecasting.synthetic import make_shop

PARAMS = ForecastParams(num_boost_round=30, training_origins=4)
ORIGIN = pd.Timestamp("2024-04-20")


@lru_cache(maxsize=1)
def _shop():
    return make_shop(n_items=60, n_days=150, seed=3)


def _panels(sales: pd.DataFrame | None = None) -> dict[str, DemandPanel]:
    shop = _shop()
    return panels_for_levels(
        shop.sales if sales is None else sales,
        shop.items,
        shop.prices,
        shop.days[0],
        shop.days[-1],
    )


def _tampered_sales() -> pd.DataFrame:
    """The same sales before ORIGIN, different ones on and after it."""
    sales = _shop().sales
    rng = np.random.default_rng(99)
    after = sales[sales["day"] >= ORIGIN]
    noise = after.assign(units=rng.integers(0, 50, len(after)).astype(float))
    return pd.concat([sales[sales["day"] < ORIGIN], noise.assign(revenue=noise["units"] * 3)])


def test_features_read_no_day_at_or_after_the_origin() -> None:
    clean, tampered = _panels(), _panels(_tampered_sales())
    o = clean["item"].day_index(ORIGIN)
    assert not np.array_equal(clean["item"].units[:, o:], tampered["item"].units[:, o:])
    vocab = {"category": sorted(set(clean["item"].category)), "brand": []}
    for level in ("item", "category", "total"):
        a = panel_features(clean[level], o, PARAMS, vocab).x
        b = panel_features(tampered[level], o, PARAMS, vocab).x
        np.testing.assert_array_equal(a, b)
        assert a.shape == (clean[level].n_series * PARAMS.horizon, len(feature_names(PARAMS)))


def test_fit_and_predict_ignore_data_from_the_origin_on() -> None:
    a = GlobalForecaster(PARAMS).fit(_panels(), ORIGIN)
    b = GlobalForecaster(PARAMS).fit(_panels(_tampered_sales()), ORIGIN)
    assert a.to_bytes() == b.to_bytes()
    pd.testing.assert_frame_equal(a.predict(_panels(), ORIGIN), b.predict(_panels(), ORIGIN))


def test_deterministic_to_the_byte_and_round_trips() -> None:
    panels = _panels()
    a = GlobalForecaster(PARAMS).fit(panels, ORIGIN)
    b = GlobalForecaster(PARAMS).fit(panels, ORIGIN)
    assert a.to_bytes() == b.to_bytes()
    loaded = GlobalForecaster.from_bytes(a.to_bytes())
    assert loaded.to_bytes() == a.to_bytes()
    pd.testing.assert_frame_equal(loaded.predict(panels, ORIGIN), a.predict(panels, ORIGIN))
    other_seed = GlobalForecaster(ForecastParams(num_boost_round=30, training_origins=4, seed=1))
    assert other_seed.fit(panels, ORIGIN).to_bytes() != a.to_bytes()


def test_forecast_frame_is_well_formed() -> None:
    panels = _panels()
    model = GlobalForecaster(PARAMS).fit(panels, ORIGIN)
    fc = model.predict(panels, ORIGIN)
    assert list(fc.columns) == [
        "level",
        "key",
        "target_day",
        "units_p10",
        "units_p50",
        "units_p90",
        "units_mean",
        "units_point",
        "revenue_p50",
        "model_version",
    ]
    assert len(fc) == (60 + panels["category"].n_series + 1) * 28
    assert (fc["units_p10"] >= 0).all()
    assert (fc["units_p10"] <= fc["units_p50"]).all() and (fc["units_p50"] <= fc["units_p90"]).all()
    assert fc["target_day"].min() == ORIGIN
    assert fc["target_day"].max() == ORIGIN + pd.Timedelta(days=27)
    assert fc["model_version"].nunique() == 1 and fc["model_version"][0] == model.model_version
    # The point is the median count: the floor of the jittered count's median.
    np.testing.assert_array_equal(fc["units_point"], np.floor(fc["units_p50"]))
    # Item revenue: the median count times the (planned) list price of the target day.
    item = fc[fc["level"] == "item"].reset_index(drop=True)
    p = panels["item"]
    cols = p.day_index(ORIGIN) + np.tile(np.arange(28), p.n_series)
    np.testing.assert_allclose(
        item["revenue_p50"],
        item["units_point"] * p.price[np.repeat(np.arange(60), 28), cols],
        rtol=1e-6,
    )
    # The total's forecast is in the total's units: far above any item's.
    total = fc[fc["level"] == "total"]["units_p50"].mean()
    assert total > 5 * item.groupby("key")["units_p50"].mean().max()


def test_lineage_is_json_and_says_what_was_used() -> None:
    model = GlobalForecaster(PARAMS).fit(_panels(), ORIGIN)
    lineage = model.lineage()
    json.dumps(lineage)
    assert lineage["origin"] == "2024-04-20"
    assert lineage["calibration_origin"] == "2024-03-23"  # the origin minus 28 days
    # Training origins end before the calibration origin's first forecast day.
    assert max(lineage["training_origins"]) < lineage["calibration_origin"]
    assert len(lineage["training_origins"]) == 4
    assert lineage["rows_trained"] > 0 and set(lineage["calibration_adjustment"]) == {
        "item",
        "category",
        "total",
    }
    assert lineage["model_version"] == model.model_version


def test_fitting_needs_history() -> None:
    with pytest.raises(ValueError):
        GlobalForecaster(PARAMS).fit(_panels(), _shop().days[10])


def test_a_model_stored_before_jittering_reads_as_unjittered() -> None:
    stored = ForecastParams().to_dict()
    del stored["jitter"]
    assert ForecastParams.from_dict(stored).jitter is False
    assert ForecastParams.from_dict(ForecastParams().to_dict()).jitter is True


def test_floor_of_a_jittered_quantile_is_the_count_quantile() -> None:
    # Machado & Santos Silva (2005): floor(Q_{Y+U}(tau)) = Q_Y(tau) for a count Y.
    rng = np.random.default_rng(5)
    y = rng.negative_binomial(0.4, 0.5, 200_000).astype("float64")  # 70 % zeros
    z = jitter_counts(y, rng)
    for tau in (0.1, 0.5, 0.8, 0.9, 0.95):
        assert np.floor(np.quantile(z, tau)) == np.quantile(y, tau, method="inverted_cdf")
