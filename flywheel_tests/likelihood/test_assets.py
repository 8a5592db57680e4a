"""The purchase-likelihood assets on a warehouse holding a simulated shop's accepted events and
users: backtest, blocking calibration check, registered champion, every user's scores; only a
winner replaces the champion; a miscalibrated day publishes nothing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from flywheel_assets.defs.likelihood.assets import LIKELIHOOD_ASSETS, likelihood_calibrated
from flywheel_assets.defs.resources import LikelihoodConfig, PathsConfig, WarehouseResource
from flywheel_assets.likelihood.daily import ALIAS
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.simulation.customers import activity_events, customer_history

START = dt.date(2025, 1, 1)
DAYS = 240
LAST = START + dt.timedelta(days=DAYS - 1)
LATER = LAST + dt.timedelta(days=2)  # the days after the first decided one
SPEC = {"num_boost_round": 60, "training_days": 4}
pytestmark = pytest.mark.xdist_group("likelihood_shop")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Warehouse, Path, object]:
    home = tmp_path_factory.mktemp("likelihood-shop")
    world = customer_history(START, DAYS + 3, n_users=3000, seed=4)
    events = activity_events(world.history.activity, seed=4)
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    wh.migrate()
    users = world.history.users.assign(region="eu", device="web")
    with wh.begin() as conn:
        wh.insert_df(conn, "events", events[events["dt"] <= LATER])
        wh.insert_df(
            conn, "users", users[users["dt"] <= LATER][["dt", "user_id", "region", "device",
                                                         "signup_date"]]
        )  # fmt: skip
    return wh, home, world


@pytest.fixture(scope="module")
def decided(shop) -> dg.ExecuteInProcessResult:
    """The first day decided: the shop's first champion, its scores."""
    wh, home, _ = shop
    return _run(wh, home, LAST, params=json.dumps(SPEC))


