"""bench/bias: which bias correction ranks best on the simulator, and warm start vs full retrain.

The simulator knows every user's true purchase probability, so a ranking's worth is exact:
oracle_share = expected purchases per request of the ranking / those of the oracle ranking
(the same requests, the same position bias). This script takes a demo home after N days
(`flywheel demo --days N --seed S --home H`), and in one run, on the same logged data:

  - trains one challenger per bias correction (flywheel_assets.training.model.BIAS_CORRECTIONS:
    ``none`` = the naive model, ``position``, ``ipw``, ``position+ipw``,
    ``unbiased_lambdarank``) exactly as the challenger asset does for day N (same window,
    holdout and time-based validation split: flywheel_assets/training/challenger.py);
  - serves day N + 1's requests greedily (no exploration) with each model, through the same
    feature vector serving uses, and lets the simulator score the rankings;
  - compares warm start (the day N - 1 model, boosted on day N's partition only) with the full
    retrain on the whole window: oracle share and training seconds.

Run:  .venv/bin/python bench/bias.py --home H --seed S --days N [--out bench/out/bias.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flywheel_assets.features.store import serving_frame  # noqa: E402
from flywheel_assets.platform.pseudonym import Pseudonymiser  # noqa: E402
from flywheel_assets.platform.settings import FlywheelPaths  # noqa: E402
from flywheel_assets.platform.warehouse import Warehouse  # noqa: E402
from flywheel_assets.serving.policy import epsilon_greedy_slates  # noqa: E402
from flywheel_assets.simulation.simulator import ShopSimulator, SimulatorConfig  # noqa: E402
from flywheel_assets.training import challenger  # noqa: E402
from flywheel_assets.training.model import BIAS_CORRECTIONS, FeatureSchema, predict  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class GreedyRanker:
    """Top-k by the model's score at position 0 (what serving does, without exploration)."""

    def __init__(self, wh: Warehouse, pseudonymiser: Pseudonymiser, feature_dt: dt.date, model):
        self.wh, self.pseudonymiser, self.feature_dt = wh, pseudonymiser, feature_dt
        self.booster, self.schema = model.booster, model.schema

    def __call__(self, candidates: pd.DataFrame) -> pd.DataFrame:
        rows = candidates.assign(
            user_id=self.pseudonymiser.series(candidates["user_id"]),
            position=0,
            event_time=candidates["request_time"],
        )
        features = serving_frame(self.wh, rows, self.feature_dt)
        scores = predict(self.booster, self.schema, features, at_top=True)
        slates = epsilon_greedy_slates(candidates, scores, k=10, epsilon=0.0, seed=0)
        return slates.assign(model_version="bench", variant="bench")


