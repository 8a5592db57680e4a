"""The ranking service on a real demo home: features equal to the SQL definition, honest
propensities, a clear 4xx for every bad request, hot reload under load with no failed request,
and logs that ingest as the next cycle's input."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from scipy import stats

from flywheel_assets import registry
from flywheel_assets.features import vector
from flywheel_assets.features.store import serving_frame
from flywheel_assets.platform.dev_broker import free_port
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.realtime.store import SessionStore
from flywheel_assets.serving.app import create_app
from flywheel_assets.serving.event_sink import LandingSink
from flywheel_assets.serving.online_features import FeatureSnapshot, latest_bundle
from flywheel_assets.serving.policy import epsilon_greedy_slate, epsilon_greedy_slates
from flywheel_assets.serving.service import RankingService
from flywheel_assets.simulation.live_shop import wait_until_ready
from flywheel_assets.training.model import FeatureSchema, predict
from flywheel_tests.support.environment import restored_environment
from flywheel_tests.support.homes import SMALL_SHOP_GROUP, SMALL_SHOP_START, DemoHome
from flywheel_tests.support.server import Server, promote

# The module's tests share the small shop's home with the UI test (conftest.small_shop_home):
# one worker runs them all, so it is built once.
pytestmark = pytest.mark.xdist_group(SMALL_SHOP_GROUP)

START = SMALL_SHOP_START


@pytest.fixture(scope="module")
def home(small_shop_home: DemoHome) -> Iterator[Path]:
    """Three simulated days through the real cycle: models registered, a pointer and feature
    bundles published; the module runs with the home's settings."""
    with restored_environment():
        small_shop_home.apply_environment()
        yield small_shop_home.path


def key(home: Path) -> str:
    return (home / "pseudonym.key").read_text().strip()


def models(home: Path) -> list[registry.ModelRecord]:
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    with wh.begin() as conn:
        versions = wh.query_df(conn, "SELECT model_version FROM model_registry ORDER BY dt")
        return [registry.get_model(conn, v) for v in versions["model_version"]]


def codes_matrix(schema: FeatureSchema, frame: pd.DataFrame) -> np.ndarray:
    """schema.matrix (what training and batch scoring feed XGBoost) as plain numbers."""
    m = schema.matrix(frame.assign(position=0))
    cols = [
        m[c].cat.codes.replace(-1, np.nan).to_numpy(dtype=np.float32)
        if isinstance(m[c].dtype, pd.CategoricalDtype)
        else m[c].to_numpy(dtype=np.float32)
        for c in m.columns
    ]
    return np.column_stack(cols)


def test_online_features_equal_the_sql_feature_vector(home: Path) -> None:
    """The service assembles vectors in memory from the published bundle; they must be the
    vectors feature_vector.sql gives for the same pairs, column by column, and score the same."""
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    bundle = latest_bundle(home / "serving")
    assert bundle is not None, "online_features published no bundle"
    snap = FeatureSnapshot.load(bundle)
    record = models(home)[-1]
    booster = record.load()
    rng = np.random.default_rng(0)
    assert snap.mapped, "online_features published no mapped form: the service would copy"
    known_users = snap.known_users()
    # users with user x item history, with features only, and never seen; items known and not
    with_history = snap.users_with_history(15)
    users = (
        with_history + list(rng.choice(known_users, 15, replace=False)) + ["nobody-1", "nobody-2"]
    )
    checked_ui = 0
    for n, user in enumerate(users):
        items = list(rng.choice(snap.item_ids, 40, replace=False)) + ["sku-new-1"]
        codes = snap.history(user)
        if len(codes):  # include the items the user interacted with
            items = list(dict.fromkeys([*snap.item_ids[codes][:10], *items]))
        when = dt.datetime(2026, 2, 4, n % 24, 13)
        cands = pd.DataFrame(
            {
                "request_id": "r",
                "user_id": user,
                "item_id": items,
                "position": 0,
                "event_time": pd.Timestamp(when),
            }
        )
        sql = serving_frame(wh, cands, snap.feature_dt)
        expected = codes_matrix(record.schema, sql)
        got = snap.matrix(record.schema, user, snap.item_codes(items), when)
        assert got.shape == expected.shape
        columns = record.schema.numeric + list(record.schema.categorical)
        for j, column in enumerate(columns):
            np.testing.assert_allclose(
                got[:, j], expected[:, j], rtol=1e-6, equal_nan=True, err_msg=f"{user}: {column}"
            )
        checked_ui += int(np.isfinite(got[:, columns.index("ui_impressions_28d")]).sum())
        np.testing.assert_allclose(
            booster.inplace_predict(got),
            predict(booster, record.schema, sql, at_top=True),
            rtol=1e-6,
        )
    assert checked_ui > 0, "no candidate had user x item history: the join went untested"


