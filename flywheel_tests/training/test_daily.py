"""The day's challenger (flywheel_assets.training.daily) on a real DuckDB warehouse, without
Dagster: labelled examples, training (from scratch, warm start, no positive labels, a Dask
cluster), registration and the challenger alias."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel_assets import registry
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.training import challenger
from flywheel_assets.training.challenger import TrainingSpec
from flywheel_assets.training.daily import (
    Challenger,
    NoChallenger,
    build_training_examples,
    code_version,
    train_and_register,
)

# The module's tests share an expensive module fixture: one worker runs them all, so it is built once.
pytestmark = pytest.mark.xdist_group("training.test_daily")

DAYS = [dt.date(2026, 2, 1) + dt.timedelta(days=k) for k in range(4)]
PER_DAY = 1_500


def spec_for(day: dt.date, purchase_free: bool = False):  # noqa: ANN201
    """Small, quick specifications; a warm start boosts fewer rounds, as the settings do."""

    def spec(base: str | None) -> TrainingSpec:
        return TrainingSpec(
            day=day,
            window_days=3,
            num_boost_round=15 if base else 40,
            early_stopping_rounds=5,
            warm_start_from=base,
        )

    return spec


def examples(day: dt.date, rng: np.random.Generator, n: int = PER_DAY) -> pd.DataFrame:
    """A day's impressions: purchases depend on a user's region x the item's category and
    fall with position."""
    users = rng.integers(0, 200, n)
    items = rng.integers(0, 50, n)
    position = rng.integers(0, 10, n)
    good = (users % 2 == 0) == (items % 3 == 0)
    purchase = (rng.random(n) < 1 / (1 + np.exp(-(-2.0 + 3.0 * good - 0.3 * position)))).astype(int)
    seconds = np.sort(rng.random(n)) * 86_400
    return pd.DataFrame(
        {
            "dt": day,
            "feature_dt": day - dt.timedelta(days=1),
            "request_id": [f"{day}-{k // 10}" for k in range(n)],
            "user_id": [f"u{u}" for u in users],
            "item_id": [f"i{i}" for i in items],
            "event_time": pd.Timestamp(day) + pd.to_timedelta(seconds.round(6), unit="s"),
            "position": position,
            "propensity": 0.1,
            "label_click": np.maximum(purchase, rng.random(n) < 0.1).astype(int),
            "label_purchase": purchase,
        }
    )


def snapshots(days: list[dt.date]) -> tuple[pd.DataFrame, pd.DataFrame]:
    users = pd.DataFrame(
        {"user_id": [f"u{u}" for u in range(200)], "region": ["n", "s"] * 100, "device": "web"}
    )
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(50)],
            "category": ["a" if i % 3 == 0 else "b" for i in range(50)],
            "brand": "x",
            "i_price": 10.0,
        }
    )
    before = [d - dt.timedelta(days=1) for d in days]
    return (
        pd.concat([users.assign(dt=d) for d in before], ignore_index=True),
        pd.concat([items.assign(dt=d) for d in before], ignore_index=True),
    )


def build(url: str, no_purchases_on: tuple[dt.date, ...] = ()) -> None:
    rng = np.random.default_rng(11)
    frames = [examples(d, rng) for d in DAYS]
    frames = [
        f.assign(label_purchase=0) if d in no_purchases_on else f
        for d, f in zip(DAYS, frames, strict=True)
    ]
    users, items = snapshots(DAYS)
    wh = Warehouse(url)
    try:
        wh.migrate()
        with wh.begin() as conn:
            wh.insert_df(conn, "training_examples", pd.concat(frames, ignore_index=True))
            wh.insert_df(conn, "user_features", users)
            wh.insert_df(conn, "item_features", items)
    finally:
        wh.dispose()  # DuckDB: Dask workers can open the file only once no one holds it


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[Warehouse, Path]]:
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    build(url)
    wh = Warehouse(url)
    yield wh, tmp_path / "models"
    wh.dispose()


def train(wh: Warehouse, models: Path, day: dt.date, **kwargs: object) -> Challenger:
    outcome = train_and_register(
        wh,
        day,
        spec_for(day),
        models,
        created_by="test",
        **kwargs,  # type: ignore[arg-type]
    )
    assert isinstance(outcome, Challenger), outcome
    return outcome


def alias(wh: Warehouse, name: str) -> str | None:
    with wh.begin() as conn:
        return registry.get_alias(conn, name)


def test_a_challenger_is_trained_registered_and_made_the_challenger(shop) -> None:
    wh, models = shop
    day = DAYS[-1]
    c = train(wh, models, day)

    assert c.model_version == f"m{day:%Y%m%d}-{c.sha256[:8]}" and c.newly_registered
    assert c.fitted.trained_on == "one process" and c.base_model_version is None
    assert Path(c.artefact_uri.removeprefix("file://")).exists()
    assert alias(wh, registry.CHALLENGER) == c.model_version
    with wh.begin() as conn:
        record = registry.get_model(conn, c.model_version)
        history = wh.query_df(conn, "SELECT alias, moved_by, reason, dt FROM alias_history")
    assert record is not None and record.sha256 == c.sha256
    # Lineage: the window's days; the last one without its held-out tail.
    rows = record.partition_rows
    assert list(rows) == [str(d) for d in DAYS[-3:]]
    assert rows[str(DAYS[-2])] == PER_DAY and 0 < rows[str(day)] < PER_DAY
    assert sum(rows.values()) == record.n_train_rows + record.n_valid_rows
    assert TrainingSpec.from_json(record.training_spec_json) == spec_for(day)(None)
    assert record.code_version == code_version()
    assert record.metrics["trained_on"] == "one process"
    assert 0.5 < record.metrics["valid_auc"] <= 1.0
    assert c.valid_metrics is not None and c.valid_metrics.auc == record.metrics["valid_auc"]
    assert history.values.tolist() == [
        ["challenger", "challenger_model", f"trained for {day}", day]
    ]
    # The same training again: the same bytes, already registered, nothing moves.
    again = train(wh, models, day)
    assert (again.model_version, again.newly_registered) == (c.model_version, False)
    # Re-trained from its lineage, by the code the asset runs.
    assert challenger.reproduce(wh, c.model_version).matches


def test_an_older_day_does_not_move_the_challenger_back(shop) -> None:
    wh, models = shop
    newest = train(wh, models, DAYS[-1])
    older = train(wh, models, DAYS[-2])
    assert older.newly_registered
    assert alias(wh, registry.CHALLENGER) == newest.model_version


def test_a_warm_start_continues_the_champion_on_unseen_partitions(shop) -> None:
    wh, models = shop
    champion = train(wh, models, DAYS[-2])
    with wh.begin() as conn:
        registry.move_alias(
            conn,
            registry.CHAMPION,
            champion.model_version,
            actor="test",
            reason="make it champion",
            now=dt.datetime(2026, 2, 4),
        )
    # Off: from scratch on the whole window.
    assert train(wh, models, DAYS[-1]).base_model_version is None

    warm = train(wh, models, DAYS[-1], warm_start=True)
    assert warm.base_model_version == champion.model_version
    assert warm.spec.warm_start_from == champion.model_version
    assert warm.spec.num_boost_round == 15
    assert list(warm.fitted.partition_rows) == [str(DAYS[-1])]  # only what it had not seen
    assert warm.model.booster.num_boosted_rounds() > champion.model.booster.num_boosted_rounds()
    with wh.begin() as conn:
        record = registry.get_model(conn, warm.model_version)
    assert record is not None and record.champion_at_training == champion.model_version
    assert challenger.reproduce(wh, warm.model_version).matches

    # The champion already saw the day: a full retrain instead.
    again = train(wh, models, DAYS[-2], warm_start=True)
    assert again.base_model_version is None and again.spec.warm_start_from is None
    assert again.model_version == champion.model_version


def test_no_positive_labels_give_no_challenger(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    build(url, no_purchases_on=tuple(DAYS))
    wh = Warehouse(url)
    outcome = train_and_register(wh, DAYS[-1], spec_for(DAYS[-1]), tmp_path, created_by="test")
    assert outcome == NoChallenger(
        reason="no positive purchase labels",
        message=f"no positive purchase labels in the window: no challenger for {DAYS[-1]}",
    )
    with wh.begin() as conn:
        assert wh.scalar(conn, "SELECT COUNT(*) FROM model_registry") == 0
    assert alias(wh, registry.CHALLENGER) is None
    assert not any(tmp_path.glob("model-*"))
    wh.dispose()


@pytest.fixture(scope="module")
def cluster():  # noqa: ANN201
    import distributed

    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


def test_on_a_dask_cluster_the_same_rows_are_learnt(shop, cluster) -> None:
    wh, models = shop
    day = DAYS[-1]
    remote = train(wh, models, day, scheduler=cluster.scheduler_address)
    assert remote.fitted.trained_on == f"dask ({cluster.scheduler_address})"
    # The rows and the holdout the single-process split gives.
    spec = spec_for(day)(None)
    local = challenger.split(challenger.load_window(wh, spec), spec)
    assert remote.fitted.partition_rows == local.partition_rows
    assert remote.fitted.holdout_cutoff == local.holdout_cutoff
    assert remote.valid_metrics is None  # the validation rows stay on the workers
    with wh.begin() as conn:
        record = registry.get_model(conn, remote.model_version)
    assert record is not None and record.metrics["trained_on"].startswith("dask (")
    assert "valid_auc" not in record.metrics
    assert alias(wh, registry.CHALLENGER) == remote.model_version


def test_the_days_examples_are_labelled_and_replaced(tmp_path: Path) -> None:
    wh = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    wh.migrate()
    day = DAYS[0]
    t = dt.datetime.combine(day, dt.time(9))
    seconds = dt.timedelta(seconds=1)

    def event(kind: str, item: str, at: dt.datetime, request: str = "r1") -> dict:
        return {"dt": day, "event_id": f"{kind}-{item}-{at}", "event_type": kind,
                "event_time": at, "user_id": "u1", "item_id": item, "request_id": request,
                "position": int(item[1:]), "propensity": 0.5}  # fmt: skip

    events = pd.DataFrame(
        [
            event("impression", "i0", t),
            event("impression", "i1", t),
            event("impression", "i2", t),
            event("click", "i0", t + 5 * seconds),
            event("purchase", "i0", t + 60 * seconds),
            event("click", "i1", t + dt.timedelta(hours=30)),  # outside the label window
        ]
    )
    with wh.begin() as conn:
        wh.insert_df(conn, "events", events)
    for _ in range(2):  # a re-run replaces the day
        summary = build_training_examples(wh, day, label_window_hours=24.0)
        assert (summary.rows, summary.clicks, summary.purchases) == (3, 1, 1)
    assert summary.ctr == pytest.approx(1 / 3)
    with wh.begin() as conn:
        got = wh.query_df(
            conn,
            "SELECT item_id, feature_dt, label_click, label_purchase FROM training_examples "
            "ORDER BY item_id",
        )
    assert got.values.tolist() == [
        ["i0", day - dt.timedelta(days=1), 1, 1],
        ["i1", day - dt.timedelta(days=1), 0, 0],
        ["i2", day - dt.timedelta(days=1), 0, 0],
    ]
    wh.dispose()
