"""bench/forecast: the demand forecaster at 5,000, 10,000 and 20,000 items x 365 days, 2 cores.

For each size a synthetic shop (flywheel_tests/forecasting/synthetic.py: Poisson demand, many
slow movers, weekly season, trends, promotions) is generated and turned into item, category and
total panels (not measured). Then, on the same data:
  - forecast: ``GlobalForecaster(params).fit(panels, origin)`` + ``.predict(panels, origin)``
    from the day after the last observed day (target: 60 s at 20,000 items);
  - backtest: the model on 4 rolling origins 7 days apart, each a full fit + predict (target:
    240 s at 20,000 items), and the baselines (seasonal naive, ETS ANA) on the same origins
    with n_jobs=2, each timed on its own, with the item-level MASE and coverage of all three.
Run: .venv/bin/python -m bench.forecast [--sizes 5000,10000,20000] [--days 365] [--no-backtest]
Prints one line per measurement and the command that reproduces them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import pandas as pd

from flywheel_assets.forecasting import baselines
from flywheel_assets.forecasting.backtest import backtest, rolling_origins
from flywheel_assets.forecasting.model import ForecastParams, GlobalForecaster, fit_predict
from flywheel_assets.forecasting.panel import panels_for_levels
from flywheel_tests.forecasting.synthetic import make_shop


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5000,10000,20000")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--no-backtest", action="store_true")
    ap.add_argument("--no-baselines", action="store_true")
    args = ap.parse_args()
    params = ForecastParams(nthread=2)
    print(
        f"cpus={os.cpu_count()} params: rounds={params.num_boost_round} "
        f"max_rows={params.max_training_rows} origins={params.training_origins}"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        shop = make_shop(n_items=n, n_days=args.days, seed=0)
        panels = panels_for_levels(shop.sales, shop.items, shop.prices)
        origin = panels["item"].days[-1] + pd.Timedelta(days=1)
        t = time.perf_counter()
        model = GlobalForecaster(params).fit(panels, origin)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        fc = model.predict(panels, origin)
        pred_s = time.perf_counter() - t
        print(
            f"items={n} forecast fit={fit_s:.1f}s predict={pred_s:.1f}s "
            f"total={fit_s + pred_s:.1f}s rows_trained={model.lineage()['rows_trained']} "
            f"forecast_rows={len(fc)}",
            flush=True,
        )
        if args.no_backtest:
            continue
        origins = rolling_origins(panels["item"].days[-1], n_origins=4)
        forecasters = {"model": lambda p, o: fit_predict(p, o, params)}
        if not args.no_baselines:
            forecasters["seasonal_naive"] = lambda p, o: baselines.seasonal_naive(p, o, n_jobs=2)
            forecasters["ets"] = lambda p, o: baselines.ets(p, o, n_jobs=2)
        summary, per_origin = backtest(panels, forecasters, origins)
        seconds = per_origin[per_origin["level"] == "item"].groupby("model")["seconds"].sum()
        item = summary[summary["level"] == "item"].set_index("model")
        for name in forecasters:
            print(
                f"items={n} backtest model={name} seconds={seconds[name]:.1f} "
                f"mase={item.loc[name, 'mase']:.3f} coverage_80={item.loc[name, 'coverage_80']:.3f} "
                f"coverage_80_discrete={item.loc[name, 'coverage_80_discrete']:.3f}",
                flush=True,
            )
    print("reproduce: " + " ".join([".venv/bin/python -m bench.forecast", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
