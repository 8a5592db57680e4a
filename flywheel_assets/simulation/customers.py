"""Who buys: a population of customers whose purchase chances the simulator knows exactly.

The ranking demo's ten days are too few to learn who will buy in the next 30 days, so this
module draws a year or more of per-user activity directly, vectorised over users, day by day:

- every user signs up on some day (a year before the history starts to just before it ends)
  and is *alive* until they churn (a daily hazard of their own);
- an alive user is either browsing as usual or on a *shopping mission* (a two-state Markov
  chain: missions start with a small daily chance and last about four days);
- each day a user views ``Poisson(v x m_v(state))`` pages, clicks some of them, adds some to
  the cart, and buys ``Poisson(lambda x m_b(state) x weekday)`` times at their own basket
  value; a dead user does nothing;
- a small share of each day's activity arrives a day late (its partition ``dt`` is the next
  day), as real feeds do.

Given a user's state at the end of day D, the chance of at least one purchase on days
D + 1 .. D + h follows exactly from the chain (``CustomerHistory.truth``): the oracle the
purchase-likelihood model's calibration is measured against.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flywheel_assets.likelihood.history import ACTIVITY_COLUMNS, UserHistory

WEEKDAY = np.array([0.92, 0.9, 0.93, 0.97, 1.05, 1.13, 1.1])
NOT_YET, BROWSING, MISSION, GONE = 0, 1, 2, 3
MISSION_VIEWS = 5.0
MISSION_END = 0.25  # daily chance a mission ends (about four days)
LATE_SHARE = 0.02


@dataclass(frozen=True)
class CustomerHistory:
    history: UserHistory  # what the shop's feeds delivered (activity and signups)
    start: dt.date
    state: np.ndarray  # (days, users): NOT_YET, BROWSING, MISSION or GONE at the end of each day
    rate: np.ndarray  # per user: purchases a day while browsing as usual
    mission_rate: np.ndarray  # per user: purchases a day on a mission
    mission_start: np.ndarray  # per user: daily chance a mission starts
    churn: np.ndarray  # per user: daily chance of leaving for good
    user_ids: np.ndarray

    def truth(self, day: dt.date, user_ids: np.ndarray, horizon: int) -> np.ndarray:
        """P(at least one purchase on day + 1 .. day + horizon | each user's state at the end
        of ``day``): a forward pass of the chain with the days' no-purchase chances."""
        t = (day - self.start).days
        if not 0 <= t < len(self.state):
            raise ValueError(f"{day} is outside the simulated days ({self.start} on)")
        index = pd.Series(np.arange(len(self.user_ids)), index=self.user_ids)
        u = index.reindex(user_ids).to_numpy()
        if np.isnan(u.astype("float64")).any():
            raise KeyError("unknown user ids")
        u = u.astype(int)
        s = self.state[t, u]
        n = len(u)
        f = np.zeros((n, 3))  # browsing, mission, gone
        f[s == BROWSING, 0] = 1.0
        f[s == MISSION, 1] = 1.0
        f[(s == GONE) | (s == NOT_YET), 2] = 1.0
        c, pi = self.churn[u], self.mission_start[u]
        lam, lam_m = self.rate[u], self.mission_rate[u]
        for k in range(1, horizon + 1):
            w = WEEKDAY[(day + dt.timedelta(days=k)).weekday()]
            nb = f[:, 0] * (1 - c) * (1 - pi) + f[:, 1] * (1 - c) * MISSION_END
            nm = f[:, 0] * (1 - c) * pi + f[:, 1] * (1 - c) * (1 - MISSION_END)
            ng = f[:, 2] + (f[:, 0] + f[:, 1]) * c
            # Keep only the paths without a purchase on day k.
            f = np.column_stack([nb * np.exp(-lam * w), nm * np.exp(-lam_m * w), ng])
        return 1.0 - f.sum(axis=1)


