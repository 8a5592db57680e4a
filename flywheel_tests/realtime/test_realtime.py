"""Real-time features end to end, on a demo home of the dynamic world: the point-in-time SQL
and the online store agree on every training example (DuckDB and PostgreSQL), training uses
them, and the ranking service reacts to a session's clicks on its next request, over HTTP."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from flywheel_assets import registry
from flywheel_assets.features.store import training_frame
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.realtime.features import REALTIME_NAMES, WINDOW_SECONDS
from flywheel_assets.realtime.store import ItemCatalog, SessionStore, micros
from flywheel_assets.serving.app import create_app
from flywheel_assets.serving.event_sink import LandingSink
from flywheel_assets.serving.online_features import FeatureSnapshot, latest_bundle
from flywheel_assets.serving.service import RankingService
from flywheel_assets.simulation.demo import run_demo
from flywheel_assets.simulation.simulator import SimulatorConfig
from flywheel_tests.support.environment import restored_environment
from flywheel_tests.support.server import Server, promote

pytestmark = pytest.mark.xdist_group("realtime.test_realtime")

START = dt.date(2026, 3, 1)
DAYS = 3
CONFIG = SimulatorConfig.for_world(
    "dynamic", seed=5, n_users=2_000, n_items=300, new_users_per_day=30
)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """Three days of the dynamic world through the real cycle, real-time features on."""
    with restored_environment():
        path = tmp_path_factory.mktemp("realtime") / "home"
        run_demo(days=DAYS, seed=5, start=START, home=path, config=CONFIG)
        yield path


def warehouse(home: Path) -> Warehouse:
    return Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")


def sql_examples(wh: Warehouse) -> pd.DataFrame:
    frame = training_frame(wh, START + dt.timedelta(days=1), START + dt.timedelta(days=DAYS - 1))
    assert len(frame) > 5_000
    return frame


def replay(wh: Warehouse, requests: pd.DataFrame) -> pd.DataFrame:
    """The stream's view: the accepted events applied to a session store in arrival order
    (event time, never a partition later than the request's day), each request read at its
    own time, before any later event is applied. One row per (request, category, brand)."""
    with wh.begin() as conn:
        events = wh.query_df(
            conn,
            "SELECT event_id, event_type, event_time, user_id, session_id, item_id, dt "
            "FROM events ORDER BY event_time, event_id",
        )
        catalogs = {
            d: ItemCatalog.from_frame(
                wh.query_df(conn, load_sql("realtime/item_attributes"), feature_dt=d)
            )
            for d in requests["feature_dt"].unique()
        }
    store = SessionStore()
    times = events["event_time"].map(micros).to_numpy()
    records = events.to_dict("records")
    applied = 0
    pending: list[dict] = []
    out = []
    requests = requests.sort_values("event_time", kind="stable")
    for (_rid, user, session, at, fdt), rows in requests.groupby(
        ["request_id", "user_id", "session_id", "event_time", "feature_dt"], sort=False
    ):
        t = micros(at)
        upto = int(np.searchsorted(times, t, side="left"))  # events strictly before the request
        day = pd.Timestamp(at).date()
        # an event of a later partition had not arrived yet: it waits for a later request
        waiting = pending + records[applied:upto]
        store.apply(r for r in waiting if r["dt"] <= day)
        pending = [r for r in waiting if r["dt"] > day]
        applied = max(applied, upto)
        catalog = catalogs[fdt]
        cats, brands = catalog.codes_of(rows["category"], rows["brand"])
        values = store.features(user, session, at, cats, brands, catalog)
        out.append(pd.DataFrame(values, columns=list(REALTIME_NAMES), index=rows.index))
    return pd.concat(out).loc[requests.index]


def test_the_stream_and_the_sql_agree_on_every_training_example(home: Path) -> None:
    """Must-show 2: every example of the replayed days, every real-time feature: the value the
    online store holds at the request time equals the point-in-time SQL's. 0 mismatches."""
    wh = warehouse(home)
    frame = sql_examples(wh)
    with_session = frame[frame["session_id"].notna()]
    assert len(with_session) == len(frame), "the demo's requests all have sessions"
    online = replay(wh, with_session)
    sql = with_session[list(REALTIME_NAMES)].astype(float)
    mismatches = (online.to_numpy(dtype=float) != sql.to_numpy(dtype=float)).sum()
    assert mismatches == 0, (
        f"{mismatches} mismatching values; first rows:\n"
        f"{sql[(online != sql).any(axis=1)].head()}\n{online[(online != sql).any(axis=1)].head()}"
    )
    # Not vacuous: sessions did things before their later requests, in and out of category.
    assert (sql["sc_clicks_1h"] > 0).sum() > 100
    assert (sql["s_views_1h"] > sql["sc_views_1h"]).sum() > 100
    assert (sql["sb_carts_1h"] > 0).sum() > 10


def test_postgresql_computes_the_same_real_time_features(home: Path, pg_database: str) -> None:
    """The same SQL on PostgreSQL, over the same rows, gives the same values as DuckDB."""
    duck = warehouse(home)
    pg = Warehouse(pg_database)
    pg.migrate()
    with duck.begin() as src, pg.begin() as dst:
        for table in ("events", "item_features", "training_examples"):
            pg.insert_df(dst, table, duck.query_df(src, f"SELECT * FROM {table}"))  # noqa: S608
    key = ["request_id", "item_id", "position"]
    a = sql_examples(duck).sort_values(key).reset_index(drop=True)
    b = sql_examples(pg).sort_values(key).reset_index(drop=True)
    assert len(a) == len(b)
    for name in REALTIME_NAMES:
        np.testing.assert_array_equal(
            a[name].astype(float).to_numpy(), b[name].astype(float).to_numpy(), err_msg=name
        )


def test_a_holdout_read_in_the_warehouse_is_the_frame_after_its_cutoff(home: Path) -> None:
    # offline_evaluation reads only the challenger's holdout; it must be those rows of the
    # whole frame, in the same order, with the same values (a cutoff shared by several rows).
    wh = warehouse(home)
    last = START + dt.timedelta(days=DAYS - 1)
    whole = training_frame(wh, last, last)
    cutoff = whole["event_time"].iloc[int(len(whole) * 0.9)]
    assert (whole["event_time"] == cutoff).sum() > 1
    holdout = training_frame(wh, last, last, since=cutoff.to_pydatetime())
    expected = whole[whole["event_time"] >= cutoff].reset_index(drop=True)
    assert 0 < len(holdout) < len(whole)
    pd.testing.assert_frame_equal(holdout, expected)


def test_the_sql_window_is_the_declared_window() -> None:
    assert f"INTERVAL '{WINDOW_SECONDS} seconds'" in load_sql("features/session_events")


def test_challengers_learn_the_real_time_features(home: Path) -> None:
    """Training uses them: the registered models' schemas carry them, and the trees split
    on them (the dynamic world's intent is only visible through them)."""
    with warehouse(home).begin() as conn:
        versions = warehouse(home).query_df(conn, "SELECT model_version FROM model_registry")
        records = [registry.get_model(conn, v) for v in versions["model_version"]]
    assert records
    for record in records:
        assert set(REALTIME_NAMES) <= set(record.schema.numeric), record.model_version
    gains = records[-1].load().get_score(importance_type="total_gain")
    assert any(name in gains for name in REALTIME_NAMES), sorted(gains)


def test_a_sessions_clicks_lift_its_category_on_the_next_rank_over_http(
    home: Path, tmp_path: Path
) -> None:
    """Must-show 1, on the embedded default: a user clicks and carts items of one category;
    the session's next /rank over the whole catalog lifts that category at once (well within
    1 s), and another session of the same user is unaffected. Served by the newest model the
    flywheel trained (promoted as an operator would: three days of data)."""
    with warehouse(home).begin() as conn:
        newest = warehouse(home).scalar(
            conn, "SELECT model_version FROM model_registry ORDER BY dt DESC LIMIT 1"
        )
    promote(home, str(newest), reason="serve the newest model for the real-time test")
    snap = FeatureSnapshot.load(latest_bundle(home / "serving"))
    key = (home / "pseudonym.key").read_text().strip()
    svc = RankingService(
        home / "serving", Pseudonymiser(key), LandingSink(tmp_path / "landing"), epsilon=0.0
    )
    svc.start()
    user = "cust-0000042"

    def category(item: str) -> str:
        return snap.categories[snap.item_category[snap.item_index[item]]]

    try:
        with Server(create_app(svc)) as url, httpx.Client(base_url=url, timeout=30) as http:
            assert http.get("/readyz").json()["model_version"] == newest

            def ranking(session: str, k: int = 20) -> list[str]:
                r = http.post("/rank", json={"user_id": user, "session_id": session, "k": k})
                assert r.status_code == 200, r.text
                return [i["item_id"] for i in r.json()["items"]]

            before = ranking("s-rt-1", k=200)
            # the category the user likes best among those absent from the top 20: a session
            # that comes for it should see it
            top = {category(i) for i in before[:20]}
            target = next(category(i) for i in before if category(i) not in top)
            items = [i for i in before if category(i) == target][:3]
            shown = http.post(
                "/rank",
                json={"user_id": user, "session_id": "s-rt-1", "candidates": items, "k": 3},
            ).json()
            feedback = [
                {"request_id": shown["request_id"], "item_id": i, "event_type": t}
                for i in items
                for t in ("view", "click", "add_to_cart")
            ]
            r = http.post("/events", json={"events": feedback})
            assert r.status_code == 200, r.text
            posted = time.perf_counter()
            after = ranking("s-rt-1", k=200)
            elapsed = time.perf_counter() - posted
            other_session = ranking("s-rt-2", k=200)
            metrics = http.get("/metrics").json()
    finally:
        svc.stop()

    def ranks(slate: list[str]) -> np.ndarray:
        return np.array([r for r, i in enumerate(slate) if category(i) == target])

    # none in the top 20 before; at least three after, and the whole category moved up
    assert (ranks(after) < 20).sum() >= 3, (target, ranks(before), ranks(after))
    assert ranks(after)[:5].mean() < 0.5 * ranks(before)[:5].mean()
    assert elapsed < 1.0
    # another session of the same user knows nothing of it
    assert ranks(other_session).tolist() == ranks(before).tolist()
    assert metrics["online_store"]["events_applied"] == len(feedback)


def test_with_the_redis_store_down_rank_answers_from_the_snapshot_and_says_so(
    home: Path, tmp_path: Path
) -> None:
    """Replicas share a Redis store; when it goes away, /rank never fails: it scores from the
    snapshot (real-time features missing) and /readyz and /metrics say the store is down.
    Restarted empty, it is used again at once."""
    from flywheel_assets.realtime.redis_store import RedisSessionStore
    from flywheel_tests.support.redis_server import PrivateRedis

    key = (home / "pseudonym.key").read_text().strip()
    with PrivateRedis() as server:

        def replica(name: str) -> RankingService:
            return RankingService(
                home / "serving", Pseudonymiser(key), LandingSink(tmp_path / name),
                epsilon=0.0, online_store=RedisSessionStore.from_url(server.url),
            )  # fmt: skip

        a, b = replica("a"), replica("b")
        for svc in (a, b):
            svc.reload(force=True)
        user, session = "cust-0000007", "s-redis"
        shown = a.rank(user, session_id=session, k=5)
        items = [i["item_id"] for i in shown["items"][:2]]
        a.feedback([{"request_id": shown["request_id"], "item_id": i, "event_type": "click"}
                    for i in items])  # fmt: skip
        snap = b.state.snapshot
        cats, brands = snap.attribute_codes(items)
        fresh = b.online.features(b.pseudonymiser.one(user), session, a.clock(), cats, brands, snap)
        assert fresh[:, list(REALTIME_NAMES).index("s_clicks_1h")].tolist() == [2, 2]

        server.stop()
        with TestClient(create_app(b)) as http:
            for _ in range(3):
                r = http.post("/rank", json={"user_id": user, "session_id": session, "k": 10})
                assert r.status_code == 200, r.text
            r = http.post(
                "/events",
                json={"request_id": r.json()["request_id"],
                      "item_id": r.json()["items"][0]["item_id"], "event_type": "click"},
            )  # fmt: skip
            assert r.status_code == 200, r.text  # logged; the next cycle has it
            ready = http.get("/readyz").json()
            assert ready["ready"] is True
            assert ready["online_store"]["available"] is False
            assert ready["online_store"]["errors"] >= 1
            assert http.get("/metrics").json()["online_store"]["available"] is False

            server.start()  # empty, as Redis restarted with nothing on disk
            assert http.get("/readyz").json()["online_store"]["available"] is True
            r = http.post("/rank", json={"user_id": user, "session_id": "s-after", "k": 3})
            assert r.status_code == 200
            r = http.post(
                "/events",
                json={"request_id": r.json()["request_id"],
                      "item_id": r.json()["items"][0]["item_id"], "event_type": "click"},
            )  # fmt: skip
            assert r.status_code == 200
        assert b.online.applied >= 1
