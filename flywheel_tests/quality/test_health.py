"""The flywheel's daily health row (flywheel_assets.quality.health) on a real DuckDB warehouse,
without Dagster."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.quality.health import health_day, record_health

DAY = dt.date(2026, 7, 2)


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[Warehouse]:
    w = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    w.migrate()
    yield w
    w.dispose()


def _events(day: dt.date) -> pd.DataFrame:
    """Two requests of two impressions each (champion m1 three times, the challenger m2 once),
    one click and one purchase."""
    t = dt.datetime.combine(day, dt.time(12))
    rows = [
        ("impression", "r1", "i1", "champion", "m1"),
        ("impression", "r1", "i2", "champion", "m1"),
        ("impression", "r2", "i1", "champion", "m1"),
        ("impression", "r2", "i3", "challenger", "m2"),
        ("click", "r1", "i1", "champion", "m1"),
        ("purchase", "r1", "i1", "champion", "m1"),
    ]
    return pd.DataFrame(
        [
            {
                "dt": day,
                "event_id": f"{day}-{k}",
                "event_type": kind,
                "event_time": t,
                "user_id": "u",
                "item_id": item,
                "request_id": request,
                "variant": variant,
                "model_version": model,
            }  # fmt: skip
            for k, (kind, request, item, variant, model) in enumerate(rows)
        ]
    )


def test_a_day_is_recorded_with_its_rates_and_the_champion_that_served(wh: Warehouse) -> None:
    with wh.begin() as conn:
        wh.insert_df(conn, "events", pd.concat([_events(DAY - dt.timedelta(days=1)), _events(DAY)]))
        wh.insert_df(
            conn,
            "simulator_days",
            pd.DataFrame({"dt": [DAY], "oracle_share": [0.81], "baseline_share": [0.5]}),
        )
    record_health(wh, DAY - dt.timedelta(days=1))
    report = record_health(wh, DAY)
    for _ in range(2):  # a re-run replaces the day's row
        report = record_health(wh, DAY)

    h = report.day
    assert (h.requests, h.impressions, h.clicks, h.purchases) == (2, 4, 1, 1)
    assert (h.ctr, h.purchase_rate, h.champion, h.decision) == (0.25, 0.5, "m1", None)
    assert report.oracle_share == 0.81
    assert report.history["dt"].tolist() == [DAY - dt.timedelta(days=1), DAY]
    with wh.begin() as conn:
        stored = wh.query_df(conn, "SELECT * FROM flywheel_health ORDER BY dt")
    assert len(stored) == 2
    assert stored.iloc[1][["requests", "ctr", "purchase_rate", "champion"]].tolist() == [
        2, 0.25, 0.5, "m1"
    ]  # fmt: skip
    # Only the days of the history window.
    assert record_health(wh, DAY, history_days=1).history["dt"].tolist() == [DAY]


def test_a_day_without_traffic_has_no_rates(wh: Warehouse) -> None:
    report = record_health(wh, DAY)
    h = report.day
    assert (h.requests, h.ctr, h.purchase_rate, h.champion) == (0, None, None, None)
    assert report.oracle_share is None  # no simulator on a real shop


def test_null_counts_are_zero() -> None:
    served = pd.Series(
        [None, None, None, None, float("nan"), "promote"],
        index=["requests", "impressions", "clicks", "purchases", "champion", "decision"],
        dtype=object,  # as the warehouse hands SQL NULLs over
    )
    h = health_day(DAY, served)
    assert (h.requests, h.champion, h.decision) == (0, None, "promote")
    assert h.row().iloc[0].to_dict()["dt"] == DAY