def _run(wh: Warehouse, home: Path, day: dt.date, **config: object) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*LIKELIHOOD_ASSETS, likelihood_calibrated],
        partition_key=day.isoformat(),
        resources={
            "warehouse": WarehouseResource(url=wh.url),
            "paths": PathsConfig(home=str(home)),
            "likelihood": LikelihoodConfig(**config),
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def rows(wh: Warehouse, sql: str, **params: object) -> pd.DataFrame:
    with wh.begin() as conn:
        return wh.query_df(conn, sql, **params)


def test_a_day_backtests_registers_and_scores_every_active_user(shop, decided) -> None:
    wh, _, _ = shop
    result = decided
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.passed

    bt = rows(wh, "SELECT * FROM likelihood_backtest WHERE dt = :d", d=LAST)
    assert set(zip(bt["horizon_days"], bt["model"], strict=True)) == {
        (7, "challenger"), (7, "rfm"), (30, "challenger"), (30, "rfm"),
    }  # fmt: skip
    model = bt[bt["model"] == "challenger"].set_index("horizon_days")
    assert (model["ece"] <= 0.03).all() and (model["auc"] > 0.6).all()
    assert len(json.loads(model.loc[7, "reliability_json"])["predicted"]) == 10

    # The model's page: the reliability plot and the gains chart of each horizon, beside RFM.
    [page] = result.asset_materializations_for_node("purchase_likelihood_model")
    for h in (7, 30):
        for plot in (f"reliability_{h}d", f"gains_{h}d"):
            assert page.metadata[plot].value.startswith(f"![{LAST}: {h}-day")
            assert "data:image/png;base64," in page.metadata[plot].value
        assert page.metadata[f"lift_top10_{h}d_vs_rfm"].value > 0
    models = rows(wh, "SELECT * FROM likelihood_models")
    assert len(models) == 1
    version = models["model_version"].iloc[0]
    metrics = json.loads(models["metrics_json"].iloc[0])
    assert metrics["model"] == "challenger" and "rfm_30d_lift_top10" in metrics
    assert rows(wh, "SELECT model_version FROM model_aliases WHERE alias = :a", a=ALIAS)[
        "model_version"
    ].tolist() == [version]

    scores = rows(wh, "SELECT * FROM purchase_likelihood WHERE dt = :d", d=LAST)
    assert len(scores) > 500 and scores["user_id"].is_unique
    assert (scores["model_version"] == version).all()
    assert scores["p_7d"].between(0, 1).all() and scores["p_30d"].between(0, 1).all()
    assert scores["p_30d"].mean() > scores["p_7d"].mean()
    assert sorted(scores["decile"].unique()) == list(range(1, 11))
    top = scores[scores["decile"] == 1]["p_30d"].min()
    assert top >= scores[scores["decile"] == 2]["p_30d"].max()


def test_only_a_winner_replaces_the_champion(shop, decided) -> None:
    wh, home, _ = shop
    day = LAST + dt.timedelta(days=1)
    # Uncalibrated probabilities, pushed up: a worse log loss and a larger ECE.
    worse = {**SPEC, "calibration": "none", "xgb_params": {"scale_pos_weight": 4.0}}
    result = _run(wh, home, day, params=json.dumps(worse))
    assert result.success
    [fitted] = result.asset_materializations_for_node("purchase_likelihood_model")
    assert "does not win" in fitted.metadata["reason"].value
    moves = rows(wh, "SELECT * FROM alias_history WHERE alias = :a ORDER BY moved_at", a=ALIAS)
    assert moves["dt"].astype(str).tolist() == [str(LAST), str(day)]
    params = json.loads(
        rows(
            wh,
            "SELECT params_json FROM likelihood_models WHERE model_version = :v",
            v=moves["to_version"].iloc[-1],
        )["params_json"].iloc[0]
    )
    assert params["calibration"] == "auto"
    bt = rows(wh, "SELECT * FROM likelihood_backtest WHERE dt = :d", d=day)
    ch = bt[bt["model"] == "challenger"].set_index("horizon_days")
    cp = bt[bt["model"] == "champion"].set_index("horizon_days")
    assert (ch["log_loss"] > cp["log_loss"]).all()
    audit = rows(wh, "SELECT action FROM audit_log WHERE action = :a", a=f"move_{ALIAS}")
    assert len(audit) == len(moves)
    # Scores of a day come from that day's champion, whatever the alias says now.
    first = rows(wh, "SELECT DISTINCT model_version FROM purchase_likelihood WHERE dt = :d", d=LAST)
    assert first["model_version"].tolist() == [moves["to_version"].iloc[0]]


def test_re_running_an_old_day_leaves_the_live_alias_alone(shop, decided) -> None:
    wh, home, _ = shop
    live = rows(wh, "SELECT model_version FROM model_aliases WHERE alias = :a", a=ALIAS)
    n_moves = len(rows(wh, "SELECT * FROM alias_history WHERE alias = :a", a=ALIAS))
    other = {**SPEC, "num_boost_round": 61}  # a different model for the old day
    assert _run(wh, home, LAST - dt.timedelta(days=3), params=json.dumps(other)).success
    assert rows(wh, "SELECT model_version FROM model_aliases WHERE alias = :a", a=ALIAS).equals(
        live
    )
    assert len(rows(wh, "SELECT * FROM alias_history WHERE alias = :a", a=ALIAS)) == n_moves
    # ... and the old day is scored by the model it refitted.
    old = LAST - dt.timedelta(days=3)
    [version] = rows(wh, "SELECT model_version FROM likelihood_models WHERE dt = :d", d=old)[
        "model_version"
    ]
    scored = rows(wh, "SELECT DISTINCT model_version FROM purchase_likelihood WHERE dt = :d", d=old)
    assert scored["model_version"].tolist() == [version]


def test_a_day_over_the_calibration_bound_publishes_nothing(shop, decided) -> None:
    wh, home, _ = shop
    day = LATER
    result = _run(wh, home, day, params=json.dumps(SPEC), max_ece=1e-6)
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and "not published" in check.description
    assert rows(wh, "SELECT * FROM purchase_likelihood WHERE dt = :d", d=day).empty
    assert rows(wh, "SELECT * FROM likelihood_models WHERE dt = :d", d=day).empty
    assert not np.isnan(float(check.metadata["worst_ece"].value))