def test_online_features_equal_the_sql_for_every_declared_feature(home: Path) -> None:
    """Not only the champion's columns: every feature the vector declares
    (features/vector.py), so a feature no model uses yet cannot differ between the paths."""
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    snap = FeatureSnapshot.load(latest_bundle(home / "serving"))
    schema = FeatureSchema(
        numeric=list(vector.NUMERIC_NAMES), categorical=models(home)[-1].schema.categorical
    )
    assert set(schema.categorical) == set(vector.CATEGORICAL_NAMES)
    rng = np.random.default_rng(1)
    users = snap.users_with_history(10) + ["nobody-1"]
    columns = schema.numeric + list(schema.categorical)
    seen = np.zeros(len(columns), dtype=bool)
    for n, user in enumerate(users):
        items = list(rng.choice(snap.item_ids, 30, replace=False)) + ["sku-new-1"]
        codes = snap.history(user)
        if len(codes):
            items = list(dict.fromkeys([*snap.item_ids[codes][:10], *items]))
        when = dt.datetime(2026, 2, 4, (5 * n) % 24, 41)
        cands = pd.DataFrame(
            {"request_id": "r", "user_id": user, "item_id": items, "position": 0,
             "event_time": pd.Timestamp(when)}
        )  # fmt: skip
        expected = codes_matrix(schema, serving_frame(wh, cands, snap.feature_dt))
        got = snap.matrix(schema, user, snap.item_codes(items), when)
        for j, column in enumerate(columns):
            np.testing.assert_allclose(
                got[:, j], expected[:, j], rtol=1e-6, equal_nan=True, err_msg=f"{user}: {column}"
            )
        seen |= np.isfinite(got).any(axis=0)
    # Requests with their sessions: the real-time features from a store that holds the day's
    # events (the service's path) against the point-in-time SQL (the training path).
    with wh.begin() as conn:
        day = wh.query_df(
            conn,
            "SELECT event_id, event_type, event_time, user_id, session_id, item_id, request_id "
            "FROM events WHERE dt = (SELECT MAX(dt) FROM events) ORDER BY event_time",
        )
    store = SessionStore()
    store.apply(day.to_dict("records"))
    impressions = day[day["event_type"] == "impression"].drop_duplicates("request_id")
    later = impressions[impressions.duplicated("session_id")].head(60)  # not a session's first
    for _, request in later.iterrows():
        items = list(rng.choice(snap.item_ids, 30, replace=False))
        when = request["event_time"].to_pydatetime()
        cands = pd.DataFrame(
            {"request_id": request["request_id"], "user_id": request["user_id"],
             "session_id": request["session_id"], "item_id": items, "position": 0,
             "event_time": pd.Timestamp(when)}
        )  # fmt: skip
        expected = codes_matrix(schema, serving_frame(wh, cands, snap.feature_dt))
        codes = snap.item_codes(items)
        fresh = store.features(
            request["user_id"], request["session_id"], when, *snap.attributes_of(codes), snap
        )
        got = snap.matrix(schema, request["user_id"], codes, when, fresh)
        for j, column in enumerate(columns):
            np.testing.assert_allclose(
                got[:, j], expected[:, j], rtol=1e-6, equal_nan=True, err_msg=f"{column}"
            )
        seen |= np.isfinite(got).any(axis=0) & (got != 0).any(axis=0)
    never = [c for c, s in zip(columns, seen, strict=True) if not s]
    # Three days of history hold no catalog price of a week before: that one is missing.
    assert never == ["i_price_change_7d"], f"only missing values compared for {never}"


def test_single_request_policy_is_the_batch_policy() -> None:
    """The service's one-request path and the batch path (simulator, demo) log the same
    propensities for the same scores, and both pick items with those probabilities."""
    scores = np.array([0.9, 0.1, 0.5, 0.5, 0.3])
    eps, k, n = 0.4, 3, 20_000
    rng = np.random.default_rng(1)
    single = collections.Counter()
    for _ in range(n):
        chosen, prop = epsilon_greedy_slate(scores, k=k, epsilon=eps, rng=rng)
        assert np.isclose(
            prop, [exact_conditional(scores, chosen[:i], c, eps) for i, c in enumerate(chosen)]
        ).all()
        single[tuple(chosen)] += 1
    cands = pd.DataFrame(
        {"request_id": np.repeat(np.arange(n), len(scores)), "item_id": np.tile(np.arange(5), n)}
    )
    batch = epsilon_greedy_slates(cands, np.tile(scores, n), k=k, epsilon=eps, seed=2)
    slates = batch.groupby("request_id")["item_id"].apply(tuple)
    for slate, group in batch.groupby("request_id"):
        if slate > 200:
            break
        chosen = group["item_id"].to_numpy()
        expected = [exact_conditional(scores, chosen[:i], c, eps) for i, c in enumerate(chosen)]
        np.testing.assert_allclose(group["propensity"].to_numpy(), expected)
    batch_counts = collections.Counter(slates)
    support = sorted(set(single) | set(batch_counts))
    table = np.array([[single[s] for s in support], [batch_counts[s] for s in support]])
    assert stats.chi2_contingency(table).pvalue > 0.001


def exact_conditional(scores: np.ndarray, above: np.ndarray, item: int, eps: float) -> float:
    """P(item next | items above), straight from the policy's definition: with 1 - eps the best
    remaining item (ties to the earlier candidate), with eps one of the remaining uniformly."""
    remaining = [i for i in range(len(scores)) if i not in set(above)]
    best = max(remaining, key=lambda i: (scores[i], -i))
    return (1 - eps) * (item == best) + eps / len(remaining)


def service(home: Path, landing: Path, **kw) -> RankingService:
    return RankingService(
        home / "serving", Pseudonymiser(key(home)), LandingSink(landing), reload_seconds=0.5, **kw
    )


