"""Retraining and the registry (issue 7): lineage that re-trains to the same bytes, warm start
from the champion on its unseen partitions, and the bias corrections.

A small shop is simulated for 3 days through the real cycle; then the challenger of the last day
is re-trained with a warm start through Dagster, and every registered model is re-trained from
its registry record.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from flywheel_assets import registry
from flywheel_assets.cli.main import main as cli
from flywheel_assets.platform.settings import FlywheelPaths
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.simulation.demo import run_demo
from flywheel_assets.simulation.simulator import SimulatorConfig
from flywheel_assets.training import challenger
from flywheel_assets.training.model import ipw_weights, predict, time_split, train_model
from flywheel_tests.support.environment import restored_environment

# The module's tests share an expensive module fixture: one worker runs them all, so it is built once.
pytestmark = pytest.mark.xdist_group("training.test_retraining")

SMALL = SimulatorConfig(
    seed=3, n_users=2_000, n_items=300, sessions_per_day=400, new_users_per_day=30
)
START = dt.date(2026, 4, 1)
DAYS = 3
LAST = START + dt.timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    home = tmp_path_factory.mktemp("retrain") / "home"
    with restored_environment():
        run_demo(days=DAYS, seed=3, start=START, home=home, config=SMALL)
        wh = Warehouse(FlywheelPaths.from_env(home).warehouse_url)
        yield wh
        wh.dispose()


def versions(wh: Warehouse) -> pd.DataFrame:
    with wh.begin() as conn:
        return wh.query_df(
            conn,
            "SELECT model_version, dt, sha256, partition_rows_json, base_model_version, "
            "n_train_rows, n_valid_rows FROM model_registry ORDER BY dt, created_at",
        )


@pytest.mark.slow
def test_every_model_records_its_partitions_and_retrains_to_the_same_hash(shop: Warehouse):
    reg = versions(shop)
    assert len(reg) == DAYS
    with shop.begin() as conn:
        examples = shop.query_df(
            conn, "SELECT dt, COUNT(*) AS n FROM training_examples GROUP BY dt ORDER BY dt"
        )
    per_day = {str(d): int(n) for d, n in zip(examples["dt"], examples["n"], strict=True)}
    for row in reg.itertuples():
        rows = json.loads(row.partition_rows_json)
        # The exact partitions of the window, every example of the earlier days, and the
        # model's own day minus the held-out tail.
        assert list(rows) == [d for d in per_day if d <= str(row.dt)]
        assert all(rows[d] == per_day[d] for d in rows if d != str(row.dt))
        assert 0 < rows[str(row.dt)] < per_day[str(row.dt)]
        assert sum(rows.values()) == row.n_train_rows + row.n_valid_rows
        again = challenger.reproduce(shop, row.model_version)
        assert again.matches, (row.model_version, again.sha256, row.sha256)


@pytest.mark.slow
def test_the_cli_shows_lineage_and_reproduces(shop: Warehouse, capsys: pytest.CaptureFixture):
    assert cli(["model", "show", "--alias", "challenger"]) == 0
    shown = capsys.readouterr().out
    assert "sha256" in shown and f"{LAST}  " in shown and '"bias_correction": "position"' in shown
    assert cli(["model", "reproduce", "--alias", "challenger"]) == 0
    assert "identical" in capsys.readouterr().out
    assert cli(["model", "reproduce", "m00000000-nothere"]) == 1


@pytest.mark.slow
def test_a_warm_start_boosts_the_champion_on_new_partitions_only(
    shop: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel_assets.defs.resources import resources
    from flywheel_assets.defs.training.assets import challenger_model

    # The champion of the day before (rolled back to, if the last day's model was promoted):
    # the warm start continues it on the last day's partition only.
    reg = versions(shop)
    before = reg[reg["dt"].astype(str) < str(LAST)].iloc[-1]["model_version"]
    with shop.begin() as conn:
        registry.move_alias(
            conn,
            registry.CHAMPION,
            before,
            actor="test",
            reason="roll back to test a warm start",
            now=dt.datetime(2026, 4, 5),
            day=LAST,
        )
        champion = registry.get_model(conn, registry.get_alias(conn, registry.CHAMPION))
    assert champion is not None and champion.model_version == before
    monkeypatch.setenv("FLYWHEEL_WARM_START", "true")
    result = dg.materialize(
        [challenger_model],
        partition_key=LAST.isoformat(),
        resources=resources(),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    meta = result.asset_materializations_for_node("challenger_model")[0].metadata
    version = meta["model_version"].value
    with shop.begin() as conn:
        warm = registry.get_model(conn, version)
    assert warm is not None and warm.base_model_version == champion.model_version
    # Only the partitions after the champion's last one were learnt from.
    last_seen = max(champion.training_partitions)
    assert warm.partition_rows and all(p > last_seen for p in warm.partition_rows)
    assert warm.load().num_boosted_rounds() > champion.load().num_boosted_rounds()
    assert challenger.reproduce(shop, version).matches


@pytest.mark.slow
def test_with_a_dask_scheduler_the_challenger_trains_on_the_cluster(
    shop: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import LocalCluster

    from flywheel_assets.defs.resources import resources
    from flywheel_assets.defs.training.assets import challenger_model
    from flywheel_assets.evaluation import offline_metrics

    monkeypatch.delenv("FLYWHEEL_WARM_START", raising=False)
    reg = versions(shop)
    local = reg[reg["dt"].astype(str) == str(LAST)].iloc[0]
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        monkeypatch.setenv("FLYWHEEL_DASK_SCHEDULER", cluster.scheduler_address)
        result = dg.materialize(
            [challenger_model],
            partition_key=LAST.isoformat(),
            resources=resources(),
            instance=dg.DagsterInstance.ephemeral(),
        )
        assert result.success
        meta = result.asset_materializations_for_node("challenger_model")[0].metadata
        assert meta["trained_on"].value.startswith("dask")
        version = meta["model_version"].value
        # Trained again on the cluster from its lineage: the same bytes.
        assert challenger.reproduce(shop, version).matches
    with shop.begin() as conn:
        remote = registry.get_model(conn, version)
        single = registry.get_model(conn, local["model_version"])
    assert remote is not None and single is not None
    assert remote.partition_rows == single.partition_rows  # the same rows, read per day
    # The same quality on the day's holdout as the single-process model.
    spec = challenger.TrainingSpec.from_json(single.training_spec_json)
    holdout = challenger.split(challenger.load_window(shop, spec), spec).holdout
    y = holdout["label_purchase"]
    a = offline_metrics(holdout, predict(single.load(), single.schema, holdout), "label_purchase")
    b = offline_metrics(holdout, predict(remote.load(), remote.schema, holdout), "label_purchase")
    assert y.sum() > 0
    assert abs(a.auc - b.auc) < 0.03 and abs(a.log_loss - b.log_loss) < 0.03 * a.log_loss
    monkeypatch.delenv("FLYWHEEL_DASK_SCHEDULER")
    with pytest.raises(challenger.LineageError, match="Dask cluster"):
        challenger.reproduce(shop, version)


@pytest.mark.slow
def test_changed_training_data_is_reported_not_silently_retrained(shop: Warehouse) -> None:
    reg = versions(shop)
    first = reg.iloc[0]
    with shop.begin() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM training_examples WHERE dt = :dt AND request_id IN "
                "(SELECT request_id FROM training_examples WHERE dt = :dt LIMIT 1)"
            ),
            {"dt": first["dt"]},
        )
    with pytest.raises(challenger.LineageError, match="changed since it was trained"):
        challenger.reproduce(shop, first["model_version"])


# ----- bias corrections on a logged, position-biased, policy-biased synthetic log ---------------


def logged_frame(n_requests: int, seed: int) -> pd.DataFrame:
    """Requests of 10 shown items from a biased logging policy: good items are shown at the top
    more often (propensity logged), and purchases fall with position."""
    rng = np.random.default_rng(seed)
    n = n_requests * 10
    quality = rng.normal(size=n)
    noisy = quality + rng.normal(scale=1.5, size=n)
    df = pd.DataFrame({"quality": quality, "noisy": noisy})
    df["request_id"] = np.repeat(np.arange(n_requests), 10).astype(str)
    df["position"] = (
        df.groupby("request_id")["noisy"].rank(ascending=False, method="first").astype(int) - 1
    )
    df["propensity"] = np.clip(0.9 - 0.08 * df["position"], 0.05, 1)
    examined = rng.uniform(size=n) < 1.0 / (1.0 + df["position"])
    buy = rng.uniform(size=n) < 1 / (1 + np.exp(-(df["quality"] * 1.5 - 1.5)))
    df["label_purchase"] = (examined & buy).astype(int)
    df["label_click"] = df["label_purchase"]
    df["event_time"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(
        np.repeat(np.arange(n_requests), 10), unit="s"
    )
    # The model sees the item's quality through a feature, plus the region x category signal.
    df["i_ctr_28d"] = df["quality"]
    for c in ("region", "device", "category", "brand"):
        df[c] = "x"
    return df


def test_ipw_weights_are_clipped_normalised_and_tolerate_missing_propensities():
    w = ipw_weights(pd.Series([0.5, 0.01, None, 2.0, 0.25]), max_weight=20.0)
    raw = np.array([2.0, 20.0, 1.0, 1.0, 4.0])
    assert np.allclose(w, raw / raw.mean())
    assert w.mean() == pytest.approx(1.0)


@pytest.mark.parametrize("bias", ["position", "ipw", "position+ipw", "unbiased_lambdarank"])
def test_every_bias_correction_learns_the_items_quality(bias: str) -> None:
    train, valid = time_split(logged_frame(3_000, 0), 0.2)
    model = train_model(train, valid, bias_correction=bias)
    test = logged_frame(1_000, 1)
    scores = predict(model.booster, model.schema, test, at_top=True)
    corr = np.corrcoef(scores, test["quality"])[0, 1]
    assert corr > 0.8, corr
    if bias == "unbiased_lambdarank":
        assert model.params["objective"] == "rank:ndcg" and model.params["lambdarank_unbiased"]
    assert ("position" in model.schema.numeric) == bias.startswith("position")


def test_an_unknown_bias_correction_is_a_clear_error() -> None:
    df = logged_frame(100, 0)
    with pytest.raises(ValueError, match="bias_correction must be one of"):
        train_model(df, df.iloc[:0], bias_correction="magic")


def test_training_specs_round_trip_through_json(tmp_path: Path) -> None:
    spec = challenger.TrainingSpec(
        day=LAST, bias_correction="ipw", params={"max_depth": 3}, warm_start_from="m1"
    )
    assert challenger.TrainingSpec.from_json(spec.to_json()) == spec


def merchandised_log(n_requests: int, seed: int) -> pd.DataFrame:
    """A shop rule puts the newest items first, whatever their quality: position is confounded
    with age. Buyers examine position p with probability 1 / (1 + p)."""
    rng = np.random.default_rng(seed)
    n = n_requests * 10
    quality = rng.normal(size=n)
    age = rng.uniform(0, 60, size=n)
    df = pd.DataFrame({"i_ctr_28d": quality, "i_days_in_catalog": age})
    df["request_id"] = np.repeat(np.arange(n_requests), 10).astype(str)
    order = df.assign(k=-age + rng.normal(scale=5, size=n)).groupby("request_id")["k"]
    df["position"] = order.rank(ascending=False, method="first").astype(int) - 1
    df["propensity"] = 0.9
    df["true_p"] = 1 / (1 + np.exp(-(quality * 1.5 - 1.5)))
    examined = rng.uniform(size=n) < 1.0 / (1.0 + df["position"])
    df["label_purchase"] = (examined & (rng.uniform(size=n) < df["true_p"])).astype(int)
    df["label_click"] = df["label_purchase"]
    df["event_time"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(
        np.repeat(np.arange(n_requests), 10), unit="s"
    )
    for c in ("region", "device", "category", "brand"):
        df[c] = "x"
    return df


def share_of_oracle(df: pd.DataFrame, scores: np.ndarray, k: int = 3) -> float:
    """True purchase probability of each request's top k by ``scores``, over the oracle's."""
    ranked = df.assign(s=scores).sort_values(["request_id", "s"], ascending=[True, False])
    best = df.sort_values(["request_id", "true_p"], ascending=[True, False])
    top = ranked.groupby("request_id").head(k)["true_p"].sum()
    return float(top / best.groupby("request_id").head(k)["true_p"].sum())


def test_the_position_correction_undoes_a_bias_that_fools_the_naive_model() -> None:
    train, valid = time_split(merchandised_log(4_000, 0), 0.2)
    test = merchandised_log(2_000, 1)
    shares = {
        bias: share_of_oracle(
            test,
            predict(
                (m := train_model(train, valid, bias_correction=bias)).booster,
                m.schema,
                test,
                at_top=True,
            ),
        )
        for bias in ("none", "position")
    }
    # The naive model learns "new sells" from the shop's own placement; the corrected one
    # attributes it to the position and ranks by quality.
    assert shares["position"] > 0.98
    assert shares["position"] - shares["none"] > 0.05, shares
