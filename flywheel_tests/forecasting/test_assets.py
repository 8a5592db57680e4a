"""The forecasting assets through Dagster on a shop that has only its order history: the
backtest decides, the forecaster is registered and made champion, the forecast and the
replenishment plan are written; a weaker challenger specification does not replace the
champion's (docs/forecasting.md, Promotion)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from flywheel_assets.defs.forecasting.assets import FORECAST_ASSETS, forecast_beats_seasonal_naive
from flywheel_assets.defs.resources import ForecastConfig, PathsConfig, WarehouseResource
from flywheel_assets.forecasting.daily import ALIAS, MODEL, level_publishers
from flywheel_assets.ingestion.contract import FieldMap
from flywheel_assets.ingestion.imports import plan_import, write_import
from flywheel_assets.ingestion.ingest import ingest_day, orders_source
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.simulation.demand import demand_history

START = dt.date(2025, 3, 1)
DAYS = 150
LAST = START + dt.timedelta(days=DAYS - 1)
# Small and quick, but the same model: fewer trees and training origins than the defaults.
SPEC = {"num_boost_round": 60, "training_origins": 4}
# A challenger whose "80 %" interval is calibrated to cover 60 %: it loses whatever its MASE
# (the rule's MASE half is test_metrics.test_decision_rule).
NARROW = {**SPEC, "coverage": 0.6}


# The shop is built and its first day published once for the module's tests.
pytestmark = pytest.mark.xdist_group("forecast_shop")


@pytest.fixture(scope="module")
def shop(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Warehouse, Path, dg.ExecuteInProcessResult]:
    """A warehouse holding only order lines: DAYS days of a 120-item shop's history, imported
    from one export into their days (no catalog, no events)."""
    home = tmp_path_factory.mktemp("forecast-shop")
    history = demand_history(
        START, DAYS + 1, seed=5, n_items=120, new_items_per_day=0, units_per_day=120.0
    )
    export = home / "orders.parquet"
    orders = history.orders
    orders[orders["order_time"] < pd.Timestamp(LAST + dt.timedelta(days=1))].to_parquet(export)
    plan = plan_import(export)
    write_import(plan, home / "landing", today=LAST, first_partition=dt.date(2024, 1, 1))
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    wh.migrate()
    pseudonyms = Pseudonymiser("forecast-test-key-0123456789")
    for day in plan.days:
        spec = orders_source(
            day,
            pseudonyms,
            FieldMap.default("orders"),
            now=dt.datetime.combine(LAST, dt.time(23)),
            future_tolerance=dt.timedelta(hours=1),
            max_lateness=dt.timedelta(days=1),
        )
        ingest_day(wh, home / "landing", spec, day)
    return wh, home, _run(wh, home, LAST, SPEC)


def _run(wh: Warehouse, home: Path, day: dt.date, spec: dict) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*FORECAST_ASSETS, forecast_beats_seasonal_naive],
        partition_key=day.isoformat(),
        resources={
            "warehouse": WarehouseResource(url=wh.url),
            "paths": PathsConfig(home=str(home)),
            "forecasting": ForecastConfig(params=json.dumps(spec)),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )


def rows(wh: Warehouse, sql: str, **params: object) -> pd.DataFrame:
    with wh.begin() as conn:
        return wh.query_df(conn, sql, **params)


def test_a_shop_with_only_orders_gets_a_backtested_registered_forecast_and_a_plan(shop) -> None:
    wh, home, result = shop
    assert result.success

    backtest = rows(wh, "SELECT * FROM forecast_backtest WHERE dt = :d", d=LAST)
    assert sorted(backtest["model"].unique()) == ["challenger", "ets", "seasonal_naive"]
    assert set(backtest["level"]) == {"item", "category", "total"}
    assert (backtest["origins"] == 4).all() and (backtest["horizon_days"] == 28).all()
    item = backtest[backtest["level"] == "item"].set_index("model")
    assert item.loc["challenger", "mase"] < item.loc["seasonal_naive", "mase"]
    [check] = result.get_asset_check_evaluations()
    assert check.passed

    models = rows(wh, "SELECT * FROM forecast_models")
    assert len(models) == 1
    version = models["model_version"].iloc[0]
    lineage = json.loads(models["lineage_json"].iloc[0])
    assert lineage["source"] == "orders" and lineage["first_day"] == str(START)
    assert rows(wh, "SELECT model_version FROM model_aliases WHERE alias = :a", a=ALIAS)[
        "model_version"
    ].tolist() == [version]
    moves = rows(wh, "SELECT * FROM alias_history WHERE alias = :a", a=ALIAS)
    assert len(moves) == 1 and moves["reason"].iloc[0].startswith("first forecaster")

    forecast = rows(wh, "SELECT * FROM demand_forecasts WHERE dt = :d", d=LAST)
    # Each level is published by the champion, or by a baseline that beat it there.
    publishers = level_publishers(backtest)
    assert publishers["item"] == MODEL
    for level, name in publishers.items():
        published = forecast.loc[forecast["level"] == level, "model_version"]
        assert (published == (version if name == MODEL else name)).all()
    days = pd.to_datetime(forecast["target_day"])
    assert days.min() == pd.Timestamp(LAST + dt.timedelta(days=1)) and days.nunique() == 28
    per_level = forecast.groupby("level")["key"].nunique().to_dict()
    assert per_level["total"] == 1 and per_level["item"] >= 100
    assert (forecast["units_p10"] <= forecast["units_p50"]).all()
    assert (forecast["units_p50"] <= forecast["units_p90"]).all()
    assert (forecast["units_p10"] >= 0).all()
    # The shop's total and the sum of its items agree roughly (means: medians do not add).
    total = forecast[forecast["level"] == "total"]["units_mean"].sum()
    items = forecast[forecast["level"] == "item"]["units_mean"].sum()
    assert 0.6 < items / total < 1.4

    plan = rows(wh, "SELECT * FROM replenishment_plan WHERE dt = :d", d=LAST)
    assert len(plan) == per_level["item"]
    assert (plan["order_up_to"] >= plan["reorder_point"]).all()
    assert (plan["suggested_order_qty"] >= 0).all() and (plan["model_version"] == version).all()

    # Only a winner replaces the champion's specification: a challenger with a miscalibrated
    # interval loses, and the champion's specification is refitted on the newer day instead.
    next_day = LAST + dt.timedelta(days=1)
    with wh.begin() as conn:
        history = demand_history(
            START, DAYS + 1, seed=5, n_items=120, new_items_per_day=0, units_per_day=120.0
        ).orders
        extra = history[history["order_time"] >= pd.Timestamp(next_day)]
        wh.insert_df(
            conn,
            "orders",
            extra.assign(dt=next_day, source_file="test", line_no=range(len(extra)), user_id="u"),
        )
    assert _run(wh, home, next_day, NARROW).success
    second = rows(wh, "SELECT * FROM forecast_backtest WHERE dt = :d", d=next_day)
    assert {"champion", "challenger"} <= set(second["model"])
    assert (second.loc[second["model"] == "champion", "model_version"] == version).all()
    moves = rows(wh, "SELECT * FROM alias_history WHERE alias = :a ORDER BY moved_at", a=ALIAS)
    assert "does not win" in moves["reason"].iloc[-1]
    params = json.loads(
        rows(
            wh,
            "SELECT params_json FROM forecast_models WHERE model_version = :v",
            v=moves["to_version"].iloc[-1],
        )["params_json"].iloc[0]
    )
    assert params["coverage"] == 0.8 and params["num_boost_round"] == SPEC["num_boost_round"]
    challenger = second[(second["model"] == "challenger") & (second["level"] == "item")]
    assert float(challenger["coverage_80"].iloc[0]) < 0.7
    audit = rows(wh, "SELECT action FROM audit_log WHERE action = :a", a=f"move_{ALIAS}")
    assert len(audit) == len(moves)


def test_the_analysts_notebook_runs_on_the_warehouse_read_only(shop) -> None:
    """CI executes notebooks/flywheel.ipynb, so it cannot rot: on this shop it finds no ranking
    days, and plots the best-selling item's forecast with its band."""
    import nbformat
    from nbclient import NotebookClient

    from flywheel_tests.support.environment import restored_environment

    wh, home, _ = shop
    path = Path(__file__).resolve().parents[2] / "notebooks" / "flywheel.ipynb"
    nb = nbformat.read(path, as_version=4)
    with restored_environment(["FLYWHEEL_ANALYST_URL"]):
        os.environ.pop("FLYWHEEL_ANALYST_URL", None)
        os.environ["FLYWHEEL_WAREHOUSE_URL"] = wh.url
        wh.dispose()  # the notebook opens the file read-only: no writer may hold it
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    text = "\n".join(
        str(o.get("text", "")) + json.dumps(o.get("data", {}))
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    assert "no ranking days yet" in text
    assert "forecast for sku-" in text and "image/png" in text
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
