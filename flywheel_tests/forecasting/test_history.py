"""What was sold, read from the warehouse: purchase events count their quantity."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from flywheel_assets.forecasting.daily import load_history
from flywheel_assets.forecasting.settings import ForecastSettings
from flywheel_assets.platform.warehouse import Warehouse

DAY = dt.date(2025, 5, 2)


def _event(event_id: str, event_type: str, item: str, price: float | None, qty: int | None):
    return {
        "dt": DAY,
        "event_id": event_id,
        "event_type": event_type,
        "event_time": dt.datetime.combine(DAY, dt.time(12)),
        "user_id": "u",
        "item_id": item,
        "price": price,
        "quantity": qty,
    }


@pytest.fixture
def wh(tmp_path: Path):
    w = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    w.migrate()
    yield w
    w.dispose()


def test_purchase_events_count_their_quantity_and_price_each_unit(wh: Warehouse) -> None:
    events = pd.DataFrame(
        [
            _event("a", "purchase", "i1", 2.0, 3),  # three units at 2.0
            _event("b", "purchase", "i1", 5.0, None),  # no quantity: one unit
            _event("c", "purchase", "i1", None, 2),  # two units, price unknown
            _event("d", "add_to_cart", "i1", 2.0, 4),  # not a sale
            _event("e", "purchase", "i2", 1.5, None),
        ]
    )
    with wh.begin() as conn:
        wh.insert_df(conn, "events", events.astype({"quantity": "Int64"}))
    history = load_history(wh, DAY, ForecastSettings(source="events"))
    sales = history.sales.set_index("item_id")
    assert history.source == "events"
    assert sales.loc["i1", "units"] == 6 and sales.loc["i2", "units"] == 1
    # Revenue: priced units at their price; the two unpriced units at the item's listed price,
    # which this shop (no catalog) takes from what its priced units sold for: 11 / 4.
    assert sales.loc["i1", "revenue"] == pytest.approx(6.0 + 5.0 + 2 * 11.0 / 4)
    assert sales.loc["i2", "revenue"] == pytest.approx(1.5)
