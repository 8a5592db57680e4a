"""Feature tables: point in time, incremental = full recompute, DuckDB = PostgreSQL.

The fixture writes events, catalog and users straight into the warehouse (ingestion has its own
tests) with the awkward cases on purpose: late arrivals, events up to the one-hour future
tolerance after their delivery day, timestamps exactly at midnight, a price change, missing
brands and prices. Only the feature assets are materialised, through Dagster.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from flywheel_assets.defs.features.assets import ACTIVITY_ASSETS, FEATURE_ASSETS
from flywheel_assets.defs.resources import FeaturesConfig, TrainingConfig, WarehouseResource
from flywheel_assets.features import reference as feature_reference
from flywheel_assets.features import store as feature_store
from flywheel_assets.platform import warehouse
from flywheel_assets.platform.warehouse import Warehouse

START = dt.date(2026, 3, 1)
DAYS = 14
PRIOR = 20.0
TABLES = {
    "user_activity_daily": ["dt", "event_day", "user_id"],
    "item_activity_daily": ["dt", "event_day", "item_id"],
    "user_item_activity_daily": ["dt", "event_day", "user_id", "item_id"],
    "user_features": ["dt", "user_id"],
    "item_features": ["dt", "item_id"],
    "user_category_features": ["dt", "user_id", "category"],
    "user_brand_features": ["dt", "user_id", "brand"],
    "region_category_features": ["dt", "region", "category"],
    "region_brand_features": ["dt", "region", "brand"],
}
TYPES = ["impression", "view", "click", "add_to_cart", "purchase"]


def day_ts(day: dt.date, hours: float = 0.0) -> pd.Timestamp:
    return pd.Timestamp(day) + pd.Timedelta(hours=hours)


def catalog() -> pd.DataFrame:
    rows = [
        {
            "dt": START,
            "item_id": f"i{i:02d}",
            "title": None,
            "category": f"c{i % 5}",
            "brand": None if i % 7 == 0 else f"b{i % 4}",
            "price": 10.0 + i,
            "valid_from": day_ts(START),
        }
        for i in range(30)
    ]
    # A price change on day 6 for a few items (a new catalog row delivered that day).
    rows += [
        {**rows[i], "dt": START + dt.timedelta(days=5), "price": rows[i]["price"] * 0.8}
        for i in range(0, 30, 6)
    ]
    return pd.DataFrame(rows)


def shop_users() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dt": START,
            "user_id": [f"u{u:02d}" for u in range(40)],
            "region": [f"r{u % 3}" for u in range(40)],
            "device": ["mobile" if u % 2 else "desktop" for u in range(40)],
            "signup_date": [START - dt.timedelta(days=u) for u in range(40)],
        }
    )


def events_for(arrival: dt.date, seed: int, n: int = 220) -> pd.DataFrame:
    """One delivery day of events: most during the day, some late (up to 3 days), some in the
    hour after the day (the contract's future tolerance), some exactly at midnight."""
    rng = np.random.default_rng(seed)
    hours = rng.uniform(0, 24, n)
    kind = rng.uniform(size=n)
    hours = np.where(kind < 0.10, hours - 24 * rng.integers(1, 4, n), hours)  # late
    hours = np.where((kind >= 0.10) & (kind < 0.13), 24 + rng.uniform(0, 0.99, n), hours)
    hours = np.where((kind >= 0.13) & (kind < 0.15), 24.0, hours)  # exactly next midnight
    hours = np.where((kind >= 0.15) & (kind < 0.17), 0.0, hours)  # exactly this midnight
    times = [day_ts(arrival, float(h)).floor("s") for h in hours]
    types = rng.choice(TYPES, n, p=[0.55, 0.15, 0.15, 0.08, 0.07])
    items = rng.integers(0, 30, n)
    price = np.where(
        np.isin(types, ["click", "purchase"]) & (rng.uniform(size=n) > 0.1), 10.0 + items, np.nan
    )
    return pd.DataFrame(
        {
            "dt": arrival,
            "event_id": [f"e{seed}-{k}" for k in range(n)],
            "event_type": types,
            "event_time": times,
            "user_id": [f"u{u:02d}" for u in rng.integers(0, 40, n)],
            "item_id": [f"i{i:02d}" for i in items],
            "session_id": None,
            "request_id": None,
            "position": None,
            "propensity": None,
            "model_version": None,
            "variant": None,
            "price": price,
        }
    )


def all_events() -> pd.DataFrame:
    return pd.concat(
        [events_for(START + dt.timedelta(days=d), seed=d) for d in range(DAYS)], ignore_index=True
    )


def load(wh: Warehouse, table: str, df: pd.DataFrame) -> None:
    with wh.begin() as conn:
        wh.insert_df(conn, table, df)


def new_warehouse(url: str) -> Warehouse:
    wh = Warehouse(url)
    wh.migrate()
    load(wh, "items", catalog())
    load(wh, "users", shop_users())
    return wh


def build(url: str, home: Path, first: dt.date, last: dt.date | None = None) -> None:
    """Materialise every feature asset for one day, or for [first, last] as one run (the
    single-run backfill `dagster asset materialize --partition-range` starts)."""
    kwargs: dict[str, object] = {"partition_key": first.isoformat()}
    if last is not None and last != first:
        kwargs = {
            "tags": {
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat(),
            }
        }
    result = dg.materialize(
        [*ACTIVITY_ASSETS, *FEATURE_ASSETS],
        resources={
            "warehouse": WarehouseResource(url=url),
            "features": FeaturesConfig(prior_strength=PRIOR),
        },
        instance=dg.DagsterInstance.ephemeral(),
        **kwargs,
    )
    assert result.success


def table(wh: Warehouse, name: str) -> pd.DataFrame:
    with wh.begin() as conn:
        df = wh.query_df(conn, f"SELECT * FROM {name}")  # noqa: S608 - our own table names
    keys = TABLES[name]
    df = df.sort_values(keys).reset_index(drop=True)
    for c in df.columns:
        if c in ("dt", "event_day"):
            df[c] = pd.to_datetime(df[c])
        elif df[c].dtype == object and c not in keys and c not in ("region", "device"):
            df[c] = pd.to_numeric(df[c])
    return df[sorted(df.columns)]


def pair_features(wh: Warehouse, pairs: pd.DataFrame, feature_dt: dt.date) -> pd.DataFrame:
    """The feature vector of (user, item) pairs as of snapshot ``feature_dt``, by pair."""
    candidates = pairs[["user_id", "item_id"]].assign(
        request_id="r", position=0, event_time=day_ts(feature_dt + dt.timedelta(days=1), 12)
    )
    vector = feature_store.serving_frame(wh, candidates, feature_dt)
    for c in vector.columns:
        if vector[c].dtype == object:  # an all-NULL column arrives as None on PostgreSQL
            try:
                vector[c] = pd.to_numeric(vector[c])
            except (ValueError, TypeError):
                pass
    return vector.set_index(["user_id", "item_id"])


def assert_same_tables(a: Warehouse, b: Warehouse) -> None:
    for name in TABLES:
        left, right = table(a, name), table(b, name)
        assert len(left) > 0, f"{name} is empty: the fixture does not exercise it"
        pd.testing.assert_frame_equal(
            left, right, check_dtype=False, check_exact=False, rtol=1e-12, obj=name
        )


def test_daily_runs_equal_one_backfill_and_a_full_recompute_from_events(tmp_path: Path) -> None:
    events = all_events()
    last = START + dt.timedelta(days=DAYS - 1)

    # Daily: each day's events arrive, then that day's features are built.
    daily = new_warehouse(f"duckdb:///{tmp_path / 'daily.duckdb'}")
    for d in range(DAYS):
        day = START + dt.timedelta(days=d)
        load(daily, "events", events[events["dt"] == day])
        build(daily.url, tmp_path, day)

    # Backfill: all events present, the 14 days built in one run.
    backfill = new_warehouse(f"duckdb:///{tmp_path / 'backfill.duckdb'}")
    load(backfill, "events", events)
    build(backfill.url, tmp_path, START, last)
    assert_same_tables(daily, backfill)

    # Full recompute: the event-derived columns straight from raw events (pandas, no daily
    # aggregates) equal the incremental SQL's, every day.
    for d in range(DAYS):
        day = START + dt.timedelta(days=d)
        expected = feature_reference.snapshot(events, day, PRIOR)
        for name, keys in (("user_features", ["user_id"]), ("item_features", ["item_id"])):
            got = table(daily, name)
            got = got[got["dt"] == pd.Timestamp(day)].set_index(keys)
            want = expected[name]
            got = got.loc[got.index.isin(want.index), list(want.columns)]
            assert len(got) == len(want) > 0, (name, day)
            pd.testing.assert_frame_equal(
                got.sort_index(),
                want.sort_index(),
                check_dtype=False,
                check_exact=False,
                rtol=1e-9,
                obj=f"{name} {day}",
            )
        # User x item history is computed on demand by the feature vector, for candidates.
        want = expected["user_item_features"]
        got = pair_features(daily, want.index.to_frame(index=False), day)
        pd.testing.assert_frame_equal(
            got[list(want.columns)].sort_index(),
            want.sort_index(),
            check_dtype=False,
            check_exact=False,
            rtol=1e-9,
            obj=f"user x item {day}",
        )


# ----- point in time ---------------------------------------------------------------------------

LEAK_DAY = START + dt.timedelta(days=5)  # snapshot day
T = day_ts(LEAK_DAY + dt.timedelta(days=1))  # the example: an impression at exactly midnight
USER, ITEM = "u07", "i13"


def purchase(event_id: str, arrival: dt.date, at: pd.Timestamp) -> pd.DataFrame:
    row = events_for(arrival, seed=99, n=1)
    return row.assign(
        event_id=event_id,
        event_type="purchase",
        event_time=at,
        user_id=USER,
        item_id=ITEM,
        price=23.0,
    )


def features_at_t(wh: Warehouse) -> pd.DataFrame:
    candidates = pd.DataFrame(
        {
            "request_id": ["r"],
            "user_id": [USER],
            "item_id": [ITEM],
            "position": [0],
            "event_time": [T],
        }
    )
    return feature_store.serving_frame(wh, candidates, LEAK_DAY)


def assert_no_leakage(tmp_path: Path) -> None:
    """Features of an example at T, built before and after purchases that it must not see are
    added and every day is rebuilt (as a backfill would): they must not change."""
    events = all_events()
    base = events[events["dt"] <= LEAK_DAY + dt.timedelta(days=1)]
    wh = new_warehouse(f"duckdb:///{tmp_path / 'leak.duckdb'}")
    load(wh, "events", base[base["dt"] <= LEAK_DAY])
    build(wh.url, tmp_path, START, LEAK_DAY)
    before = features_at_t(wh)
    assert before["u_purchases_28d"].notna().all(), "the example's user has no features"

    load(wh, "events", base[base["dt"] == LEAK_DAY + dt.timedelta(days=1)])
    # At exactly T, delivered with the snapshot day (the contract's one-hour future tolerance).
    load(wh, "events", purchase("future-at-t", LEAK_DAY, T))
    # Before T, but delivered the next day: the serving side could not have seen it at T.
    late = T - pd.Timedelta(hours=1)
    load(wh, "events", purchase("late-arrival", LEAK_DAY + dt.timedelta(days=1), late))
    # After T.
    later = T + pd.Timedelta(hours=9)
    load(wh, "events", purchase("after-t", LEAK_DAY + dt.timedelta(days=1), later))
    build(wh.url, tmp_path, START, LEAK_DAY + dt.timedelta(days=1))
    after = features_at_t(wh)
    pd.testing.assert_frame_equal(before, after, obj="features at T")


def test_a_future_purchase_cannot_change_any_feature_at_t(tmp_path: Path) -> None:
    assert_no_leakage(tmp_path)


def mutate_sql(tmp_path: Path, change: Callable[[str], str]) -> Path:
    sql = tmp_path / "sql"
    shutil.copytree(warehouse.SQL_DIR, sql)
    changed = 0
    for path in (sql / "features").glob("*.sql"):
        text = path.read_text()
        new = change(text)
        changed += new != text
        path.write_text(new)
    assert changed, "the mutation matched nothing: the leakage test would test nothing"
    return sql


MUTATIONS = {
    # An event at exactly the cutoff counted as before it.
    "uses <=": lambda s: s.replace("event_day < :end_day", "event_day <= :end_day").replace(
        "a.event_day < p.feature_dt + 1", "a.event_day <= p.feature_dt + 1"
    ),
    # Every row that happened before the cutoff, whenever it arrived.
    "ignores arrival time": lambda s: re.sub(
        r"\b(a\.)?dt <= :dt AND (a\.)?event_day", r"\2event_day", s
    ).replace("AND a.dt <= p.feature_dt AND", "AND"),
    # The same two mistakes in the on-demand user x item history alone.
    "pair history uses <=": lambda s: s.replace(
        "a.event_day < p.feature_dt + 1", "a.event_day <= p.feature_dt + 1"
    ),
    "pair history ignores arrival": lambda s: s.replace("AND a.dt <= p.feature_dt AND", "AND"),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_the_leakage_test_catches_a_leaky_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mutation: str
) -> None:
    monkeypatch.setattr(warehouse, "SQL_DIR", mutate_sql(tmp_path, MUTATIONS[mutation]))
    warehouse.load_sql.cache_clear()  # SQL files are read once per process
    try:
        with pytest.raises(AssertionError, match="features at T"):
            assert_no_leakage(tmp_path)
    finally:
        monkeypatch.undo()
        warehouse.load_sql.cache_clear()


# ----- DuckDB = PostgreSQL -----------------------------------------------------------------------


def test_duckdb_and_postgresql_compute_the_same_features(tmp_path: Path, pg_database: str) -> None:
    events = all_events()
    last = START + dt.timedelta(days=DAYS - 1)
    duck = new_warehouse(f"duckdb:///{tmp_path / 'duck.duckdb'}")
    pg = new_warehouse(pg_database)
    for wh in (duck, pg):
        load(wh, "events", events)
        build(wh.url, tmp_path, START, last)
    assert_same_tables(duck, pg)
    # The whole feature vector (with the on-demand user x item history) of every pair that
    # has events, on every day's snapshot.
    pairs = events[["user_id", "item_id"]].drop_duplicates()
    for d in (3, 9, DAYS - 1):
        day = START + dt.timedelta(days=d)
        left, right = pair_features(duck, pairs, day), pair_features(pg, pairs, day)
        assert left["ui_impressions_28d"].notna().sum() > 100
        pd.testing.assert_frame_equal(
            left.sort_index(), right.sort_index(), check_dtype=False, rtol=1e-12, obj=str(day)
        )
    pg.dispose()


# ----- the training set ------------------------------------------------------------------------


def test_training_examples_label_impressions_within_the_window(tmp_path: Path) -> None:
    from flywheel_assets.defs.training.assets import training_examples

    day = START + dt.timedelta(days=2)
    base = events_for(day, seed=7, n=1).iloc[0].to_dict()

    def ev(kind: str, request: str | None, item: str, hours: float, **extra: object) -> dict:
        return {
            **base,
            "event_id": f"{kind}-{request}-{item}-{hours}",
            "event_type": kind,
            "event_time": day_ts(day, hours),
            "user_id": "u01",
            "item_id": item,
            "request_id": request,
            **extra,
        }

    shown = {"propensity": 0.25, "model_version": "m1", "variant": "challenger"}
    rows = [
        ev("impression", "r1", "i01", 10, position=0, **shown),
        ev("impression", "r1", "i02", 10, position=1, **shown),
        ev("impression", "r1", "i03", 10, position=2, **shown),
        ev("click", "r1", "i01", 10.1),  # within the window: clicked
        ev("purchase", "r1", "i01", 10.5),  # within the window: purchased
        ev("click", "r1", "i02", 13),  # 3 h later: outside a 1 h window
        ev("purchase", "r2", "i03", 10.2),  # another request: not this impression's
        ev("purchase", None, "i03", 10.2),  # no request: not attributable
    ]
    wh = new_warehouse(f"duckdb:///{tmp_path / 'train.duckdb'}")
    load(wh, "events", pd.DataFrame(rows))
    result = dg.materialize(
        [training_examples],
        partition_key=day.isoformat(),
        resources={
            "warehouse": WarehouseResource(url=wh.url),
            "training": TrainingConfig(label_window_hours=1.0),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    with wh.begin() as conn:
        got = wh.query_df(conn, "SELECT * FROM training_examples ORDER BY position")
    assert got["item_id"].tolist() == ["i01", "i02", "i03"]
    assert got["label_click"].tolist() == [1, 0, 0]
    assert got["label_purchase"].tolist() == [1, 0, 0]
    assert (got["propensity"] == 0.25).all() and (got["variant"] == "challenger").all()
    assert (got["model_version"] == "m1").all()
    assert (pd.to_datetime(got["feature_dt"]) == pd.Timestamp(day - dt.timedelta(days=1))).all()
