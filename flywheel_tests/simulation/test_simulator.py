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