def serve(sim_args: tuple[int, dt.date], day: dt.date, ranker: GreedyRanker) -> float:
    seed, start = sim_args
    sim = ShopSimulator(SimulatorConfig(seed=seed), start=start)
    return float(sim.serve_day(day, ranker).oracle_share)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True, help="a demo home after --days days")
    ap.add_argument("--seed", type=int, default=1, help="the demo's --seed")
    ap.add_argument("--start", default="2026-01-01", help="the demo's --start")
    ap.add_argument("--days", type=int, required=True, help="days the demo ran")
    ap.add_argument(
        "--eval-days",
        type=int,
        default=3,
        help="train for each of the last E days and serve the day after each",
    )
    ap.add_argument("--variants", default=",".join(BIAS_CORRECTIONS))
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "bias.json"))
    args = ap.parse_args()

    home = Path(args.home).resolve()
    os.environ["FLYWHEEL_HOME"] = str(home)
    key = (home / "pseudonym.key").read_text().strip()
    wh = Warehouse(FlywheelPaths.from_env(home).warehouse_url)
    start = dt.date.fromisoformat(args.start)
    day = start + dt.timedelta(days=args.days - 1)
    target = day + dt.timedelta(days=1)
    pseudonymiser = Pseudonymiser(key)
    sim_args = (args.seed, start)

    variants = [v for v in args.variants.split(",") if v]
    per_day = []
    for back in range(args.eval_days - 1, -1, -1):
        train_day = day - dt.timedelta(days=back)
        served = train_day + dt.timedelta(days=1)
        day_frame = challenger.load_window(wh, challenger.TrainingSpec(day=train_day))
        log(f"window ending {train_day}: {len(day_frame)} examples; serving {served}")
        for bias in variants:
            spec = challenger.TrainingSpec(day=train_day, bias_correction=bias)
            data = challenger.split(day_frame, spec)
            t0 = time.perf_counter()
            model = challenger.fit(spec, data)
            seconds = time.perf_counter() - t0
            share = serve(sim_args, served, GreedyRanker(wh, pseudonymiser, train_day, model))
            per_day.append(
                {
                    "variant": bias,
                    "served": str(served),
                    "oracle_share": share,
                    "train_seconds": seconds,
                    "rounds": model.best_iteration + 1,
                    "learn_rows": len(data.learn),
                }
            )
            log(f"  {bias:>20}: oracle_share {share:.4f} ({seconds:.1f} s)")
    table = pd.DataFrame(per_day)
    rows = [
        {
            "variant": v,
            "oracle_share": float(g["oracle_share"].mean()),
            "train_seconds": float(g["train_seconds"].mean()),
            "rounds": int(g["rounds"].mean()),
            "learn_rows": int(g["learn_rows"].mean()),
            "per_day": [round(x, 4) for x in g["oracle_share"]],
        }
        for v, g in table.groupby("variant", sort=False)
    ]
    frame = challenger.load_window(wh, challenger.TrainingSpec(day=day))

    # Warm start: yesterday's model (full window ending day - 1), boosted on day's rows only.
    prev = day - dt.timedelta(days=1)
    prev_spec = challenger.TrainingSpec(day=prev)
    prev_frame = challenger.load_window(wh, prev_spec)
    prev_model = challenger.fit(prev_spec, challenger.split(prev_frame, prev_spec))
    prev_share = serve(sim_args, target, GreedyRanker(wh, pseudonymiser, day, prev_model))
    warm_spec = challenger.TrainingSpec(day=day, warm_start_from="previous", num_boost_round=200)
    warm_data = challenger.split(frame, warm_spec, after=prev)
    base = (prev_model.booster, FeatureSchema.from_json(prev_model.schema.to_json()))
    t0 = time.perf_counter()
    warm = challenger.fit(warm_spec, warm_data, base)
    warm_seconds = time.perf_counter() - t0
    warm_share = serve(sim_args, target, GreedyRanker(wh, pseudonymiser, day, warm))
    full_spec = challenger.TrainingSpec(day=day)
    full_data = challenger.split(frame, full_spec)
    t0 = time.perf_counter()
    full_model = challenger.fit(full_spec, full_data)
    full = {
        "oracle_share": serve(sim_args, target, GreedyRanker(wh, pseudonymiser, day, full_model)),
        "train_seconds": time.perf_counter() - t0,
        "rounds": full_model.best_iteration + 1,
        "learn_rows": len(full_data.learn),
    }
    warm_rows = [
        {
            "variant": f"yesterday's model, unchanged ({prev})",
            "oracle_share": prev_share,
            "train_seconds": float("nan"),
            "rounds": prev_model.best_iteration + 1,
        },
        {
            "variant": "warm start: + day's partition only",
            "oracle_share": warm_share,
            "train_seconds": warm_seconds,
            "rounds": warm.booster.num_boosted_rounds(),
            "learn_rows": len(warm_data.learn),
        },
        {**full, "variant": "full retrain (position)"},
    ]
    log(
        f"  warm start: {warm_share:.4f} in {warm_seconds:.1f} s vs full {full['oracle_share']:.4f}"
    )

    result = {
        "home": str(home),
        "seed": args.seed,
        "trained_for": str(day),
        "served": str(target),
        "examples": len(frame),
        "bias": rows,
        "bias_per_day": per_day,
        "warm_start": warm_rows,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=float))
    print(
        f"\nbench/bias: seed {args.seed}; each variant trained for each of the last "
        f"{args.eval_days} days and served the next day greedily"
    )
    print(
        "\n| variant | mean oracle_share | per served day | train s | rounds |\n|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['variant']} | {r['oracle_share']:.4f} | {r['per_day']} | "
            f"{r['train_seconds']:.1f} | {r['rounds']} |"
        )
    print(f"\nwarm start, trained for {day}, served {target}:")
    print("\n| variant | oracle_share | train s | rounds | rows learnt |\n|---|---|---|---|---|")
    for r in warm_rows:
        seconds = r["train_seconds"]
        print(
            f"| {r['variant']} | {r['oracle_share']:.4f} | "
            f"{'-' if np.isnan(seconds) else format(seconds, '.1f')} | "
            f"{r['rounds']} | {r.get('learn_rows', '-')} |"
        )
    print(
        f"\nreproduce: flywheel demo --days {args.days} --seed {args.seed} --home H && "
        f"python bench/bias.py --home H --seed {args.seed} --days {args.days}"
    )


if __name__ == "__main__":
    main()
