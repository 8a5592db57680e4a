"""The Redis session store holds the in-process store's contract, on the real server: the same
values for the same events in any order, redeliveries ignored, one store for every replica."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

import pytest

from flywheel_assets.realtime.redis_store import OnlineStoreUnavailable, RedisSessionStore
from flywheel_assets.realtime.store import SessionStore
from flywheel_tests.realtime.test_store import CATALOG, ITEMS, T0, event, random_events, read
from flywheel_tests.support.redis_server import drop_prefix, shared_redis, unique_prefix


@pytest.fixture
def prefix() -> Iterator[str]:
    client = shared_redis()
    name = unique_prefix()
    yield name
    drop_prefix(client, name)


def redis_store(prefix: str, **kw) -> RedisSessionStore:
    return RedisSessionStore(shared_redis(), prefix=prefix, **kw)


def test_redis_reads_what_the_in_process_store_reads(prefix: str) -> None:
    rng = random.Random(11)
    events = random_events(rng, 400, 3000)
    reach = dt.timedelta(hours=2)
    memory, shared = SessionStore(lateness=reach), redis_store(prefix, lateness=reach)
    memory.apply(events)
    again = events + rng.sample(events, 100)
    rng.shuffle(again)
    for chunk in range(0, len(again), 50):
        shared.apply(again[chunk : chunk + 50])
    assert shared.applied == memory.applied
    for user, session in [("u", "s"), ("v", "t"), ("u", None)]:
        for seconds in (-2500, 0, 10.5, 2999, 4000):
            at = T0 + dt.timedelta(seconds=seconds)
            expected = read(memory, at, user, session)
            assert read(shared, at, user, session).equals(expected), (user, session, seconds)


def test_every_replica_reads_what_any_replica_applied(prefix: str) -> None:
    a, b = redis_store(prefix), redis_store(prefix)
    assert a.apply([event(1, "click", 0, "i0"), event(2, "add_to_cart", 5, "i0")]) == 2
    assert b.apply([event(1, "click", 0, "i0")]) == 0  # redelivered through the other replica
    f = read(b, T0 + dt.timedelta(seconds=10))
    assert f.loc["i1", ["sc_clicks_1h", "sc_carts_1h"]].tolist() == [1, 1]
    assert (read(a, T0 + dt.timedelta(seconds=10)) == f).all().all()
    # sessions expire in Redis after the window and the lateness allowance without a write
    ttl = shared_redis().pttl(a._keys("u", "s")[0])
    assert 0 < ttl <= 2 * 3600 * 1000


def test_a_store_that_cannot_be_reached_says_so() -> None:
    gone = RedisSessionStore.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(OnlineStoreUnavailable, match="Redis online store"):
        gone.apply([event(1, "click", 0)])
    cats, brands = CATALOG.attribute_codes(ITEMS)
    with pytest.raises(OnlineStoreUnavailable):
        gone.features("u", "s", T0, cats, brands, CATALOG)
    assert gone.ping() is False
