"""`flywheel stream` on a real broker (Tansu) and a real Redis: the topic's events reach the
shared store exactly as the in-process store would hold them; malformed messages are counted
out by ingestion's own contract; a worker killed mid-stream resumes from its committed offsets
with nothing lost and nothing counted twice."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pandas as pd
import pytest
from confluent_kafka import Producer

from flywheel_assets.platform.dev_broker import create_topic
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.realtime.redis_store import RedisSessionStore
from flywheel_assets.realtime.store import ItemCatalog, SessionStore
from flywheel_assets.realtime.stream import OnlineStoreSink, build_app
from flywheel_tests.support.redis_server import (
    PrivateRedis,
    drop_prefix,
    shared_redis,
    unique_prefix,
)

pytestmark = pytest.mark.xdist_group("realtime.test_stream")

KEY = "k" * 64
PSEUDONYMS = Pseudonymiser(KEY)
ITEMS = [f"sku-{i}" for i in range(40)]
CATALOG = ItemCatalog.from_frame(
    pd.DataFrame(
        {"item_id": ITEMS, "category": [f"c{i % 5}" for i in range(40)],
         "brand": [f"b{i % 7}" for i in range(40)]}
    )
)  # fmt: skip
SESSIONS = [(f"cust-{u}", f"s-{u}-{k}") for u in range(12) for k in range(3)]


def make_events(rng: random.Random, n: int, start: int, now: dt.datetime) -> list[dict]:
    out = []
    for k in range(start, start + n):
        user, session = rng.choice(SESSIONS)
        out.append(
            {
                "event_id": f"ev-{k}",
                "event_type": rng.choice(["view", "click", "add_to_cart", "impression"]),
                "event_time": (now - dt.timedelta(seconds=rng.uniform(0, 3000))).isoformat(),
                "user_id": user,
                "session_id": session,
                "item_id": rng.choice(ITEMS),
                "request_id": f"r-{k}",
            }
        )
    return out


JUNK = [
    b"{not json",
    json.dumps({"event_id": "j1", "event_type": "click", "item_id": "sku-1"}).encode(),
    json.dumps(
        {
            "event_id": "j2",
            "event_type": "teleport",
            "event_time": "2026-01-01T00:00:00Z",
            "user_id": "cust-1",
            "item_id": "sku-1",
            "session_id": "s",
        }
    ).encode(),  # fmt: skip
]


def produce(bootstrap: str, topic: str, events: list[dict], extra: list[bytes] = ()) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for e in events:
        p.produce(topic, json.dumps(e).encode(), key=e["session_id"].encode())
    for raw in extra:
        p.produce(topic, raw, key=b"junk")
    p.flush(30)


def expected_store(events: list[dict]) -> SessionStore:
    store = SessionStore()
    store.apply({**e, "user_id": PSEUDONYMS.one(e["user_id"])} for e in events)
    return store


def mismatches(store, expected: SessionStore, at: dt.datetime) -> int:
    cats, brands = CATALOG.attribute_codes(ITEMS)
    bad = 0
    for user, session in SESSIONS:
        pseudonym = PSEUDONYMS.one(user)
        a = store.features(pseudonym, session, at, cats, brands, CATALOG)
        b = expected.features(pseudonym, session, at, cats, brands, CATALOG)
        bad += int((a != b).sum())
    return bad


@pytest.fixture
def topic(broker) -> str:
    name = f"rt-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, name, partitions=3)
    return name


@pytest.fixture
def prefix() -> Iterator[str]:
    name = unique_prefix()
    yield name
    drop_prefix(shared_redis(), name)


def test_the_topic_reaches_the_shared_store_and_resumes_from_its_commits(
    broker, topic: str, prefix: str, tmp_path
) -> None:
    now = dt.datetime.now(dt.UTC)
    rng = random.Random(4)
    first = make_events(rng, 400, 0, now)
    produce(broker.bootstrap, topic, first + first[:50], JUNK)  # 50 redelivered, 3 malformed

    def run() -> OnlineStoreSink:
        store = RedisSessionStore(shared_redis(), prefix=prefix)
        sink = OnlineStoreSink(store, PSEUDONYMS)
        build_app(broker.bootstrap, topic, sink, state_dir=str(tmp_path)).run(timeout=3)
        return sink

    sink = run()
    counted = [e for e in first if e["event_type"] != "impression"]
    assert sink.counts.messages == len(first) + 50 + len(JUNK)
    assert sink.counts.applied == len(counted)
    assert 0 < sink.counts.duplicates <= 50  # in a batch or against the store: never applied
    assert sink.counts.rejected == {
        "malformed_json": 1,
        "missing_required": 1,
        "invalid_event_type": 1,
    }
    store = sink.store
    at = now + dt.timedelta(seconds=1)
    assert mismatches(store, expected_store(first), at) == 0
    assert mismatches(store, expected_store(first), now - dt.timedelta(minutes=20)) == 0

    # the next run starts after the committed offsets: only the new messages are read
    second = make_events(rng, 100, 400, now)
    produce(broker.bootstrap, topic, second)
    sink = run()
    assert sink.counts.messages == len(second)
    assert mismatches(sink.store, expected_store(first + second), at) == 0


@pytest.mark.chaos  # a kill test: with the others, in .ci/run's `-m chaos` run
def test_a_killed_worker_resumes_with_nothing_lost_or_doubled(broker, topic: str, tmp_path) -> None:
    """`flywheel stream` is SIGKILLed while it works through the topic; started again it
    resumes from the committed offsets. The store then holds every event exactly once."""
    now = dt.datetime.now(dt.UTC)
    events = make_events(random.Random(9), 6_000, 0, now)
    produce(broker.bootstrap, topic, events)
    with PrivateRedis() as server:
        env = {
            **os.environ,
            "FLYWHEEL_KAFKA_BOOTSTRAP": broker.bootstrap,
            "FLYWHEEL_KAFKA_TOPIC": topic,
            "FLYWHEEL_ONLINE_STORE": server.url,
            "FLYWHEEL_PSEUDONYM_KEY": KEY,
        }
        command = [sys.executable, "-m", "flywheel_assets.cli.main", "stream",
                   "--idle-timeout", "4", "--state-dir", str(tmp_path)]  # fmt: skip
        client = RedisSessionStore.from_url(server.url).client
        worker = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not any(True for _ in client.scan_iter(match="flywheel:rt:*", count=100)):
            assert worker.poll() is None, worker.stderr.read()
            assert time.monotonic() < deadline, "the worker applied nothing"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        store = RedisSessionStore.from_url(server.url)
        expected = expected_store(events)
        assert mismatches(store, expected, now + dt.timedelta(seconds=1)) == 0
        # every counted event once: the sorted sets hold exactly the expected number
        held = sum(client.zcard(k) for k in client.scan_iter(match="flywheel:rt:*:e", count=1000))
        assert held == expected.applied