def activity_events(activity: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The accepted-events rows behind per-user daily activity (``ACTIVITY_COLUMNS``): one
    view, click or add_to_cart event per count and one purchase event per purchase (priced
    at its share of the day's revenue), at seeded times of the day, in the day's sessions
    (for loading a simulated history into the warehouse's ``events`` table)."""
    rng = np.random.default_rng(seed)
    frames = []
    for kind, col in (("view", "views"), ("click", "clicks"), ("add_to_cart", "carts"),
                      ("purchase", "purchases")):  # fmt: skip
        n = activity[col].to_numpy("int64")
        rows = activity.loc[activity.index.repeat(n)]
        price = np.nan
        if kind == "purchase":
            price = (rows["revenue"] / rows["purchases"]).round(2).to_numpy()
        sessions = np.maximum(rows["sessions"].to_numpy("int64"), 1)
        frames.append(
            pd.DataFrame(
                {
                    "dt": rows["dt"].to_numpy(),
                    "event_type": kind,
                    "event_time": pd.to_datetime(rows["day"]).to_numpy()
                    + rng.integers(0, 86_400, len(rows)).astype("timedelta64[s]"),
                    "user_id": rows["user_id"].to_numpy(),
                    "item_id": "i" + pd.Series(rng.integers(0, 500, len(rows))).astype(str),
                    "session_id": rows["user_id"].to_numpy()
                    + "-"
                    + pd.Series(rows["day"].astype(str).to_numpy())
                    + "-"
                    + pd.Series(rng.integers(0, sessions)).astype(str).to_numpy(),
                    "price": price,
                }
            )
        )
    events = pd.concat(frames, ignore_index=True)
    events["event_id"] = "ev" + pd.Series(np.arange(len(events))).astype(str)
    return events


def customer_history(
    start: dt.date, days: int, *, n_users: int = 4000, seed: int = 1
) -> CustomerHistory:
    """``days`` days of ``n_users`` customers' activity from ``start``."""
    rng = np.random.default_rng([seed, start.toordinal(), 27])
    signup = rng.integers(-365, int(days * 0.8), n_users)  # day index (negative: before start)
    # How often a user goes shopping: most purchases are a mission's; a few are impulses.
    mission_start = np.clip(rng.gamma(0.7, 0.012 / 0.7, n_users), 0, 0.2)
    mission_rate = 0.3 * rng.lognormal(0.0, 0.3, n_users)
    rate = 0.05 * mission_start * rng.lognormal(0.0, 0.3, n_users) + 0.0005
    views = (0.05 + 10.0 * mission_start) * rng.lognormal(0.0, 0.4, n_users)
    churn = np.clip(rng.lognormal(np.log(1 / 240), 0.6, n_users), 0, 0.05)
    basket = rng.lognormal(3.4, 0.5, n_users)
    ids = np.array([f"c{i:06d}" for i in range(n_users)])

    # Before the history starts: who is still there, and on a mission, at day -1.
    state = np.full(n_users, NOT_YET, dtype=np.int8)
    before = signup < 0
    alive_days = -signup[before]
    survived = rng.random(before.sum()) < (1 - churn[before]) ** alive_days
    stationary = mission_start[before] / (mission_start[before] + MISSION_END)
    on_mission = rng.random(before.sum()) < stationary
    state[before] = np.where(survived, np.where(on_mission, MISSION, BROWSING), GONE)

    states = np.zeros((days, n_users), dtype=np.int8)
    frames = []
    for t in range(days):
        day = start + dt.timedelta(days=t)
        w = WEEKDAY[day.weekday()]
        state = state.copy()
        state[signup == t] = BROWSING
        alive = (state == BROWSING) | (state == MISSION)
        # The day's transition (signups start browsing on their first day).
        r = rng.random(n_users)
        leave = alive & (r < churn) & (signup != t)
        r2 = rng.random(n_users)
        start_m = (state == BROWSING) & ~leave & (r2 < mission_start) & (signup != t)
        end_m = (state == MISSION) & ~leave & (r2 < MISSION_END)
        state[leave] = GONE
        state[start_m] = MISSION
        state[end_m] = BROWSING
        active = (state == BROWSING) | (state == MISSION)
        mission = state == MISSION
        v = rng.poisson(views * np.where(mission, MISSION_VIEWS, 1.0)) * active
        clicks = rng.binomial(v, 0.4)
        carts = rng.binomial(clicks, np.where(mission, 0.5, 0.2))
        buys = rng.poisson(np.where(mission, mission_rate, rate) * w) * active
        # A mission ends with its purchase: a shopper who found what they came for browses
        # as usual again (no purchase keeps the chain as it is: the truth's paths).
        state[mission & (buys > 0)] = BROWSING
        states[t] = state
        did = (v + buys) > 0
        if not did.any():
            continue
        idx = np.flatnonzero(did)
        sessions = np.where(v[idx] > 0, 1 + rng.poisson(v[idx] / 6.0), 1)
        revenue = np.round(buys[idx] * basket[idx] * rng.lognormal(0, 0.2, len(idx)), 2)
        late = rng.random(len(idx)) < LATE_SHARE
        frames.append(
            pd.DataFrame(
                {
                    "user_id": ids[idx],
                    "dt": np.where(late, day + dt.timedelta(days=1), day),
                    "day": day,
                    "views": v[idx],
                    "clicks": clicks[idx],
                    "carts": carts[idx],
                    "sessions": sessions,
                    "purchases": buys[idx],
                    "revenue": revenue,
                }
            )
        )
    activity = pd.concat(frames, ignore_index=True)[ACTIVITY_COLUMNS]
    signup_dates = np.array([start + dt.timedelta(days=int(s)) for s in signup])
    users = pd.DataFrame(
        {
            "user_id": ids,
            # Users known before the history arrive with its first day; the rest on signup.
            "dt": np.maximum(signup_dates, start),
            "signup_date": signup_dates,
        }
    )
    users = users[signup < days]
    last = start + dt.timedelta(days=days - 1)
    return CustomerHistory(
        history=UserHistory(activity=activity, users=users, through=last),
        start=start,
        state=states,
        rate=rate,
        mission_rate=mission_rate,
        mission_start=mission_start,
        churn=churn,
        user_ids=ids,
    )