def logged(landing: Path) -> pd.DataFrame:
    files = sorted(landing.glob("events/dt=*/*.jsonl"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_json(f, lines=True, dtype=False) for f in files], ignore_index=True)


def test_logged_propensities_are_the_policys_true_probabilities(home: Path, tmp_path: Path) -> None:
    """Must-show 3. The same request 4,000 times over HTTP: every logged propensity equals the
    probability computed from the returned scores and the policy's definition, and the slates
    the service showed occur as often as the product of those probabilities says."""
    svc = service(home, tmp_path / "landing", epsilon=0.3, seed=7)
    candidates = [f"sku-{i:05d}" for i in range(6)]
    with TestClient(create_app(svc)) as client:
        responses = [
            client.post("/rank", json={"user_id": "cust-0000042", "k": 3, "candidates": candidates})
            for _ in range(4000)
        ]
    svc.sink.flush()
    assert all(r.status_code == 200 for r in responses)
    first = responses[0].json()
    score = {it["item_id"]: it["score"] for it in first["items"]}
    # Scores do not depend on the draw: rank everything once to get all six.
    all_scores = {}
    for r in responses:
        for it in r.json()["items"]:
            all_scores[it["item_id"]] = it["score"]
    assert set(all_scores) == set(candidates) and score
    scores = np.array([all_scores[c] for c in candidates])
    events = logged(tmp_path / "landing")
    imps = events[events["event_type"] == "impression"].sort_values(["request_id", "position"])
    assert len(imps) == 4000 * 3
    slates = collections.Counter()
    for _rid, group in imps.groupby("request_id", sort=False):
        chosen = [candidates.index(i) for i in group["item_id"]]
        exact = [
            exact_conditional(scores, np.array(chosen[:i]), c, 0.3) for i, c in enumerate(chosen)
        ]
        np.testing.assert_allclose(group["propensity"].to_numpy(), exact, rtol=1e-9)
        slates[tuple(chosen)] += 1
    # Goodness of fit of the slate frequencies against the products of the logged propensities.
    support = [s for s in itertools.permutations(range(6), 3)]
    expected = np.array(
        [
            np.prod([exact_conditional(scores, np.array(s[:i]), c, 0.3) for i, c in enumerate(s)])
            for s in support
        ]
    )
    assert np.isclose(expected.sum(), 1.0)
    observed = np.array([slates[s] for s in support])
    common = expected * 4000 >= 5  # chi-square needs expected counts of 5 or more; pool the rest
    obs = np.r_[observed[common], observed[~common].sum()]
    exp = np.r_[expected[common], expected[~common].sum()] * 4000
    assert stats.chisquare(obs, exp).pvalue > 0.001


BAD_RANK_BODIES = [
    ({}, "user_id"),
    ({"user_id": ["a"]}, "user_id"),
    ({"user_id": "u", "k": 0}, "k"),
    ({"user_id": "u", "k": 10**9}, "k"),
    ({"user_id": "u", "k": "ten"}, "k"),
    ({"user_id": "u", "candidates": []}, "candidates must not be empty"),
    ({"user_id": "u", "candidates": ["a", "a"]}, "duplicates"),
    ({"user_id": "u", "candidates": [{"id": 1}]}, "candidates"),
    ({"user_id": "u", "candidates": ["x"] * 10_001}, "candidates"),
    ({"user_id": "u", "surprise": 1}, "surprise"),
    ({"user_id": "", "candidates": ["a"]}, "user_id"),
    ({"user_id": "u" * 5000, "candidates": ["a"]}, "user_id"),
    ({"user_id": "u", "session_id": "x" * 2000}, "session_id"),
    ({"user_id": "u", "context": "not an object"}, "context"),
    ({"user_id": 10**30}, "user_id"),
]


def test_every_error_body_has_the_documented_shape(home: Path, tmp_path: Path) -> None:
    """Each kind of bad request gets {"error": "<words>"}: no FastAPI "detail", no pydantic
    internals (union member tags, bare decode offsets)."""
    svc = service(home, tmp_path / "landing")
    app = create_app(svc, token="s3cret", max_body_bytes=2_000)
    auth = {"authorization": "Bearer s3cret"}
    as_json = {**auth, "content-type": "application/json"}
    with TestClient(app, raise_server_exceptions=False) as client:
        cases = [
            (client.post("/rank", content=b'{"user_id": "u", "k": }', headers=as_json), 422,
             "not valid JSON at character"),
            (client.post("/rank", content=b"", headers=as_json), 422, "body is empty"),
            (client.post("/rank", content=b"[1, 2]", headers=as_json), 422, "object"),
            (client.post("/rank", json={"user_id": ""}, headers=auth), 422,
             "user_id: an id must be 1 to 1,024 characters long"),
            (client.post("/rank", json={"user_id": 2**70}, headers=auth), 422, "64 bits"),
            (client.post("/rank", json={"user_id": ["u"]}, headers=auth), 422,
             "user_id: an id must be a string or an integer"),
            (client.post("/rank", json={"user_id": "u", "k": 0}, headers=auth), 422, "k:"),
            (client.get("/rank", headers=auth), 405, "GET is not allowed on /rank: use POST"),
            (client.post("/nowhere", json={}, headers=auth), 404, "POST /rank"),
            (client.post("/rank", json={"user_id": "u"}), 401, "bearer token"),
            (client.post("/rank", content=b"x" * 3_000, headers=as_json), 413, "bytes"),
            (client.post("/events", json={"events": []}, headers=auth), 422, "events"),
        ]  # fmt: skip
        for response, status, words in cases:
            body = response.json()
            assert (response.status_code, list(body)) == (status, ["error"]), body
            assert isinstance(body["error"], str) and words in body["error"], body
            assert "constrained-" not in body["error"] and "JSON decode error" not in body["error"]
        ok = client.post("/rank", json={"user_id": 42, "k": 1}, headers=auth)
        assert ok.status_code == 200 and len(ok.json()["items"]) == 1


