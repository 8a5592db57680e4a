"""A shop with only its order history (issue 23, must-show 2): `flywheel import orders` of a
two-year export, then the forecast assets from the `dagster` CLI, with no clickstream and no
catalog at all; importing the same file again changes no row count."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.simulation.demand import demand_history
from flywheel_tests.support.environment import restored_environment

INSTANCE = Path(__file__).resolve().parents[2] / "flywheel_assets" / "instance"
COUNTS = {
    "orders": "SELECT COUNT(*) AS n FROM orders",
    "quarantine": "SELECT COUNT(*) AS n FROM quarantine WHERE source = 'orders'",
    "accounting": "SELECT COUNT(*) AS n FROM ingestion_accounting WHERE source = 'orders'",
    "read": "SELECT COALESCE(SUM(rows_read), 0) AS n FROM ingestion_accounting",
    "days": "SELECT COUNT(DISTINCT dt) AS n FROM orders",
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=os.environ.copy(), timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _counts(wh: Warehouse) -> dict[str, int]:
    with wh.begin() as conn:
        return {k: int(wh.query_df(conn, sql)["n"].iloc[0]) for k, sql in COUNTS.items()}


@pytest.mark.long  # two imports of 730 days and a forecast: minutes; .ci/run's second run
def test_a_two_year_export_alone_is_imported_once_and_forecast(tmp_path: Path) -> None:
    last = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    start = last - dt.timedelta(days=729)
    history = demand_history(
        start, 730, seed=9, n_items=60, new_items_per_day=0, units_per_day=90.0
    )
    # The shop's own export: its column names, a cancellation and an unreadable time in it.
    export = history.orders.rename(
        columns={
            "order_id": "InvoiceNo",
            "item_id": "StockCode",
            "quantity": "Quantity",
            "price": "UnitPrice",
            "order_time": "InvoiceDate",
            "user_id": "CustomerID",
        }
    )
    export["InvoiceDate"] = export["InvoiceDate"].dt.strftime("%Y-%m-%d %H:%M:%S")
    export.loc[3, "Quantity"] = -1
    export.loc[5, "InvoiceDate"] = "31/02/2024 25:00"
    path = tmp_path / "online-retail-export.csv"
    export.to_csv(path, index=False)

    with restored_environment(["FLYWHEEL_FORECAST_PARAMS"]):
        home = tmp_path / "home"
        (home / "dagster").mkdir(parents=True)
        shutil.copy(INSTANCE / "dagster.yaml", home / "dagster" / "dagster.yaml")
        os.environ.update(
            {
                "FLYWHEEL_HOME": str(home),
                "DAGSTER_HOME": str(home / "dagster"),
                "FLYWHEEL_PSEUDONYM_KEY": "order-history-test-key-0123456789",
                "FLYWHEEL_PARTITION_START": start.isoformat(),
                "FLYWHEEL_FORECAST_PARAMS": '{"num_boost_round": 80}',
            }
        )
        for var in ("FLYWHEEL_WAREHOUSE_URL", "FLYWHEEL_PARTITION_END", "FLYWHEEL_LANDING_DIR"):
            os.environ.pop(var, None)
        first = _run("-m", "flywheel_assets.cli.main", "import", "orders", str(path))
        assert "730 days" in first.stdout
        wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
        once = _counts(wh)
        wh.dispose()
        assert once["read"] == len(export) and once["orders"] == len(export) - 2
        assert once["quarantine"] == 2 and once["days"] == 730

        _run("-m", "flywheel_assets.cli.main", "import", "orders", str(path))
        twice = _counts(wh)
        wh.dispose()
        assert twice == once

        _run(
            "-m", "dagster", "asset", "materialize", "-m", "flywheel_assets.definitions",
            "--select", "group:forecasting", "--partition", last.isoformat(),
        )  # fmt: skip
    with wh.begin() as conn:
        backtest = wh.query_df(conn, "SELECT * FROM forecast_backtest")
        forecast = wh.query_df(conn, "SELECT * FROM demand_forecasts")
        plan = wh.query_df(conn, "SELECT * FROM replenishment_plan")
        events = wh.query_df(conn, "SELECT COUNT(*) AS n FROM events")["n"].iloc[0]
    wh.dispose()
    assert events == 0  # no clickstream at all
    assert set(backtest["model"]) == {"challenger", "seasonal_naive", "ets"}
    item = backtest[backtest["level"] == "item"].set_index("model")["mase"]
    assert item["challenger"] < item["seasonal_naive"]
    assert pd.to_datetime(forecast["target_day"]).min().date() == last + dt.timedelta(days=1)
    assert forecast[forecast["level"] == "item"]["key"].nunique() == 60
    assert len(plan) == 60
