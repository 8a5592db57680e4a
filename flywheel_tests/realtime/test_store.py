"""The in-process session store against the declaration, by brute force: the window, strictness,
idempotency, order independence, isolation between users and sessions, bounded memory."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pandas as pd
import pytest

from flywheel_assets.realtime.features import REALTIME_FEATURES, REALTIME_NAMES, WINDOW
from flywheel_assets.realtime.store import ItemCatalog, SessionStore, micros

T0 = dt.datetime(2026, 5, 1, 12, 0, 0)
CATALOG = ItemCatalog.from_frame(
    pd.DataFrame(
        {
            "item_id": [f"i{n}" for n in range(12)],
            "category": ["a", "a", "a", "b", "b", "b", "c", "c", "c", "d", None, "d"],
            "brand": ["x", "y", "z", "x", "y", "z", "x", "y", "z", "x", "y", None],
        }
    )
)
ITEMS = [f"i{n}" for n in range(12)] + ["i-unknown"]


def event(n: int, etype: str, seconds: float, item: str = "i0", user: str = "u", session="s"):
    return {
        "event_id": f"e{n}",
        "event_type": etype,
        "event_time": T0 + dt.timedelta(seconds=seconds),
        "user_id": user,
        "session_id": session,
        "item_id": item,
    }


def random_events(rng: random.Random, n: int, spread_seconds: float) -> list[dict]:
    """Events of every kind, two users, two sessions and none, times within +-spread."""
    return [
        event(
            k,
            rng.choice(["view", "click", "add_to_cart", "purchase", "impression"]),
            rng.uniform(-spread_seconds, spread_seconds),
            rng.choice(ITEMS),
            rng.choice(["u", "v"]),
            rng.choice(["s", "t", None]),
        )
        for k in range(n)
    ]


def read(store: SessionStore, at: dt.datetime, user="u", session="s") -> pd.DataFrame:
    cats, brands = CATALOG.attribute_codes(ITEMS)
    values = store.features(user, session, at, cats, brands, CATALOG)
    return pd.DataFrame(values, columns=list(REALTIME_NAMES), index=ITEMS)


def brute_force(events: list[dict], user: str, session: str, at: dt.datetime) -> pd.DataFrame:
    """The declaration read literally: one loop per candidate, feature and event."""
    kinds = {"view": "view", "click": "click", "add_to_cart": "add_to_cart"}
    seen, inside = set(), []
    for e in events:
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        t = pd.Timestamp(e["event_time"]).tz_localize(None).to_pydatetime()
        if (e["user_id"], e["session_id"]) == (user, session) and at - WINDOW <= t < at:
            inside.append(e)
    rows = {}
    for item in ITEMS:
        cat, brand = CATALOG.items.get(item, (None, None))
        values = []
        for f in REALTIME_FEATURES:
            n = 0
            for e in inside:
                if kinds.get(e["event_type"]) != f.event_type:
                    continue
                ecat, ebrand = CATALOG.items.get(e["item_id"], (None, None))
                if f.scope == "session":
                    n += 1
                elif f.scope == "session_category":
                    n += cat is not None and cat < CATALOG.n_categories and ecat == cat
                else:
                    n += brand is not None and brand < CATALOG.n_brands and ebrand == brand
            values.append(float(n))
        rows[item] = values
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(REALTIME_NAMES))


def test_a_request_counts_its_sessions_last_hour_strictly_before_it() -> None:
    store = SessionStore()
    store.apply(
        [
            event(1, "view", 0, "i0"),
            event(2, "click", 10, "i1"),  # category a, brand y
            event(3, "add_to_cart", 20, "i1"),
            event(4, "click", 30, "i3"),  # category b, brand x
            event(5, "purchase", 40, "i3"),  # not counted
            event(6, "impression", 40, "i4"),  # not counted
            event(7, "click", 3600, "i6"),  # at the request time: not before it
        ]
    )
    at = T0 + dt.timedelta(seconds=3600)
    f = read(store, at)
    assert f.loc["i2", ["s_views_1h", "s_clicks_1h", "s_carts_1h"]].tolist() == [1, 2, 1]
    assert f.loc["i2", ["sc_views_1h", "sc_clicks_1h", "sc_carts_1h"]].tolist() == [1, 1, 1]
    assert f.loc["i4", ["sc_clicks_1h", "sb_clicks_1h", "sb_carts_1h"]].tolist() == [1, 1, 1]
    assert f.loc["i9", "sb_clicks_1h"] == 1  # brand x, clicked through i3
    # the window's start is inside it, one microsecond before it is not
    assert read(store, at + dt.timedelta(microseconds=1)).loc["i2", "s_views_1h"] == 0
    # unknown items and unknown attributes count nothing in their scope
    assert f.loc["i-unknown", "sc_views_1h"] == 0 and f.loc["i-unknown", "s_views_1h"] == 1
    assert f.loc["i10", "sc_clicks_1h"] == 0 and f.loc["i11", "sb_clicks_1h"] == 0
    # a session with nothing yet has zeros; a request without a session has none at all
    assert (read(store, at, session="other").to_numpy() == 0).all()
    assert np.isnan(read(store, at, session=None).to_numpy()).all()
    # the same session id of another user is another session
    assert (read(store, at, user="v").to_numpy() == 0).all()


def test_applying_is_idempotent_and_order_free_and_equals_the_declaration() -> None:
    rng = random.Random(3)
    events = random_events(rng, 600, 4000)
    # Events over 8,000 s arrive in any order: keep them all (see the bound's own test).
    reach = dt.timedelta(hours=2)
    in_order, shuffled = SessionStore(lateness=reach), SessionStore(lateness=reach)
    assert in_order.apply(events) > 0
    again = rng.sample(events, 200)
    redelivered = events + again
    rng.shuffle(redelivered)
    for chunk in range(0, len(redelivered), 37):
        shuffled.apply(redelivered[chunk : chunk + 37])
    assert in_order.applied == shuffled.applied
    counted = [
        e for e in again if e["session_id"] and e["event_type"] in ("view", "click", "add_to_cart")
    ]
    assert shuffled.duplicates == len(counted) > 0
    for user, session in [("u", "s"), ("v", "t"), ("u", "t")]:
        for seconds in (-3000, -10, 0, 1234.5, 3999, 5000):
            at = T0 + dt.timedelta(seconds=seconds)
            expected = brute_force(events, user, session, at)
            pd.testing.assert_frame_equal(
                read(in_order, at, user, session), expected, check_dtype=False
            )
            pd.testing.assert_frame_equal(
                read(shuffled, at, user, session), expected, check_dtype=False
            )


def test_times_in_any_form_are_the_same_instant() -> None:
    naive = dt.datetime(2026, 5, 1, 12, 0, 0, 123456)
    assert micros(naive) == micros(naive.replace(tzinfo=dt.UTC))
    assert micros(naive) == micros("2026-05-01T12:00:00.123456Z")
    assert micros(naive) == micros(pd.Timestamp(naive))
    assert micros("2026-05-01T14:00:00.123456+02:00") == micros(naive)


def test_memory_is_bounded_and_what_is_kept_reads_the_same() -> None:
    store = SessionStore(max_sessions=3, max_events_per_session=5)
    for n in range(5):
        store.apply([event(n, "click", n, "i0", session=f"s{n}")])
    assert len(store) == 3 and store.stats()["sessions_evicted"] == 2
    at = T0 + dt.timedelta(seconds=100)
    assert read(store, at, session="s0").loc["i0", "s_clicks_1h"] == 0  # evicted, oldest write
    assert read(store, at, session="s4").loc["i0", "s_clicks_1h"] == 1
    # one session: only its newest events within reach are kept; a redelivered old one stays
    # a duplicate
    store = SessionStore(max_events_per_session=5)
    store.apply([event(n, "view", n * 60, "i0") for n in range(30)])
    at = T0 + dt.timedelta(minutes=30)
    assert read(store, at).loc["i0", "s_views_1h"] == 5
    assert store.apply([event(0, "view", 0, "i0")]) == 0


@pytest.mark.parametrize(
    "bad", [{"event_type": "click"}, {"event_type": "view", "session_id": None}]
)
def test_events_that_are_not_real_time_input_are_skipped(bad: dict) -> None:
    store = SessionStore()
    e = {**event(1, "view", 0), **bad}
    if "session_id" not in bad:
        e["session_id"] = float("nan")  # a missing session read from a frame
    assert store.apply([e]) == 0
