"""bench/likelihood: the purchase-likelihood model's day at 5,000 to 80,000 customers, 2 cores.

For each size a simulated customer base (simulation/customers.py, 300 days) is drawn (not
measured). Then, on the same data:
  - snapshot: the point-in-time features of every active user on the last day;
  - fit: ``LikelihoodModel().fit(history, last day)`` for both horizons (the snapshots of its
    training and calibration days, two boosters, the calibration choice);
  - floor: bare ``xgboost.train`` on the same training matrices with the same parameters, the
    part no amount of plumbing can remove (the baseline of the ratio);
  - score: ``predict`` of the last day's users.
Run: .venv/bin/python -m bench.likelihood [--sizes 5000,20000,80000] [--days 300]
Prints one line per size and the command that reproduces them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time

import xgboost as xgb

from flywheel_assets.likelihood.history import FEATURES, snapshot
from flywheel_assets.likelihood.model import (
    LikelihoodModel,
    LikelihoodParams,
    Snapshots,
    labelled,
    snapshot_days,
)
from flywheel_assets.simulation.customers import customer_history


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5000,20000,80000")
    ap.add_argument("--days", type=int, default=300)
    args = ap.parse_args()
    params = LikelihoodParams()
    start = dt.date(2025, 1, 1)
    print(f"cpus={os.cpu_count()} rounds={params.num_boost_round} training_days="
          f"{params.training_days} calibration_days={params.calibration_days}")  # fmt: skip
    for n in (int(s) for s in args.sizes.split(",")):
        history = customer_history(start, args.days, n_users=n, seed=1).history
        last = history.last_day
        t = time.perf_counter()
        features = snapshot(history, last)
        snap_s = time.perf_counter() - t
        t = time.perf_counter()
        model = LikelihoodModel(params).fit(history, last)
        fit_s = time.perf_counter() - t
        # The floor: the same boosters trained on matrices already built.
        cache = Snapshots(history)
        floor_s, rows = 0.0, 0
        for h in params.horizons:
            train_days, _ = snapshot_days(last, h, params)
            train = labelled(history, train_days, h, params, cache)
            d = xgb.DMatrix(train[FEATURES].to_numpy("float32"), label=train["y"].to_numpy())
            t = time.perf_counter()
            xgb.train({**params.xgb_params, "seed": params.seed, "nthread": params.nthread}, d,
                      num_boost_round=params.num_boost_round)  # fmt: skip
            floor_s += time.perf_counter() - t
            rows += len(train)
        t = time.perf_counter()
        model.predict(features)
        score_s = time.perf_counter() - t
        print(
            f"users={n} active={len(features)} training_rows={rows} snapshot={snap_s:.2f}s "
            f"fit={fit_s:.1f}s floor={floor_s:.1f}s fit/floor={fit_s / floor_s:.2f} "
            f"score={score_s:.2f}s",
            flush=True,
        )
    print("reproduce: " + " ".join([".venv/bin/python -m bench.likelihood", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
