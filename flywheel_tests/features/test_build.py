"""Building the feature tables (flywheel_assets.features.build) on DuckDB, without Dagster: a
range of aggregates in one statement equals the days one by one, a snapshot replaces its day
with the pandas reference's keys."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from flywheel_assets.features import reference
from flywheel_assets.features.build import (
    build_aggregates,
    build_snapshot,
    is_aggregate,
    window_params,
)
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_tests.features.test_features import (
    PRIOR,
    START,
    events_for,
    load,
    new_warehouse,
    table,
)

DAYS = [START + dt.timedelta(days=k) for k in range(4)]
AGGREGATES = ["user_activity_daily", "item_activity_daily", "user_item_activity_daily"]


def _shop(path: Path) -> tuple[Warehouse, pd.DataFrame]:
    wh = new_warehouse(f"duckdb:///{path}")
    events = pd.concat([events_for(d, seed=k) for k, d in enumerate(DAYS)], ignore_index=True)
    load(wh, "events", events)
    return wh, events


def test_window_params_of_a_snapshot_day() -> None:
    p = window_params(dt.date(2026, 3, 28), 20.0)
    assert p["cutoff"] == dt.datetime(2026, 3, 29)
    assert (p["start_28d"], p["start_7d"], p["start_1d"]) == (
        dt.date(2026, 3, 1),
        dt.date(2026, 3, 22),
        dt.date(2026, 3, 28),
    )
    assert (p["end_day"], p["week_ago"], p["prior_strength"]) == (
        dt.date(2026, 3, 29),
        dt.date(2026, 3, 21),
        20.0,
    )
    assert is_aggregate("item_activity_daily") and not is_aggregate("item_features")


def test_a_range_of_aggregates_equals_the_days_one_by_one(tmp_path: Path) -> None:
    ranged, _ = _shop(tmp_path / "ranged.duckdb")
    daily, _ = _shop(tmp_path / "daily.duckdb")
    for name in AGGREGATES:
        rows = build_aggregates(ranged, name, DAYS)
        assert list(rows) == DAYS and all(n > 0 for n in rows.values())
        for day in DAYS:
            assert build_aggregates(daily, name, [day]) == {day: rows[day]}
        pd.testing.assert_frame_equal(table(ranged, name), table(daily, name), obj=name)
        # Again over the range: replaced, not appended.
        assert build_aggregates(ranged, name, DAYS) == rows
    ranged.dispose()
    daily.dispose()


@pytest.mark.parametrize("name", ["user_features", "item_features"])
def test_a_snapshot_replaces_its_day_with_the_references_keys(tmp_path: Path, name: str) -> None:
    wh, events = _shop(tmp_path / "shop.duckdb")
    for aggregate in AGGREGATES:
        build_aggregates(wh, aggregate, DAYS)
    day = DAYS[-1]
    n = build_snapshot(wh, name, day, PRIOR)
    assert build_snapshot(wh, name, day, PRIOR) == n > 0
    built = table(wh, name)
    assert built["dt"].nunique() == 1 and len(built) == n
    # One row per user (item) of the pandas reference; the values are compared with it in
    # test_features.py, through the assets.
    expected = reference.snapshot(events, day, PRIOR)[name]
    key = "user_id" if name == "user_features" else "item_id"
    assert sorted(built[key]) == sorted(expected.index.get_level_values(key))
    wh.dispose()
