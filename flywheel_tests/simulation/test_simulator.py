import datetime as dt

import numpy as np
import pandas as pd

from flywheel_assets.serving.policy import uniform_random_slates
from flywheel_assets.simulation.simulator import ShopSimulator, SimulatorConfig

DAY = dt.date(2026, 1, 1)
SMALL = SimulatorConfig(seed=3, n_users=2_000, n_items=300, sessions_per_day=300)


def random_ranker(c: pd.DataFrame) -> pd.DataFrame:
    return uniform_random_slates(c, k=10, seed=7).assign(
        model_version="cold-start", variant="cold_start"
    )


def test_same_seed_same_day_same_events():
    a = ShopSimulator(SMALL).serve_day(DAY, random_ranker)
    b = ShopSimulator(SMALL).serve_day(DAY, random_ranker)
    pd.testing.assert_frame_equal(a.events, b.events)
    assert a.oracle_share == b.oracle_share


def test_other_seed_other_events():
    a = ShopSimulator(SMALL).serve_day(DAY, random_ranker)
    b = ShopSimulator(SimulatorConfig(**{**SMALL.__dict__, "seed": 4})).serve_day(
        DAY, random_ranker
    )
    assert not a.events["user_id"].equals(b.events["user_id"])


def test_default_world_size_and_personalisation_matters():
    sim = ShopSimulator(SimulatorConfig(seed=1))
    assert len(sim.catalog_records(DAY)) >= 1_000
    assert len(sim.user_records(DAY)) >= 10_000
    result = sim.serve_day(DAY, random_ranker)
    # Random < popularity < oracle, and popularity clearly below the oracle.
    assert result.oracle_share < result.baseline_share < 0.8
    assert (
        result.oracle_purchase_rate
        > result.popularity_purchase_rate
        > result.expected_purchase_rate
    )
    assert len(result.events) >= 20_000


def test_funnel_is_ordered_within_each_impression():
    result = ShopSimulator(SMALL).serve_day(DAY, random_ranker)
    ev = result.events
    counts = ev["event_type"].value_counts()
    assert (
        counts["impression"]
        > counts["view"]
        > counts["click"]
        > counts["add_to_cart"]
        >= counts["purchase"]
        > 0
    )
    # Every purchase has an earlier add_to_cart and click of the same item in the same request.
    key = ["request_id", "item_id"]
    first = ev.pivot_table(index=key, columns="event_type", values="event_time", aggfunc="min")
    bought = first[first["purchase"].notna()]
    assert (bought["click"] < bought["add_to_cart"]).all()
    assert (bought["add_to_cart"] < bought["purchase"]).all()
    assert (bought["impression"] <= bought["view"]).all()


def test_position_bias_lowers_engagement_down_the_slate():
    result = ShopSimulator(SimulatorConfig(seed=5, sessions_per_day=800)).serve_day(
        DAY, random_ranker
    )
    ev = result.events
    views = ev[ev["event_type"] == "view"].groupby("position").size()
    imps = ev[ev["event_type"] == "impression"].groupby("position").size()
    rate = (views / imps).to_numpy()
    assert rate[0] > rate[4] > rate[9]


def test_new_users_and_items_arrive_and_prices_change():
    sim = ShopSimulator(SMALL)
    day2 = DAY + dt.timedelta(days=1)
    users = sim.user_records(day2)
    items = sim.catalog_records(day2)
    assert len(users) == SMALL.new_users_per_day
    assert users["signup_date"].eq(str(np.datetime64(day2))).all()
    assert len(items) == SMALL.price_changes_per_day + SMALL.new_items_per_day


def test_oracle_ranking_reaches_oracle_share_one():
    sim = ShopSimulator(SMALL)

    def oracle(c: pd.DataFrame) -> pd.DataFrame:
        users = c["user_id"].str.split("-").str[1].astype(int).to_numpy()
        items = c["item_id"].str.split("-").str[1].astype(int).to_numpy()
        p = sim.purchase_probability(users, items)
        from flywheel_assets.serving.policy import epsilon_greedy_slates

        return epsilon_greedy_slates(c, p, k=10, epsilon=0.0, seed=0).assign(
            model_version="o", variant="oracle"
        )

    result = sim.serve_day(DAY, oracle)
    assert abs(result.oracle_share - 1.0) < 1e-9


def test_feed_adds_a_little_deterministic_junk_to_the_true_events():
    result = ShopSimulator(SMALL).serve_day(DAY, random_ranker)
    feed, events = result.feed, result.events
    n_junk = len(feed) - len(events)
    assert n_junk == round(len(events) * SMALL.junk_share) > 0
    pd.testing.assert_frame_equal(
        feed.iloc[: len(events)].drop(columns="event_time"), events.drop(columns="event_time")
    )
    junk = feed.iloc[len(events) :]
    broken = (
        (junk["event_type"] == "teleport")
        | (junk["item_id"] == "sku-unknown")
        | (junk["event_time"] == "yesterday-ish")
    )
    assert broken.any() and (~broken).any()  # some broken rows, some plain redeliveries
    assert set(junk.loc[~broken, "event_id"]) <= set(events["event_id"])
    again = ShopSimulator(SMALL).serve_day(DAY, random_ranker).feed
    pd.testing.assert_frame_equal(feed, again)


