"""A seeded shop simulator that plays the live shop for the flywheel.

It knows the truth (every user's hidden taste), so it can say for each day what the serving
policy was worth against a popularity ranker and an oracle on the very same requests.

The truth model:
- items have a category, brand and price; their hidden vector mixes a category and a brand
  embedding, plus a per-item quality;
- users belong to hidden segments, each with a preference vector and a price sensitivity; the
  only observable hint of a user's segment is a noisy ``region`` attribute;
- a shown item is examined with a position-dependent probability (position bias); an examined
  item is viewed, then clicked, added to cart and purchased with probabilities that all rise
  with the user's affinity for the item;
- in the dynamic world (``SimulatorConfig.for_world("dynamic")``), a share of sessions has an
  intent: a category the session came for, drawn independently of the user's long-run taste.
  It raises the appeal of that category's items for the session only, and the shop's retrieval
  (search, browsing) brings more of them among the session's candidates. Only the session's
  own interactions reveal it, so a ranker must react within the session to use it
  (docs/realtime.md).

No Dagster in here: the simulator is plain Python so it can be unit-tested and reused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

EVENT_STAGES = ("view", "click", "add_to_cart", "purchase")


@dataclass(frozen=True)
class SimulatorConfig:
    seed: int = 1
    n_items: int = 1_000
    n_users: int = 10_000
    new_users_per_day: int = 150
    new_items_per_day: int = 5
    price_changes_per_day: int = 20
    n_categories: int = 20
    n_brands: int = 60
    n_segments: int = 8
    dim: int = 8
    sessions_per_day: int = 1_300
    max_requests_per_session: int = 3
    candidates_per_request: int = 60
    slate_size: int = 10
    position_bias_power: float = 0.9
    region_noise: float = 0.1  # share of users whose observable region is not their segment's
    taste_strength: float = 2.4
    brand_weight: float = 0.25  # how much of an item's appeal comes from its brand vs its category
    item_noise: float = 0.1  # item-specific appeal no attribute explains
    quality_std: float = 0.3  # appeal every user agrees on
    junk_share: float = 0.002  # share of extra malformed or duplicated event rows in the feed
    price_sensitivity: float = 0.6
    # The dynamic world (WORLDS): zero here, so the static world is exactly the original one.
    intent_share: float = 0.0  # share of sessions that come for one category
    intent_strength: float = 0.0  # appeal added to that category's items in such a session
    intent_candidates: float = 0.0  # share of such a session's candidates from the category

    @classmethod
    def for_world(cls, world: str, **overrides: object) -> SimulatorConfig:
        """The configuration of a named world (``static`` or ``dynamic``) with overrides."""
        if world not in WORLDS:
            raise ValueError(f"world must be one of {sorted(WORLDS)}, got {world!r}")
        return cls(**{**WORLDS[world], **overrides})  # type: ignore[arg-type]

    @property
    def dynamic(self) -> bool:
        return self.intent_share > 0


# Effect sizes of the dynamic world, and why (docs/decisions.md, 72): in 70% of sessions the
# intent category's appeal rises by 2.0 on the affinity scale, which multiplies an item's
# purchase probability by about 10 for an average user; half of such a session's candidates
# come from the category (as a search would bring them), in random order.
WORLDS: dict[str, dict[str, float]] = {
    "static": {},
    "dynamic": {"intent_share": 0.7, "intent_strength": 2.0, "intent_candidates": 0.5},
}


@dataclass
class DayResult:
    """What one simulated day produced."""

    day: dt.date
    events: pd.DataFrame  # the true events in the event contract, raw user ids
    feed: pd.DataFrame  # what the shop's feed delivers: the events plus a little junk
    served: pd.DataFrame  # the slates as served: request_id, item_id, position, propensity, ...
    expected_purchase_rate: float  # per request, of the policy that served
    popularity_purchase_rate: float
    oracle_purchase_rate: float
    n_requests: int
    # The order lines the purchases became (the orders source, docs/orders.md) ...
    orders: pd.DataFrame = field(default_factory=pd.DataFrame)
    # ... and the truth behind them: each item's expected units sold on the day under the
    # slates served (item_id, expected_units): what a perfect demand forecast would say.
    demand: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def oracle_share(self) -> float:
        return self.expected_purchase_rate / self.oracle_purchase_rate

    @property
    def baseline_share(self) -> float:
        return self.popularity_purchase_rate / self.oracle_purchase_rate


# Units beyond the first in an order line, on average (Poisson): most lines are one unit.
ORDER_EXTRA_UNITS = 0.3

Ranker = Callable[[pd.DataFrame], pd.DataFrame]
"""A serving policy: takes candidates (request_id, session_id, user_id, item_id, request_time)
and returns the shown slates: request_id, item_id, position (0-based), propensity,
model_version, variant."""


@dataclass
class ShopSimulator:
    config: SimulatorConfig = field(default_factory=SimulatorConfig)
    start: dt.date = dt.date(2026, 1, 1)

    def __post_init__(self) -> None:
        c = self.config
        rng = np.random.default_rng(c.seed)
        self._cat_emb = rng.normal(size=(c.n_categories, c.dim))
        self._brand_emb = rng.normal(size=(c.n_brands, c.dim))
        self._seg_pref = rng.normal(size=(c.n_segments, c.dim))
        self._seg_price = rng.uniform(0.2, 1.0, size=c.n_segments) * c.price_sensitivity
        self._item_cat = np.empty(0, dtype=int)
        self._item_brand = np.empty(0, dtype=int)
        self._item_vec = np.empty((0, c.dim))
        self._item_quality = np.empty(0)
        self._item_price = np.empty(0)
        self._item_added = np.empty(0, dtype="datetime64[D]")
        self._add_items(c.n_items, self.start, rng)
        self._user_seg = np.empty(0, dtype=int)
        self._user_vec = np.empty((0, c.dim))
        self._user_region = np.empty(0, dtype=int)
        self._user_device = np.empty(0, dtype=int)
        self._user_activity = np.empty(0)
        self._user_signup = np.empty(0, dtype="datetime64[D]")
        self._add_users(c.n_users, self.start, rng)
        self._catalog_changes: dict[dt.date, np.ndarray] = {self.start: np.arange(c.n_items)}
        self._user_changes: dict[dt.date, np.ndarray] = {self.start: np.arange(c.n_users)}
        self._last_day = self.start

    # ----- world state ---------------------------------------------------------------------

    def _add_items(self, n: int, day: dt.date, rng: np.random.Generator) -> None:
        c = self.config
        cats = rng.integers(0, c.n_categories, n)
        brands = rng.integers(0, c.n_brands, n)
        vec = (
            self._cat_emb[cats]
            + c.brand_weight * self._brand_emb[brands]
            + c.item_noise * rng.normal(size=(n, c.dim))
        )
        price = np.round(np.exp(rng.normal(3.2, 0.8, n)), 2)
        self._item_cat = np.concatenate([self._item_cat, cats])
        self._item_brand = np.concatenate([self._item_brand, brands])
        self._item_vec = np.vstack([self._item_vec, vec])
        self._item_quality = np.concatenate([self._item_quality, rng.normal(0, c.quality_std, n)])
        self._item_price = np.concatenate([self._item_price, price])
        self._item_added = np.concatenate([self._item_added, np.full(n, np.datetime64(day, "D"))])

    def _add_users(self, n: int, day: dt.date, rng: np.random.Generator) -> None:
        c = self.config
        seg = rng.integers(0, c.n_segments, n)
        vec = self._seg_pref[seg] + 0.35 * rng.normal(size=(n, c.dim))
        noisy = rng.random(n) < c.region_noise
        region = np.where(noisy, rng.integers(0, c.n_segments, n), seg)
        self._user_seg = np.concatenate([self._user_seg, seg])
        self._user_vec = np.vstack([self._user_vec, vec])
        self._user_region = np.concatenate([self._user_region, region])
        self._user_device = np.concatenate([self._user_device, rng.integers(0, 3, n)])
        self._user_activity = np.concatenate([self._user_activity, rng.lognormal(0, 1.0, n)])
        self._user_signup = np.concatenate([self._user_signup, np.full(n, np.datetime64(day, "D"))])

    def _day_rng(self, day: dt.date, stream: int) -> np.random.Generator:
        # One independent stream per (seed, day, purpose): a day's draws do not depend on how
        # many draws earlier days made, so reruns and partial runs agree.
        return np.random.default_rng([self.config.seed, day.toordinal(), stream])

    def advance_to(self, day: dt.date) -> None:
        """Evolve the world (new users, new items, price changes) up to ``day``."""
        c = self.config
        while self._last_day < day:
            nxt = self._last_day + dt.timedelta(days=1)
            rng = self._day_rng(nxt, 0)
            n_items_before, n_users_before = len(self._item_cat), len(self._user_seg)
            self._add_items(c.new_items_per_day, nxt, rng)
            changed = rng.choice(n_items_before, c.price_changes_per_day, replace=False)
            self._item_price[changed] = np.round(
                self._item_price[changed] * rng.uniform(0.8, 1.2, len(changed)), 2
            )
            self._add_users(c.new_users_per_day, nxt, rng)
            self._catalog_changes[nxt] = np.concatenate(
                [changed, np.arange(n_items_before, len(self._item_cat))]
            )
            self._user_changes[nxt] = np.arange(n_users_before, len(self._user_seg))
            self._last_day = nxt

    # ----- landing records for catalog and users -------------------------------------------

    def catalog_records(self, day: dt.date, *, full: bool = False) -> pd.DataFrame:
        """Items new or changed on ``day`` (the whole catalog on the first day, or with
        ``full``: every item live on ``day``, as a shop's full export)."""
        self.advance_to(day)
        idx = (
            np.flatnonzero(self._item_added <= np.datetime64(day, "D"))
            if full
            else self._catalog_changes.get(day, np.empty(0, dtype=int))
        )
        return pd.DataFrame(
            {
                "item_id": [item_id(i) for i in idx],
                "title": [f"Item {i}" for i in idx],
                "category": [f"cat_{self._item_cat[i]:02d}" for i in idx],
                "brand": [f"brand_{self._item_brand[i]:02d}" for i in idx],
                "price": self._item_price[idx],
            }
        )

    def user_records(self, day: dt.date, *, full: bool = False) -> pd.DataFrame:
        """Users who signed up on ``day`` (everyone on the first day, or with ``full``: everyone
        signed up by ``day``), with personal fields."""
        self.advance_to(day)
        idx = (
            np.flatnonzero(self._user_signup <= np.datetime64(day, "D"))
            if full
            else self._user_changes.get(day, np.empty(0, dtype=int))
        )
        return pd.DataFrame(
            {
                "user_id": [raw_user_id(u) for u in idx],
                "email": [f"{raw_user_id(u)}@example.com" for u in idx],
                "region": [f"region_{self._user_region[u]}" for u in idx],
                "device": [("mobile", "desktop", "tablet")[self._user_device[u]] for u in idx],
                "signup_date": [str(self._user_signup[u]) for u in idx],
            }
        )

    # ----- truth -----------------------------------------------------------------------------

    def _affinity(
        self, users: np.ndarray, items: np.ndarray, intent: np.ndarray | None = None
    ) -> np.ndarray:
        c = self.config
        taste = np.einsum("ij,ij->i", self._user_vec[users], self._item_vec[items]) / np.sqrt(c.dim)
        log_price = np.log(self._item_price[items]) - 3.2
        a = (
            c.taste_strength * taste / 2.0
            + self._item_quality[items]
            - self._seg_price[self._user_seg[users]] * log_price
        )
        if intent is not None and c.intent_strength:
            a = a + c.intent_strength * (self._item_cat[items] == intent)
        return a

    def funnel_probabilities(
        self, users: np.ndarray, items: np.ndarray, intent: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Ground-truth probabilities of each funnel step given the item was examined;
        ``intent``: each pair's session intent category (-1: none)."""
        a = self._affinity(users, items, intent)
        p_view = 0.35 + 0.3 * _sigmoid(a)
        p_click = _sigmoid(a - 1.5)
        p_cart = _sigmoid(a - 0.5)
        p_buy = 0.3 + 0.4 * _sigmoid(a)
        return {"view": p_view, "click": p_click, "add_to_cart": p_cart, "purchase": p_buy}

    def purchase_probability(
        self, users: np.ndarray, items: np.ndarray, intent: np.ndarray | None = None
    ) -> np.ndarray:
        p = self.funnel_probabilities(users, items, intent)
        return p["view"] * p["click"] * p["add_to_cart"] * p["purchase"]

    def examination(self, positions: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + positions) ** self.config.position_bias_power

    # ----- a day of traffic ------------------------------------------------------------------

    def requests(self, day: dt.date) -> pd.DataFrame:
        """The day's ranking requests with their candidate items (the shop's retrieval)."""
        self.advance_to(day)
        c = self.config
        rng = self._day_rng(day, 1)
        eligible = np.flatnonzero(self._user_signup <= np.datetime64(day, "D"))
        weights = self._user_activity[eligible] / self._user_activity[eligible].sum()
        session_users = rng.choice(eligible, c.sessions_per_day, p=weights)
        n_req = rng.integers(1, c.max_requests_per_session + 1, c.sessions_per_day)
        req_session = np.repeat(np.arange(c.sessions_per_day), n_req)
        req_user = session_users[req_session]
        # Sessions start over the day; requests in a session follow a few minutes apart, and
        # the whole funnel stays inside the day.
        session_start = rng.uniform(0, 22 * 3600, c.sessions_per_day)
        order_in_session = np.concatenate([np.arange(k) for k in n_req])
        req_seconds = session_start[req_session] + order_in_session * rng.uniform(
            30, 300, len(req_session)
        )
        n_requests = len(req_session)
        live_items = np.flatnonzero(self._item_added <= np.datetime64(day, "D"))
        cand = np.stack(
            [
                rng.choice(live_items, c.candidates_per_request, replace=False)
                for _ in range(n_requests)
            ]
        )
        intent = np.full(c.sessions_per_day, -1)
        if c.dynamic:
            intent = self._session_intents(day, cand, req_session, live_items)
        day_ts = pd.Timestamp(day)
        request_ids = np.array([f"r{day:%Y%m%d}-{i:06d}" for i in range(n_requests)])
        session_ids = np.array([f"s{day:%Y%m%d}-{s:06d}" for s in req_session])
        k = c.candidates_per_request
        return pd.DataFrame(
            {
                "request_id": np.repeat(request_ids, k),
                "session_id": np.repeat(session_ids, k),
                "user_id": np.repeat([raw_user_id(u) for u in req_user], k),
                "item_id": [item_id(i) for i in cand.ravel()],
                "request_time": np.repeat(
                    day_ts + pd.to_timedelta(np.round(req_seconds), unit="s"), k
                ),
                "_user_idx": np.repeat(req_user, k),
                "_item_idx": cand.ravel(),
                "_intent": np.repeat(intent[req_session], k),
                "_wave": np.repeat(order_in_session, k),
            }
        )

    def _session_intents(
        self, day: dt.date, cand: np.ndarray, req_session: np.ndarray, live_items: np.ndarray
    ) -> np.ndarray:
        """Each session's intent category (-1: none); in place, a share of an intent
        session's candidates come from that category, in random order. Its own random stream,
        so the static world's draws are untouched."""
        c = self.config
        rng = self._day_rng(day, 4)
        n_sessions = c.sessions_per_day
        intent = np.where(
            rng.random(n_sessions) < c.intent_share,
            rng.integers(0, c.n_categories, n_sessions),
            -1,
        )
        m = int(round(c.intent_candidates * c.candidates_per_request))
        live_cat = self._item_cat[live_items]
        for r in np.flatnonzero(intent[req_session] >= 0):
            pool = live_items[live_cat == intent[req_session[r]]]
            picked = rng.choice(pool, min(m, len(pool)), replace=False)
            chosen = set(picked)
            rest = [i for i in cand[r] if i not in chosen]
            # shuffled: the candidates' order must not tell a ranker the intent
            cand[r] = rng.permutation(np.concatenate([picked, rest[: len(cand[r]) - len(picked)]]))
        return intent

    def _expected_best(self, cands: pd.DataFrame, score: np.ndarray) -> float:
        """Expected purchases per request when each request shows its top-k by ``score``."""
        k = self.config.slate_size
        frame = pd.DataFrame(
            {
                "request_id": cands["request_id"].to_numpy(),
                "score": score,
                "p": cands["_p"].to_numpy(),
            }
        )
        frame = frame.sort_values(["request_id", "score"], ascending=[True, False], kind="stable")
        frame["pos"] = frame.groupby("request_id", sort=False).cumcount()
        top = frame[frame["pos"] < k]
        return float(
            (self.examination(top["pos"].to_numpy()) * top["p"]).sum()
            / frame["request_id"].nunique()
        )

    def popularity_scores(self, items: np.ndarray) -> np.ndarray:
        """True mean purchase probability of each item over the whole user population: the best
        ranker that does not know who is asking."""
        users = np.arange(len(self._user_seg))
        sample = users[:: max(1, len(users) // 2000)]
        uniq, inverse = np.unique(items, return_inverse=True)
        pop = np.empty(len(uniq))
        chunk = max(1, 2_000_000 // len(sample))  # bound memory: ~2M (user, item) pairs at a time
        for start in range(0, len(uniq), chunk):
            block = uniq[start : start + chunk]
            p = self.purchase_probability(
                np.tile(sample, len(block)), np.repeat(block, len(sample))
            )
            pop[start : start + chunk] = p.reshape(len(block), len(sample)).mean(axis=1)
        return pop[inverse]

    def serve_day(self, day: dt.date, ranker: Ranker) -> DayResult:
        """Serve one day's requests with ``ranker``, simulate the users, return the events.

        A ranker that reacts within a session (its ``realtime`` attribute is true) is called
        once per wave of requests (every session's first request, then every second one, ...)
        and is sent each wave's events through its ``observe`` method before the next, as a
        shop's event stream would; other rankers get the whole day at once."""
        c = self.config
        cands = self.requests(day)
        cands["_p"] = self.purchase_probability(
            cands["_user_idx"].to_numpy(),
            cands["_item_idx"].to_numpy(),
            cands["_intent"].to_numpy() if c.dynamic else None,
        )
        observe = getattr(ranker, "observe", None) if getattr(ranker, "realtime", False) else None
        if observe is None:
            served = self._served(cands, ranker)
            exam = self.examination(served["position"].to_numpy())
            events = _with_ids(day, self._feedback(served, exam, self._day_rng(day, 2)))
        else:
            served_parts, event_parts = [], []
            for wave in sorted(cands["_wave"].unique()):
                part = self._served(cands[cands["_wave"] == wave], ranker)
                exam_part = self.examination(part["position"].to_numpy())
                events_part = self._feedback(part, exam_part, self._day_rng(day, 10 + int(wave)))
                observe(
                    events_part.assign(event_id=[f"w{wave}-{i}" for i in range(len(events_part))])
                )
                served_parts.append(part)
                event_parts.append(events_part)
            served = pd.concat(served_parts, ignore_index=True)
            exam = self.examination(served["position"].to_numpy())
            events = _with_ids(day, pd.concat(event_parts, ignore_index=True))
        n_requests = cands["request_id"].nunique()
        expected = float((exam * served["_p"]).sum() / n_requests)
        # Each purchase is an order line of 1 + Poisson(ORDER_EXTRA_UNITS) units; the expected
        # units of an item are its shown slots' purchase probabilities times that mean.
        demand = (
            pd.DataFrame({"item_id": served["item_id"], "expected_units": exam * served["_p"]})
            .groupby("item_id", as_index=False)["expected_units"]
            .sum()
            .assign(expected_units=lambda d: d["expected_units"] * (1 + ORDER_EXTRA_UNITS))
        )
        oracle = self._expected_best(cands, cands["_p"].to_numpy())
        popularity = self._expected_best(
            cands, self.popularity_scores(cands["_item_idx"].to_numpy())
        )
        return DayResult(
            day=day,
            events=events,
            feed=self.feed(day, events),
            served=served.drop(columns=["_user_idx", "_item_idx", "_p", "_intent"]),
            expected_purchase_rate=expected,
            popularity_purchase_rate=popularity,
            oracle_purchase_rate=oracle,
            n_requests=int(n_requests),
            orders=self.orders(day, events),
            demand=demand,
        )

    def _served(self, cands: pd.DataFrame, ranker: Ranker) -> pd.DataFrame:
        """The ranker's slates for ``cands``, checked, with the truth the users act on."""
        public = cands[["request_id", "session_id", "user_id", "item_id", "request_time"]]
        served = ranker(public.copy())
        _check_slates(served, public, self.config.slate_size)
        served = served.merge(
            cands[
                [
                    "request_id",
                    "item_id",
                    "session_id",
                    "user_id",
                    "request_time",
                    "_user_idx",
                    "_item_idx",
                    "_intent",
                    "_p",
                ]
            ],
            on=["request_id", "item_id"],
            how="left",
        )
        served["price"] = self._item_price[served["_item_idx"].to_numpy()]
        return served

    def _feedback(
        self, served: pd.DataFrame, exam: np.ndarray, rng: np.random.Generator
    ) -> pd.DataFrame:
        """The users' events on ``served`` (impressions, then the funnel), without ids."""
        probs = self.funnel_probabilities(
            served["_user_idx"].to_numpy(),
            served["_item_idx"].to_numpy(),
            served["_intent"].to_numpy() if self.config.dynamic else None,
        )
        # Each stage happens only if the previous one did; examination gates the view.
        alive = rng.random(len(served)) < exam
        frames = [
            _event_frame(served, "impression", served["request_time"], np.ones(len(served), bool))
        ]
        t = served["request_time"]
        for stage in EVENT_STAGES:
            alive = alive & (rng.random(len(served)) < probs[stage])
            t = t + pd.to_timedelta(rng.integers(2, 120, len(served)), unit="s")
            frames.append(_event_frame(served, stage, t, alive))
        return pd.concat(frames, ignore_index=True)

    def orders(self, day: dt.date, events: pd.DataFrame) -> pd.DataFrame:
        """The day's order lines in the orders contract: one per purchase event, of
        1 + Poisson(ORDER_EXTRA_UNITS) units at the shown price (its own random stream, so the
        events are the same with or without orders)."""
        bought = events[events["event_type"] == "purchase"]
        rng = self._day_rng(day, 4)
        return pd.DataFrame(
            {
                "order_id": "o" + bought["event_id"].str.removeprefix("e"),
                "user_id": bought["user_id"].to_numpy(),
                "item_id": bought["item_id"].to_numpy(),
                "quantity": 1 + rng.poisson(ORDER_EXTRA_UNITS, len(bought)),
                "price": bought["price"].to_numpy(),
                "order_time": bought["event_time"].to_numpy(),
            }
        )

    def feed(self, day: dt.date, events: pd.DataFrame) -> pd.DataFrame:
        """Real feeds carry junk: redelivered events, unknown event types, items missing from
        the catalog, timestamps that cannot be read. A small share of such rows (appended,
        so the true events stay intact) lets the demo show quarantine at work."""
        n = int(round(len(events) * self.config.junk_share))
        if n == 0:
            return events
        rng = self._day_rng(day, 3)
        junk = events.iloc[rng.choice(len(events), n, replace=False)].copy()
        kind = rng.integers(0, 4, n)
        junk["event_type"] = np.where(kind == 1, "teleport", junk["event_type"])
        junk["item_id"] = np.where(kind == 2, "sku-unknown", junk["item_id"])
        # A new id, or the row would be caught as a duplicate before its unknown item.
        junk["event_id"] = np.where(kind == 2, junk["event_id"] + "-u", junk["event_id"])
        # kind 0 keeps the row as it is: a duplicate delivery of the same event_id.
        out = pd.concat([events, junk], ignore_index=True)
        out["event_time"] = out["event_time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        out.loc[len(events) + np.flatnonzero(kind == 3), "event_time"] = "yesterday-ish"
        return out


def _with_ids(day: dt.date, events: pd.DataFrame) -> pd.DataFrame:
    """The day's events in time order, with their ids."""
    events = events.sort_values(
        ["event_time", "request_id", "position"], kind="stable"
    ).reset_index(drop=True)
    events.insert(0, "event_id", [f"e{day:%Y%m%d}-{i:08d}" for i in range(len(events))])
    return events


def _event_frame(
    served: pd.DataFrame, event_type: str, times: pd.Series, mask: np.ndarray
) -> pd.DataFrame:
    sub = served[mask]
    return pd.DataFrame(
        {
            "event_type": event_type,
            "event_time": times[mask].to_numpy(),
            "user_id": sub["user_id"].to_numpy(),
            "item_id": sub["item_id"].to_numpy(),
            "session_id": sub["session_id"].to_numpy(),
            "request_id": sub["request_id"].to_numpy(),
            "position": sub["position"].to_numpy(),
            "propensity": sub["propensity"].to_numpy(),
            "model_version": sub["model_version"].to_numpy(),
            "variant": sub["variant"].to_numpy(),
            "price": sub["price"].to_numpy(),
        }
    )


def _check_slates(served: pd.DataFrame, candidates: pd.DataFrame, k: int) -> None:
    """A policy that shows items it was not offered, or a broken slate, is a bug: fail loudly."""
    need = {"request_id", "item_id", "position", "propensity", "model_version", "variant"}
    missing = need - set(served.columns)
    if missing:
        raise ValueError(f"ranker output lacks columns {sorted(missing)}")
    known = served.merge(
        candidates[["request_id", "item_id"]],
        on=["request_id", "item_id"],
        how="left",
        indicator=True,
    )
    if (known["_merge"] != "both").any():
        raise ValueError("ranker showed items that were not among the request's candidates")
    if (
        served.duplicated(["request_id", "position"]).any()
        or served.duplicated(["request_id", "item_id"]).any()
    ):
        raise ValueError("ranker output repeats a position or an item within a request")
    if (served.groupby("request_id").size() > k).any():
        raise ValueError(f"ranker showed more than {k} items in a request")
    p = served["propensity"].to_numpy(dtype=float)
    if not np.all((p > 0) & (p <= 1)):
        raise ValueError("ranker logged propensities outside (0, 1]")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def raw_user_id(index: int) -> str:
    return f"cust-{index:07d}"


def item_id(index: int) -> str:
    return f"sku-{index:05d}"
