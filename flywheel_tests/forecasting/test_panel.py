"""Dense panels: missing days are zeros, prices forward-fill, levels sum up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flywheel_assets.forecasting.panel import build_item_panel, panels_for_levels


@pytest.fixture
def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    sales = pd.DataFrame(
        {
            "item_id": ["a", "a", "b", "b", "c", "zz"],
            "day": pd.to_datetime(
                ["2024-01-01", "2024-01-03", "2024-01-02", "2024-01-02", "2024-01-04", "2024-01-02"]
            ),
            "units": [1.0, 2.0, 3.0, 1.0, 5.0, 9.0],
            "revenue": [10.0, 20.0, 15.0, 5.0, 50.0, 90.0],
        }
    )
    items = pd.DataFrame(
        {
            "item_id": ["c", "b", "a"],
            "category": ["y", "x", "x"],
            "brand": [None, "k", "k"],
            "price": [10.0, 5.0, 10.0],
        }
    )
    prices = pd.DataFrame(
        {
            "item_id": ["a", "a", "b"],
            "day": pd.to_datetime(["2023-12-20", "2024-01-03", "2024-01-02"]),
            "price": [9.0, 8.0, 4.0],
        }
    )
    return sales, items, prices


def test_missing_days_are_zero_and_duplicates_add(frames) -> None:
    sales, items, prices = frames
    p = build_item_panel(sales, items, prices, "2024-01-01", "2024-01-05")
    assert list(p.keys) == ["a", "b", "c"]  # sorted catalog; "zz" is not in it
    np.testing.assert_array_equal(p.units, [[1, 0, 2, 0, 0], [0, 4, 0, 0, 0], [0, 0, 0, 5, 0]])
    assert p.revenue[1, 1] == 20.0
    assert p.units.dtype == np.float32
    long = p.long("2024-01-02", "2024-01-03")
    assert len(long) == 6 and long["units"].sum() == 6.0


def test_prices_forward_fill_from_changes_before_the_start(frames) -> None:
    sales, items, prices = frames
    p = build_item_panel(sales, items, prices, "2024-01-01", "2024-01-05")
    # a: 9 from a change before the panel, 8 from Jan 3; b: catalog 5 until its change to 4;
    # c: no change, catalog price throughout.
    np.testing.assert_allclose(p.price[0], [9, 9, 8, 8, 8])
    np.testing.assert_allclose(p.price[1], [5, 4, 4, 4, 4])
    np.testing.assert_allclose(p.price[2], [10] * 5)
    no_changes = build_item_panel(sales, items, None, "2024-01-01", "2024-01-05")
    np.testing.assert_allclose(no_changes.price[:, 0], [10, 5, 10])


def test_levels_sum_units_and_revenue(frames) -> None:
    sales, items, prices = frames
    panels = panels_for_levels(sales, items, prices, "2024-01-01", "2024-01-05")
    item, cat, total = panels["item"], panels["category"], panels["total"]
    assert list(cat.keys) == ["x", "y"] and list(total.keys) == ["total"]
    np.testing.assert_array_equal(cat.units[0], item.units[0] + item.units[1])
    np.testing.assert_array_equal(cat.units[1], item.units[2])
    np.testing.assert_array_equal(total.units[0], item.units.sum(axis=0))
    np.testing.assert_allclose(total.revenue[0].sum(), 100.0)  # "zz" is not in the catalog
    np.testing.assert_allclose(cat.price[0], (item.price[0] + item.price[1]) / 2)
    assert list(cat.category) == ["x", "y"] and total.category[0] is None
    assert list(item.brand) == ["k", "k", None]