def test_the_static_world_is_exactly_the_original_shop():
    """`--world static` must give today's figures: three days' feeds and purchase rates hash
    to what the simulator produced before worlds existed (computed at commit ccb08f4 with
    the same code as below)."""
    import hashlib

    def ranker(c: pd.DataFrame) -> pd.DataFrame:
        return uniform_random_slates(c, k=10, seed=4).assign(model_version="m", variant="champion")

    config = SimulatorConfig.for_world(
        "static", seed=9, n_users=1500, n_items=200, sessions_per_day=300
    )
    assert config == SimulatorConfig(seed=9, n_users=1500, n_items=200, sessions_per_day=300)
    sim = ShopSimulator(config, start=DAY)
    h = hashlib.sha256()
    for d in range(3):
        r = sim.serve_day(DAY + dt.timedelta(days=d), ranker)
        h.update(pd.util.hash_pandas_object(r.feed.astype(str), index=False).values.tobytes())
        h.update(
            f"{r.expected_purchase_rate:.12f} {r.oracle_purchase_rate:.12f} "
            f"{r.popularity_purchase_rate:.12f}".encode()
        )
    assert h.hexdigest() == "bd3bc30919475538fb1470cb85c17503b6127a3eb3d9c82665accd1ba5634859"


DYNAMIC = SimulatorConfig.for_world(
    "dynamic", seed=3, n_users=2_000, n_items=300, sessions_per_day=600
)


def test_dynamic_sessions_come_for_a_category_that_only_their_clicks_reveal():
    sim = ShopSimulator(DYNAMIC)
    requests = sim.requests(DAY)
    intents = requests.groupby("session_id")["_intent"].first()
    share = (intents >= 0).mean()
    assert abs(share - DYNAMIC.intent_share) < 0.06
    # nothing but the session's behaviour reveals it: not the candidates' order
    slot = requests.groupby("request_id").cumcount()
    cat_of = np.asarray(sim._item_cat)[requests["_item_idx"].to_numpy()]
    intent_slots = slot[(cat_of == requests["_intent"].to_numpy())]
    assert abs(intent_slots.mean() - (DYNAMIC.candidates_per_request - 1) / 2) < 1.0
    # the intent is not the user's taste: users with several sessions have different intents
    by_user = requests.groupby("user_id")["_intent"].nunique()
    assert (by_user > 1).any()
    result = sim.serve_day(DAY, random_ranker)
    clicks = result.events[result.events["event_type"] == "click"].merge(
        intents.rename("intent").reset_index(), on="session_id"
    )
    item_cat = {f"sku-{i:05d}": c for i, c in enumerate(sim._item_cat)}
    in_intent = clicks["item_id"].map(item_cat) == clicks["intent"]
    # a session's clicks go to its intent category far more than its candidates' share of it
    # (measured: a small catalog may hold fewer items of a category than the share asks for)
    with_intent = requests["_intent"] >= 0
    candidate_share = (cat_of == requests["_intent"].to_numpy())[with_intent].mean()
    assert in_intent[clicks["intent"] >= 0].mean() > 1.5 * candidate_share
    # and the oracle, which knows the intent, does better than in the same shop without it
    static = ShopSimulator(SimulatorConfig(**{**DYNAMIC.__dict__, "intent_share": 0.0}))
    assert (
        result.oracle_purchase_rate
        > 1.1 * static.serve_day(DAY, random_ranker).oracle_purchase_rate
    )


def test_a_realtime_ranker_sees_each_sessions_earlier_events_before_its_next_request():
    class Observing:
        realtime = True

        def __init__(self) -> None:
            self.seen: set[str] = set()
            self.missing = 0
            self.calls = 0

        def observe(self, events: pd.DataFrame) -> None:
            self.seen |= set(events["request_id"])

        def __call__(self, c: pd.DataFrame) -> pd.DataFrame:
            self.calls += 1
            # every earlier request of these sessions was observed before this one
            earlier = requests[
                requests["session_id"].isin(c["session_id"])
                & (requests["_wave"] < requests.loc[c.index.min(), "_wave"])
            ]
            self.missing += len(set(earlier["request_id"]) - self.seen)
            return random_ranker(c)

    sim = ShopSimulator(DYNAMIC)
    requests = sim.requests(DAY)
    ranker = Observing()
    result = sim.serve_day(DAY, ranker)
    assert ranker.calls == DYNAMIC.max_requests_per_session
    assert ranker.missing == 0
    assert result.events["request_id"].nunique() == requests["request_id"].nunique()
