"""`flywheel demo-likelihood`: who will buy, on a simulated customer base whose purchase
chances are known exactly (docs/likelihood.md, "On the simulator").

The simulator draws ``days`` days of ``users`` customers' activity (simulation/customers.py)
and the 30 days after them, which stay hidden. The history goes into the warehouse as the
quality stage leaves it (accepted events and delivered users; the ranking demo shows the
ingestion path, and a year of it day by day would take most of an hour), then one run of
``likelihood_cycle`` for the last day backtests, registers the champion and scores every
active user. The hidden days then score what was published: AUC, ECE and lift on what the users
did, beside RFM, and the calibration against the simulator's exact chances.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flywheel_assets.likelihood.history import HORIZONS, labels, snapshot
from flywheel_assets.likelihood.metrics import calibration, lift_at, scores
from flywheel_assets.likelihood.rfm import rfm_score
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.simulation.customers import activity_events, customer_history
from flywheel_assets.simulation.demo import prepare_home, run_job_for_day, write_env_file


@dataclass(frozen=True)
class LikelihoodDemoResult:
    day: dt.date
    model_version: str
    backtest: pd.DataFrame  # the day's likelihood_backtest rows
    hidden: pd.DataFrame  # per horizon: the published scores on the hidden days, and RFM's


def run_likelihood_demo(
    *,
    home: Path,
    days: int = 300,
    users: int = 20_000,
    seed: int = 1,
    start: dt.date = dt.date(2025, 1, 1),
) -> LikelihoodDemoResult:
    paths = prepare_home(home, seed=seed)
    last = start + dt.timedelta(days=days - 1)
    write_env_file(paths, start, days, None)
    print(f"flywheel demo-likelihood home: {paths.home}", file=sys.stderr)
    world = customer_history(start, days + max(HORIZONS), n_users=users, seed=seed)
    events = activity_events(world.history.activity, seed=seed)
    known = world.history.users
    wh = Warehouse(paths.warehouse_url)
    wh.migrate()
    with wh.begin() as conn:
        wh.insert_df(conn, "events", events[events["dt"] <= last])
        wh.insert_df(
            conn,
            "users",
            known[known["dt"] <= last].assign(region="eu", device="web")[
                ["dt", "user_id", "region", "device", "signup_date"]
            ],
        )
    print(
        f"{len(events[events['dt'] <= last]):,} accepted events of {users:,} customers over "
        f"{days} days; one likelihood run for {last}...",
        file=sys.stderr,
    )
    _materialize(last)
    with wh.begin() as conn:
        published = wh.read_partition(conn, "purchase_likelihood", last)
        backtest = wh.read_partition(conn, "likelihood_backtest", last)
    if published.empty:
        raise SystemExit(f"nothing was published for {last}: see the likelihood_cycle run")
    rows = []
    features = snapshot(world.history, last).set_index("user_id")
    p = published.set_index("user_id")
    ids = p.index.to_numpy()
    outcome = labels(world.history, last, ids, HORIZONS)
    rfm = rfm_score(features.loc[ids].reset_index())
    for h in HORIZONS:
        y = outcome[f"y_{h}d"].to_numpy()
        prob = p[f"p_{h}d"].to_numpy()
        truth = world.truth(last, ids, h)
        rows.append(
            {
                "horizon_days": h,
                **scores(y, prob),
                "rfm_lift_top10": lift_at(y, rfm, 0.1),
                "truth_lift_top10": lift_at(y, truth, 0.1),
                "ece_vs_truth": calibration(truth, prob)[0],
                "mean_p": float(prob.mean()),
                "mean_truth": float(truth.mean()),
            }
        )
    return LikelihoodDemoResult(
        day=last,
        model_version=str(published["model_version"].iloc[0]),
        backtest=backtest,
        hidden=pd.DataFrame(rows).assign(
            lift_vs_rfm=lambda d: d["lift_top10"] / d["rfm_lift_top10"]
        ),
    )


def _materialize(day: dt.date) -> None:
    from flywheel_assets.defs.likelihood.jobs import likelihood_cycle

    run_job_for_day(likelihood_cycle.name, day, "demo-likelihood")
