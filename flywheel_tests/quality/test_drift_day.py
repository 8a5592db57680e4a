"""A day's drift verdict (flywheel_assets.quality.drift_day) without Dagster: the monitored
columns, the warm-up, the judgement, and a day read from a real DuckDB warehouse."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel_assets.platform.config import SettingsError
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.quality.drift_day import (
    DriftConfigError,
    drift_of_day,
    judge_drift,
    monitored_columns,
    warming_up,
)
from flywheel_assets.quality.settings import DEFAULT_DRIFT_COLUMNS, QualitySettings

DAY = dt.date(2026, 6, 30)
Q = QualitySettings.resolve(environ={})


def test_monitored_columns_default_or_from_the_setting() -> None:
    assert monitored_columns(Q, "item_features") == DEFAULT_DRIFT_COLUMNS["item_features"]
    assert monitored_columns(Q, "user_brand_features") == []
    mapping = json.dumps({"item_features": ["i_price"]})
    q = QualitySettings.resolve(environ={"FLYWHEEL_DRIFT_COLUMNS": mapping})
    assert monitored_columns(q, "item_features") == ["i_price"]
    assert monitored_columns(q, "user_features") == []  # left out: not monitored
    with pytest.raises(SettingsError, match=r"FLYWHEEL_DRIFT_COLUMNS is invalid: unknown"):
        QualitySettings.resolve(environ={"FLYWHEEL_DRIFT_COLUMNS": '{"orders": ["x"]}'})


def test_drift_waits_for_the_reference_window_to_leave_the_warm_up() -> None:
    assert warming_up(None, DAY, Q) == "no events yet"
    first = DAY - dt.timedelta(days=30)
    assert warming_up(first, DAY, Q) == (
        f"warm-up: the reference window starts {DAY - dt.timedelta(days=7)}, before "
        f"{first + dt.timedelta(days=28)} (28 days after the first events, "
        "FLYWHEEL_DRIFT_WARMUP_DAYS)"
    )
    assert warming_up(DAY - dt.timedelta(days=35), DAY, Q) is None


def _frame(mean: float, n: int = 2_000, seed: int = 0, days: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "dt": [DAY - dt.timedelta(days=1 + k % days) for k in range(n)],
            "i_price": rng.normal(mean, 1.0, n),
        }
    )


def test_a_shift_is_an_error_with_its_figures() -> None:
    verdict = judge_drift(_frame(0, days=5), _frame(1.5, seed=1), ["i_price"], Q, 5, "items")
    assert not verdict.passed and verdict.severity == "error"
    assert verdict.description.startswith("items: error: i_price: PSI")
    assert "raise the FLYWHEEL_DRIFT_PSI_* thresholds" in verdict.description
    d = verdict.detail
    assert d is not None and (d.rows_day, d.rows_reference) == (2_000, 2_000)
    assert d.max_psi > Q.drift_psi_error and d.table["column"].tolist() == ["i_price"]
    assert d.plot.startswith("![i_price](data:image/png;base64,")


def test_the_same_distribution_passes_and_a_warm_up_only_reports() -> None:
    same = judge_drift(_frame(0, days=5), _frame(0, seed=1), ["i_price"], Q, 5, "items")
    assert same.passed and same.description.startswith("items: no drift (max PSI 0.0")
    warm = judge_drift(
        _frame(0, days=5), _frame(1.5, seed=1), ["i_price"], Q, 5, "items", "warm-up: soon"
    )
    assert warm.passed and warm.detail is not None
    assert warm.description.startswith("items: drift not judged (warm-up: soon); max PSI")


def test_too_few_reference_days_are_not_judged() -> None:
    verdict = judge_drift(_frame(0), _frame(3.0), ["i_price"], Q, 2, "items")
    assert verdict.passed and verdict.detail is None and verdict.reference_days == 2
    assert verdict.description == "items: drift not judged: 2 of the 3 reference days needed"


def test_a_monitored_column_that_does_not_exist_is_a_configuration_error() -> None:
    with pytest.raises(DriftConfigError, match=r"items: drift columns \['nope'\] do not exist"):
        judge_drift(_frame(0), _frame(0), ["i_price", "nope"], Q, 5, "items")


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[Warehouse]:
    w = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    w.migrate()
    yield w
    w.dispose()


def _snapshots(wh: Warehouse, means: dict[dt.date, float], first_event: dt.date) -> None:
    rng = np.random.default_rng(3)
    frames = [
        pd.DataFrame(
            {
                "dt": day,
                "item_id": [f"i{k}" for k in range(500)],
                "i_price": rng.normal(mean, 1.0, 500),
            }
        )  # fmt: skip
        for day, mean in means.items()
    ]
    event = pd.DataFrame(
        {
            "dt": [first_event],
            "event_id": "e",
            "event_type": "view",
            "event_time": [dt.datetime.combine(first_event, dt.time())],
            "user_id": "u",
            "item_id": "i0",
        }  # fmt: skip
    )
    with wh.begin() as conn:
        wh.insert_df(conn, "item_features", pd.concat(frames, ignore_index=True))
        wh.insert_df(conn, "events", event)


def test_a_day_against_its_reference_days_in_the_warehouse(wh: Warehouse) -> None:
    reference = {DAY - dt.timedelta(days=k): 10.0 for k in range(1, 8)}
    _snapshots(wh, {**reference, DAY: 12.0}, first_event=DAY - dt.timedelta(days=60))
    q = dataclasses.replace(Q, drift_warmup_days=28)

    def judge(day: dt.date) -> object:
        return drift_of_day(
            wh,
            day,
            q,
            ["i_price"],
            "item_features",
            "item_features",
        )

    verdict = judge(DAY)
    assert not verdict.passed and verdict.reference_days == 7
    assert verdict.detail is not None and verdict.detail.rows_reference == 7 * 500
    assert judge(DAY + dt.timedelta(days=1)).description == (
        f"item_features: no rows for {DAY + dt.timedelta(days=1)}"
    )