def test_invalid_requests_get_a_clear_4xx_never_a_500(home: Path, tmp_path: Path) -> None:
    svc = service(home, tmp_path / "landing")
    with TestClient(create_app(svc), raise_server_exceptions=False) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["feature_dt"] is not None
        schema = client.get("/openapi.json").json()
        assert {"/rank", "/events", "/healthz", "/readyz"} <= set(schema["paths"])
        for body, word in BAD_RANK_BODIES:
            r = client.post("/rank", json=body)
            assert r.status_code == 422, (body, r.status_code, r.text[:200])
            assert word in r.json()["error"], (body, r.json())
        for raw in (b"{not json", b"", b"[1, 2]", "\udcff".encode("utf-8", "surrogatepass")):
            r = client.post("/rank", content=raw, headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (raw, r.status_code)
        ok = client.post("/rank", json={"user_id": 42, "k": 2, "request_id": "mine-1"}).json()
        assert ok["request_id"] == "mine-1" and len(ok["items"]) == 2
        metrics = client.get("/metrics").json()
        assert metrics["latency"][ok["variant"]]["requests"] == 1
        assert metrics["serving"]["feature_dt"] == ready.json()["feature_dt"]
        assert client.post("/rank", json={"user_id": 42, "request_id": "mine-1"}).status_code == 422
        shown = ok["items"][0]["item_id"]
        bad_events = [
            ({"request_id": "mine-1", "event_type": "teleport", "item_id": shown}, "event_type"),
            ({"request_id": "mine-1", "event_type": "click", "item_id": "not-shown"}, "not shown"),
            ({"request_id": "unknown", "event_type": "click", "item_id": shown}, "send user_id"),
            ({"request_id": "mine-1", "event_type": "click", "item_id": shown, "user_id": "43"}, "does not match"),
            ({"request_id": "mine-1", "event_type": "click", "item_id": shown,
              "event_time": "2999-01-01T00:00:00Z"}, "future"),
            ({"request_id": "mine-1", "event_type": "click", "item_id": shown,
              "event_time": "yesterday-ish"}, "event_time"),
            ({"events": []}, "events"),
            ({"request_id": "mine-1", "event_type": "click", "item_id": shown, "price": -1}, "price"),
            (json.dumps({"request_id": "mine-1", "event_type": "click", "item_id": shown,
                         "price": float("inf")}).encode(), "price"),  # Infinity: not JSON, but parsed
            ({"request_id": "mine-1", "event_type": "click", "item_id": shown,
              "event_time": "0001-01-01T00:30:00+01:00"}, "event_time"),
            ({"request_id": "mine-1", "event_type": "click", "item_id": shown,
              "event_time": (dt.datetime.now(dt.UTC) - dt.timedelta(days=60)).isoformat()}, "days old"),
        ]  # fmt: skip
        for body, word in bad_events:
            r = (
                client.post("/events", content=body, headers={"content-type": "application/json"})
                if isinstance(body, bytes)
                else client.post("/events", json=body)
            )
            assert r.status_code == 422, (body, r.status_code, r.text[:200])
            assert word in r.json()["error"], (body, r.json())
        good = client.post(
            "/events", json={"request_id": "mine-1", "event_type": "click", "item_id": shown}
        )
        assert good.status_code == 200 and good.json()["accepted"] == 1
        # a client retrying the same feedback gets the same event id: counted once downstream
        again = client.post(
            "/events", json={"request_id": "mine-1", "event_type": "click", "item_id": shown}
        )
        assert again.json()["event_ids"] == good.json()["event_ids"]
        r = client.post(
            "/events", json={"request_id": "mine-1", "event_type": "purchase", "item_id": shown}
        )
        assert r.status_code == 200
    svc.sink.flush()
    events = logged(tmp_path / "landing")
    clicks = events[events["event_type"] == "click"]
    # the retry is the same event, time included: ingestion counts it as a duplicate
    assert len(clicks) == 2 and len(clicks.drop_duplicates()) == 1
    purchase = events[events["event_type"] == "purchase"].iloc[0]
    shown_at = events[(events["event_type"] == "impression") & (events["item_id"] == shown)]
    assert purchase["price"] == shown_at["price"].iloc[0] and purchase["price"] > 0


def test_cold_start_and_not_ready(home: Path, tmp_path: Path) -> None:
    """Before anything is published: the cold-start policy needs candidates; with a model but no
    feature bundle the service is not ready (503), never wrong."""
    serving = tmp_path / "serving"
    svc = RankingService(serving, Pseudonymiser("k" * 32), LandingSink(tmp_path / "l"))
    with TestClient(create_app(svc)) as client:
        r = client.post("/rank", json={"user_id": "u", "k": 3, "candidates": ["a", "b", "c", "d"]})
        body = r.json()
        assert r.status_code == 200 and body["model_version"] == "cold-start"
        assert [it["propensity"] for it in body["items"]] == pytest.approx([1 / 4, 1 / 3, 1 / 2])
        r = client.post("/rank", json={"user_id": "u"})
        assert r.status_code == 422 and "send candidates" in r.json()["error"]
        # a model published, its features not yet
        serving.mkdir()
        record = models(home)[-1]
        pointer = json.loads((home / "serving" / "champion.json").read_text())
        pointer.update(
            model_version=record.model_version, artefact_uri=record.artefact_uri,
            sha256=record.sha256, feature_schema=json.loads(record.schema.to_json()),
            experiment=None,
        )  # fmt: skip
        (serving / "champion.json").write_text(json.dumps(pointer))
        assert svc.reload() is True
        assert client.get("/readyz").status_code == 503
        r = client.post("/rank", json={"user_id": "u", "candidates": ["a", "b"]})
        assert r.status_code == 503 and "feature bundle" in r.json()["error"]


def test_a_promotion_under_load_fails_no_request_and_switches_version(
    home: Path, tmp_path: Path
) -> None:
    """Must-show 2: 4 clients send 1,600 requests (k=20 of every catalog item) while the
    champion changes; every request succeeds, each client sees the old version, then only the
    new one."""
    with restored_environment():
        pointer = json.loads((home / "serving" / "champion.json").read_text())
        old = pointer["model_version"] or "cold-start"
        new = next(m.model_version for m in reversed(models(home)) if m.model_version != old)
        svc = service(home, tmp_path / "landing")
        snapshot_items = None
        results: dict[int, list[tuple[int, str, str]]] = collections.defaultdict(list)
        switched = threading.Event()
        with Server(create_app(svc)) as url:
            snapshot_items = list(svc.state.snapshot.item_ids)

            def client(n: int) -> None:
                rng = np.random.default_rng(n)
                with httpx.Client(base_url=url, timeout=30) as http:
                    for i in range(400):
                        body = {
                            "user_id": f"cust-{int(rng.integers(2000)):07d}",
                            "k": 20,
                            "candidates": snapshot_items,
                        }
                        r = http.post("/rank", json=body)
                        version = (
                            r.json().get("model_version", "?") if r.status_code == 200 else "?"
                        )
                        results[n].append((r.status_code, version, r.json().get("variant", "")))
                        if n == 0 and i == 100:
                            switched.set()

            threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
            for t in threads:
                t.start()
            assert switched.wait(120)
            promote(home, new)
            for t in threads:
                t.join()
            reloads = svc.reloads
    statuses = collections.Counter(s for rs in results.values() for s, _, _ in rs)
    assert statuses == {200: 1600}, statuses
    assert reloads >= 2
    for n, rs in results.items():
        champions = [v for _s, v, variant in rs if variant == "champion"]
        assert champions[0] == old and champions[-1] == new, (n, champions[:3], champions[-3:])
        first_new = champions.index(new)
        assert set(champions[first_new:]) == {new}, f"client {n} saw {old} after {new}"


def test_a_broken_publication_keeps_the_previous_models_serving(home: Path, tmp_path: Path) -> None:
    import shutil

    serving = tmp_path / "serving"
    shutil.copytree(home / "serving", serving)
    svc = RankingService(serving, Pseudonymiser(key(home)), LandingSink(tmp_path / "l"))
    with TestClient(create_app(svc)) as client:
        before = client.get("/readyz").json()["model_version"]
        pointer = json.loads((serving / "champion.json").read_text())
        sha = pointer["sha256"]
        pointer["sha256"] = "0" * 64  # an artefact that is not what the registry recorded
        (serving / "champion.json").write_text(json.dumps(pointer))
        assert svc.reload() is False
        ready = client.get("/readyz").json()
        assert ready["model_version"] == before and "SHA-256" in (ready["error"] or "").upper()
        r = client.post("/rank", json={"user_id": "u", "k": 5})
        assert r.status_code == 200 and r.json()["model_version"] == before
        # the pointer mended, and the same day's bundle exported again: both are picked up
        (serving / "champion.json").write_text(json.dumps({**pointer, "sha256": sha}))
        success = latest_bundle(serving) / "_SUCCESS"
        time.sleep(0.01)
        success.write_text(success.read_text())
        assert svc.reload() is True and client.get("/readyz").json()["error"] is None


def test_orphaned_log_files_of_a_dead_service_are_published(tmp_path: Path) -> None:
    """A .part file no live writer holds is published by the next service, whatever pid its
    name carries (pids are reused after a restart); a file a live service writes is left."""
    live = LandingSink(tmp_path)
    live.write([{"event_id": "live"}])
    folder = next((tmp_path / "events").glob("dt=*"))
    orphan = folder / f"serve-{live.host}-{os.getpid()}-20261125T000000000000-9.jsonl.part"
    orphan.write_text('{"event_id": "x"}\n')
    empty = folder / f"serve-{live.host}-1-20261125T000000000000-1.jsonl.part"
    empty.touch()
    os.utime(empty, (time.time() - 120, time.time() - 120))
    # empty and just created: perhaps a writer between creating and locking it
    young = folder / f"serve-{live.host}-2-20261125T000000000000-1.jsonl.part"
    young.touch()
    recovered = LandingSink(tmp_path).recovered
    assert recovered == [orphan.with_name(orphan.name.removesuffix(".part"))]
    assert not empty.exists(), "an old empty orphan is removed, not published"
    assert young.exists()
    young.unlink()
    held = list(folder.glob("*.part"))
    assert len(held) == 1, "the live sink's open file must stay unpublished"
    assert live.flush()[0].read_text() == '{"event_id":"live"}\n'


def ingest(
    home: Path, landing: Path, day: dt.date, kafka: tuple[str, str] | None = None
) -> tuple[pd.DataFrame, int]:
    """Run the real ingestion assets on ``landing`` (and the topic, with ``kafka``) for
    ``day``; events by type, quarantined."""
    from flywheel_assets.defs.ingestion.assets import catalog_items, raw_events, users
    from flywheel_assets.defs.ingestion.kafka import kafka_events
    from flywheel_assets.defs.quality.assets import accepted_events
    from flywheel_assets.defs.resources import resources

    with restored_environment():
        os.environ["FLYWHEEL_HOME"] = str(home)
        os.environ["FLYWHEEL_PSEUDONYM_KEY"] = key(home)
        os.environ["DAGSTER_HOME"] = str(home / "dagster")
        os.environ["FLYWHEEL_LANDING_DIR"] = str(landing)
        os.environ.pop("FLYWHEEL_KAFKA_BOOTSTRAP", None)
        if kafka:
            os.environ["FLYWHEEL_KAFKA_BOOTSTRAP"], os.environ["FLYWHEEL_KAFKA_TOPIC"] = kafka
            assert dg.materialize([kafka_events], resources=resources()).success
        result = dg.materialize(
            [catalog_items, users, raw_events, accepted_events],
            partition_key=day.isoformat(),
            resources=resources(),
        )
        assert result.success
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    with wh.begin() as conn:
        got = wh.query_df(
            conn,
            "SELECT event_type, COUNT(*) AS n, MIN(propensity) AS p FROM events "
            "WHERE dt = :dt GROUP BY event_type",
            dt=day,
        ).set_index("event_type")
        quarantined = wh.scalar(conn, "SELECT COUNT(*) FROM quarantine WHERE dt = :dt", dt=day)
    return got, int(quarantined or 0)


def copy_exports(home: Path, landing: Path, day: str) -> None:
    """The shop's catalog and users exports for ``day``: the demo's last ones."""
    for source in ("catalog", "users"):
        src = sorted((home / "landing" / source).glob("dt=*"))[-1]
        dst = landing / source / f"dt={day}"
        dst.mkdir(parents=True)
        for f in src.iterdir():
            (dst / f.name).write_bytes(f.read_bytes())


def test_served_logs_ingest_cleanly_as_the_next_cycles_input(home: Path, tmp_path: Path) -> None:
    """Impressions and feedback written by the service are accepted by the real ingestion
    assets: every row, none quarantined, feedback joined to its impressions."""
    svc = service(home, tmp_path / "landing")
    with TestClient(create_app(svc)) as client:
        for u in range(30):
            body = client.post("/rank", json={"user_id": f"cust-{u:07d}", "k": 5}).json()
            item = body["items"][u % 5]["item_id"]
            client.post(
                "/events",
                json={"request_id": body["request_id"], "event_type": "click", "item_id": item},
            )
            if u % 3 == 0:
                client.post("/events", json={"events": [
                    {"request_id": body["request_id"], "event_type": "add_to_cart", "item_id": item},
                    {"request_id": body["request_id"], "event_type": "purchase", "item_id": item},
                ]})  # fmt: skip
    svc.sink.flush()
    landed = logged(tmp_path / "landing")
    assert len(landed) == 30 * 5 + 30 + 10 * 2
    day = landed["event_time"].str[:10].iloc[0]
    copy_exports(home, tmp_path / "landing", day)
    got, quarantined = ingest(home, tmp_path / "landing", dt.date.fromisoformat(day))
    assert got["n"].to_dict() == {"impression": 150, "click": 30, "add_to_cart": 10, "purchase": 10}
    assert quarantined == 0
    assert 0 < got.loc["impression", "p"] <= 1


def test_flywheel_simulate_drives_the_live_service(home: Path, tmp_path: Path) -> None:
    """`flywheel simulate --url` plays a simulated day against a running service: every request
    is ranked over HTTP, the service logs the impressions and the posted feedback, and with the
    shop's exports they ingest as the next cycle's input."""
    import subprocess
    import sys

    landing = tmp_path / "landing"
    svc = service(home, landing)
    with Server(create_app(svc)) as url:
        out = subprocess.run(
            [sys.executable, "-m", "flywheel_assets.cli", "simulate", "--url", url,
             "--start", str(START), "--from-day", str(START + dt.timedelta(days=3)),
             "--seed", "11", "--sessions", "80", "--landing-dir", str(landing)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        served = svc.latency.summary()
    svc.sink.flush()
    line = out.stdout.strip().splitlines()[-1].split()
    requests, events_sent = int(line[1]), int(line[2])
    assert requests >= 80 and sum(v["requests"] for v in served.values()) == requests
    events = logged(landing)
    assert len(events) == events_sent
    imps = events[events["event_type"] == "impression"]
    feedback = events[events["event_type"] != "impression"]
    assert imps["request_id"].nunique() == requests and len(feedback) > 0
    shown = set(zip(imps["request_id"], imps["item_id"], strict=True))
    assert all(p in shown for p in zip(feedback["request_id"], feedback["item_id"], strict=True))
    assert feedback["propensity"].notna().all() and feedback["model_version"].notna().all()
    day = dt.datetime.now(dt.UTC).date()
    got, quarantined = ingest(home, landing, day)
    assert quarantined == 0
    assert int(got["n"].sum()) == len(events)
    assert got.loc["impression", "n"] == len(imps)


def test_kafka_sink_feeds_the_topic_and_falls_back_to_files(
    home: Path, tmp_path: Path, broker
) -> None:
    """FLYWHEEL_SERVE_SINK=kafka: what the service logs goes to a real broker and is ingested
    from there by the kafka_events asset; when the broker is gone, to landing files instead."""
    from flywheel_assets.platform.dev_broker import create_topic
    from flywheel_assets.serving.event_sink import KafkaSink

    topic = "served.events"
    create_topic(broker.bootstrap, topic, partitions=2)
    sink = KafkaSink(
        {"bootstrap.servers": broker.bootstrap}, topic, fallback=LandingSink(tmp_path / "fallback")
    )
    svc = RankingService(home / "serving", Pseudonymiser(key(home)), sink)
    with TestClient(create_app(svc)) as client:
        for u in range(20):
            body = client.post("/rank", json={"user_id": f"cust-{u:07d}", "k": 5}).json()
            item = body["items"][0]["item_id"]
            r = client.post(
                "/events",
                json={"request_id": body["request_id"], "event_type": "click", "item_id": item},
            )
            assert r.status_code == 200
    # leaving the app closed the sink: everything delivered
    assert (sink.delivered, sink.failed) == (120, 0)
    assert not list((tmp_path / "fallback").rglob("*.jsonl"))
    day = dt.datetime.now(dt.UTC).date()
    copy_exports(home, tmp_path / "landing", day.isoformat())
    got, quarantined = ingest(home, tmp_path / "landing", day, kafka=(broker.bootstrap, topic))
    assert got["n"].to_dict() == {"impression": 100, "click": 20} and quarantined == 0

    gone = KafkaSink(
        {"bootstrap.servers": f"127.0.0.1:{free_port()}"}, topic,
        fallback=LandingSink(tmp_path / "fallback"), message_timeout_ms=1500,
    )  # fmt: skip
    svc = RankingService(home / "serving", Pseudonymiser(key(home)), gone)
    with TestClient(create_app(svc)) as client:
        for u in range(3):
            assert (
                client.post("/rank", json={"user_id": f"cust-{u:07d}", "k": 4}).status_code == 200
            )
    assert gone.failed == 12
    kept = logged(tmp_path / "fallback")
    assert len(kept) == 12 and set(kept["event_type"]) == {"impression"}


def test_request_log_loads_into_served_requests(home: Path, tmp_path: Path) -> None:
    """The service's request log (candidates, served latency) lands in served_requests,
    users pseudonymised; a line that is not a request record is counted, not loaded."""
    from flywheel_assets.defs.resources import resources
    from flywheel_assets.defs.serving.assets import served_requests

    landing = tmp_path / "landing"
    log = LandingSink(landing, source="requests")
    svc = RankingService(
        home / "serving", Pseudonymiser(key(home)), LandingSink(landing), request_log=log
    )
    items = list(FeatureSnapshot.load(latest_bundle(home / "serving")).item_ids[:5])
    with TestClient(create_app(svc)) as client:
        for u in range(10):
            r = client.post("/rank", json={"user_id": f"cust-{u:07d}", "k": 3, "candidates": items})
            assert r.status_code == 200
        for u in range(5):
            assert (
                client.post("/rank", json={"user_id": f"cust-{u:07d}", "k": 3}).status_code == 200
            )
    files = log.published
    assert files, "the request log was not published at shutdown"
    with files[0].open("a") as fh:
        fh.write('{"request_id": "broken"}\nnot json\n')
    day = dt.datetime.now(dt.UTC).date()
    with restored_environment():
        os.environ.update(
            FLYWHEEL_HOME=str(home), FLYWHEEL_PSEUDONYM_KEY=key(home),
            DAGSTER_HOME=str(home / "dagster"), FLYWHEEL_LANDING_DIR=str(landing),
        )  # fmt: skip
        result = dg.materialize(
            [served_requests], partition_key=day.isoformat(), resources=resources()
        )
    assert result.success
    meta = result.asset_materializations_for_node("served_requests")[0].metadata
    assert meta["dagster/row_count"].value == 15 and meta["lines_rejected"].value == 2
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    with wh.begin() as conn:
        rows = wh.query_df(conn, "SELECT * FROM served_requests WHERE dt = :dt", dt=day)
    assert len(rows) == 15 and (rows["latency_ms"] > 0).all()
    assert sorted(rows["n_candidates"].fillna(-1).astype(int)) == [-1] * 5 + [5] * 10
    assert json.loads(rows["candidates"].dropna().iloc[0]) == items
    assert Pseudonymiser(key(home)).one("cust-0000001") in set(rows["user_id"])
    assert not rows["user_id"].str.startswith("cust-").any()


def test_latency_guardrail_uses_served_latency_when_the_service_logged_enough(
    tmp_path: Path,
) -> None:
    from flywheel_assets.evaluation.experiments import Experiment, ExperimentPolicy, analyse
    from flywheel_assets.evaluation.online import measure_latency

    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    wh.migrate()
    day = dt.date(2026, 3, 2)
    exp = Experiment(
        experiment_id="exp-1", challenger="m-new", champion="m-old", traffic_share=0.5,
        created_dt=day, start_dt=day, max_days=7, planned_n=1000, alpha=0.05,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    n = 200
    rows = pd.DataFrame(
        {
            "dt": day,
            "request_id": [f"r{i}" for i in range(2 * n)],
            "served_at": pd.Timestamp(day) + pd.to_timedelta(np.arange(2 * n), unit="s"),
            "user_id": "u",
            "model_version": ["m-old"] * n + ["m-new"] * n,
            "variant": ["champion"] * n + ["challenger"] * n,
            "experiment_id": "exp-1",
            "k": 10,
            "epsilon": 0.05,
            "latency_ms": np.r_[rng.normal(5, 0.5, n), rng.normal(9, 0.5, n)],
            "source_file": "f",
        }
    )
    with wh.begin() as conn:
        wh.insert_df(conn, "served_requests", rows)
    champion, challenger, source = measure_latency(wh, exp, day, 60)
    assert source == "served" and len(champion) == len(challenger) == n
    assert challenger.mean() > 8 > 6 > champion.mean()
    # 80 % slower than the champion: harmed beyond the 25 % margin, said to be served latency
    users = pd.DataFrame(
        {"user_id": [f"u{i}" for i in range(400)], "variant": ["champion", "challenger"] * 200,
         "n_variants": 1, "requests": 3, "impressions": 30, "clicks": 2, "purchases": 1,
         "revenue": 10.0, "pre_purchases": 0, "pre_requests": 0}
    )  # fmt: skip
    analysis = analyse(exp, users, day, ExperimentPolicy(), (champion, challenger, source))
    row = next(r for r in analysis.results if r.metric == "guardrail:latency_ms")
    assert row.outcome == "harmed" and "served requests" in (row.note or "")
    # too few served requests: the models are replayed instead (none registered here: no figure)
    assert measure_latency(wh, exp, day, n + 1) is None


def test_bearer_token_and_body_limit(home: Path, tmp_path: Path) -> None:
    """With FLYWHEEL_SERVE_TOKEN the API needs it (probes stay open); bodies over the limit are
    refused with a 413 before they are parsed, streamed or not."""
    svc = service(home, tmp_path / "landing")
    app = create_app(svc, token="s3cret-token", max_body_bytes=2_000)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        r = client.post("/rank", json={"user_id": "u", "k": 2})
        assert r.status_code == 401 and "bearer token" in r.json()["error"]
        wrong = {"authorization": "Bearer s3cret-tokeN"}
        assert client.post("/rank", json={"user_id": "u"}, headers=wrong).status_code == 401
        # refused before the body is read: malformed JSON without the token is a 401, not a 422
        r = client.post("/rank", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 401
        lower = {"authorization": "bearer s3cret-token"}  # the scheme is case-insensitive
        assert client.post("/rank", json={"user_id": "u", "k": 1}, headers=lower).status_code == 200
        good = {"authorization": "Bearer s3cret-token"}
        assert client.post("/rank", json={"user_id": "u", "k": 2}, headers=good).status_code == 200
        assert client.get("/metrics").status_code == 401
        big = {"user_id": "u", "candidates": [f"sku-{i:05d}" for i in range(500)]}
        r = client.post("/rank", json=big, headers=good)
        assert r.status_code == 413 and "FLYWHEEL_SERVE_MAX_BODY_BYTES" in r.json()["error"]

        def chunks():  # no content-length: the limit is counted as the body streams in
            for _ in range(10):
                yield b" " * 500

        r = client.post(
            "/rank", content=chunks(), headers={**good, "content-type": "application/json"}
        )
        assert r.status_code == 413


def test_flywheel_serve_command_serves_and_publishes_its_logs_on_shutdown(
    home: Path, tmp_path: Path
) -> None:
    """The CLI as a user runs it: configured from the environment, two worker processes, and on
    SIGTERM every worker publishes its open log files (nothing left as .part)."""
    import signal
    import subprocess
    import sys

    port = free_port()
    landing = tmp_path / "landing"
    env = {
        **os.environ,
        "FLYWHEEL_HOME": str(home),
        "FLYWHEEL_PSEUDONYM_KEY": key(home),
        "FLYWHEEL_LANDING_DIR": str(landing),
        "FLYWHEEL_SERVE_TOKEN": "t0ken",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "flywheel_assets.cli", "serve", "--port", str(port),
         "--workers", "2", "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, 90, alive=lambda: proc.poll() is None)
        auth = {"authorization": "Bearer t0ken"}
        with httpx.Client(base_url=url, headers=auth) as client:
            for u in range(40):
                r = client.post("/rank", json={"user_id": f"cust-{u:07d}", "k": 3})
                assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert not list(landing.rglob("*.part")), "a log file was left unpublished"
    events = logged(landing)
    assert (events["event_type"] == "impression").sum() == 120
    requests = list((landing / "requests").rglob("*.jsonl"))
    assert sum(len(f.read_text().splitlines()) for f in requests) == 40
