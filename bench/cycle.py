"""bench/cycle: one whole flywheel cycle for a simulated day of ~1M events, next to the floor.

The floor is what the bare libraries need for the same data in the same run:
  1. DuckDB loading the landing file (read_json into a table),
  2. a DuckDB group-by of the same per-user / per-item / user x category counts,
  3. xgboost.train on the same training matrix with the same parameters and rounds.
The cycle is everything flywheel does for the day through Dagster (ingest, contract, quarantine,
accounting and GX checks, features, training set, training, evaluation, promotion).

Run:  .venv/bin/python bench/cycle.py [--sessions 36000] [--days 1] [--out bench/out/cycle.json]

Growth (``--growth 10000,20000,40000``): the cycle again at each number of sessions, each in its
own process with its own home (users grow with sessions, 5 per session; items stay), printed as
seconds and µs per event against the smallest size, with each size's floor and ratio.

With --days 2 the first day is history and the second is measured, so the volume check has a
baseline and the drift checks compute PSI/KS against a reference day (the bench lowers
FLYWHEEL_DRIFT_MIN_REFERENCE_DAYS to 1 so the figures are computed; warm-up keeps them
unjudged). The checks' share of the cycle is the sum of the check steps' durations over the
measured run's wall time, from the run's step statistics.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sessions", type=int, default=40_000, help="simulated sessions (40k ~ 1M events)"
    )
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=1, help="days to run; the last is measured")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "cycle.json"))
    parser.add_argument(
        "--growth",
        help="comma-separated session counts: run the cycle at each (own process) and compare",
    )
    args = parser.parse_args()
    if args.growth:
        return growth([int(n) for n in args.growth.split(",")], args)

    import duckdb
    import xgboost as xgb

    from flywheel_assets.features.store import training_frame
    from flywheel_assets.platform.warehouse import Warehouse
    from flywheel_assets.serving.policy import uniform_random_slates
    from flywheel_assets.simulation.demo import materialize_day, prepare_home, write_landing
    from flywheel_assets.simulation.simulator import ShopSimulator, SimulatorConfig
    from flywheel_assets.training.model import DEFAULT_PARAMS, FeatureSchema

    first = dt.date(2026, 1, 1)
    day = first + dt.timedelta(days=args.days - 1)
    if args.days > 1:
        os.environ["FLYWHEEL_DRIFT_MIN_REFERENCE_DAYS"] = "1"
    home = Path(tempfile.mkdtemp(prefix="fw-bench-")) / "home"
    paths = prepare_home(home)
    cfg = SimulatorConfig(
        seed=1, n_users=args.users, n_items=args.items, sessions_per_day=args.sessions
    )
    print(
        f"simulating {args.sessions} sessions ({args.users} users, {args.items} items)...",
        file=sys.stderr,
    )
    sim = ShopSimulator(cfg, start=first)

    for i in range(args.days):
        d = first + dt.timedelta(days=i)
        t = time.perf_counter()
        write_landing(sim.catalog_records(d), paths.landing_dir, "catalog", d, "jsonl")
        write_landing(sim.user_records(d), paths.landing_dir, "users", d, "jsonl")
        result = sim.serve_day(
            d,
            lambda c: uniform_random_slates(c, k=cfg.slate_size, seed=1).assign(
                model_version="cold-start", variant="cold_start"
            ),
        )
        events_file = write_landing(result.events, paths.landing_dir, "events", d, "jsonl")
        n_events = len(result.events)
        print(
            f"  {d}: {n_events} events written in {time.perf_counter() - t:.1f}s (setup, not measured)",
            file=sys.stderr,
        )
        if d < day:
            print(f"  {d}: history day, materialising (not measured)...", file=sys.stderr)
            materialize_day(d)

    # Warm the imports both sides use (Dagster, GX) so neither pays them inside its timing.
    import great_expectations  # noqa: F401

    print("cycle: materialising the whole day through Dagster...", file=sys.stderr)
    t = time.perf_counter()
    materialize_day(day)
    cycle_s = time.perf_counter() - t
    checks_s, check_steps, all_steps = _step_seconds()

    wh = Warehouse(paths.warehouse_url)
    with wh.begin() as conn:
        model = wh.query_df(
            conn, "SELECT params_json, metrics_json, n_train_rows FROM model_registry"
        )
    best_iteration = json.loads(model.iloc[0]["metrics_json"])["best_iteration"]
    frame = training_frame(wh, day, day)
    wh.dispose()

    print("floor: bare DuckDB load + group-by, bare xgboost.train...", file=sys.stderr)
    floor_db = Path(tempfile.mkdtemp(prefix="fw-floor-")) / "floor.duckdb"
    con = duckdb.connect(str(floor_db))
    t = time.perf_counter()
    con.execute(
        "CREATE TABLE ev AS SELECT * FROM read_json(?, format='newline_delimited')",
        [str(events_file)],
    )
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    con.execute(
        "CREATE TABLE uf AS SELECT user_id, event_type, COUNT(*) n FROM ev GROUP BY user_id, event_type;"
        "CREATE TABLE itf AS SELECT item_id, event_type, COUNT(*) n FROM ev GROUP BY item_id, event_type;"
        "CREATE TABLE uif AS SELECT user_id, item_id, event_type, COUNT(*) n FROM ev GROUP BY user_id, item_id, event_type;"
    )
    groupby_s = time.perf_counter() - t
    con.close()
    schema = FeatureSchema.fit(frame)
    dtrain = xgb.DMatrix(
        schema.matrix(frame), label=frame["label_purchase"].to_numpy(), enable_categorical=True
    )
    t = time.perf_counter()
    xgb.train(
        DEFAULT_PARAMS, dtrain, num_boost_round=best_iteration + 21
    )  # same rounds incl. early-stopping patience
    train_s = time.perf_counter() - t
    floor_s = load_s + groupby_s + train_s

    figures = {
        "events": n_events,
        "cycle_seconds": round(cycle_s, 2),
        "floor_seconds": round(floor_s, 2),
        "floor_parts": {
            "duckdb_load": round(load_s, 2),
            "duckdb_groupby": round(groupby_s, 2),
            "xgboost_train": round(train_s, 2),
        },
        "ratio_cycle_to_floor": round(cycle_s / floor_s, 2),
        "days": args.days,
        "checks_seconds": round(checks_s, 2),
        "checks_share_of_cycle": round(checks_s / cycle_s, 3),
        "check_steps": check_steps,
        # Every step's seconds, slowest first: the profile of the cycle (their sum exceeds the
        # wall time where steps ran side by side).
        "steps": all_steps,
        "steps_sum_seconds": round(sum(all_steps.values()), 2),
        "training_rows": int(model.iloc[0]["n_train_rows"]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
        "command": "python bench/cycle.py " + " ".join(sys.argv[1:]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    print(
        f"\ncycle {cycle_s:.1f}s for {n_events} events; floor {floor_s:.1f}s; ratio {cycle_s / floor_s:.2f}x "
        f"(goals: <= 60 s and <= 2x); checks {checks_s:.1f}s = {checks_s / cycle_s:.1%} of the cycle. Reproduce: python bench/cycle.py {' '.join(sys.argv[1:])}"
    )
    return 0


def growth(sizes: list[int], args: argparse.Namespace) -> int:
    """The whole bench at each number of sessions, each in a fresh process and home."""
    import subprocess

    rows = []
    for sessions in sizes:
        out = Path(args.out).with_name(f"cycle_growth_{sessions}.json")
        users = sessions * 5
        cmd = [
            sys.executable, __file__, "--sessions", str(sessions), "--users", str(users),
            "--items", str(args.items), "--days", str(args.days), "--out", str(out),
        ]  # fmt: skip
        print(f"growth: {sessions:,} sessions, {users:,} users...", file=sys.stderr)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        rows.append(json.loads(out.read_text()))
    first = rows[0]
    base_us = first["cycle_seconds"] / first["events"] * 1e6
    print(
        f"\n{'sessions':>9} {'events':>10} {'cycle s':>8} {'µs/event':>9} {'vs first':>9} "
        f"{'floor s':>8} {'ratio':>6}"
    )
    for sessions, r in zip(sizes, rows, strict=True):
        us = r["cycle_seconds"] / r["events"] * 1e6
        print(
            f"{sessions:>9,} {r['events']:>10,} {r['cycle_seconds']:>8.1f} {us:>9.2f} "
            f"{us / base_us:>8.2f}x {r['floor_seconds']:>8.2f} {r['ratio_cycle_to_floor']:>5.1f}x"
        )
    summary = {"growth": rows, "command": "python bench/cycle.py " + " ".join(sys.argv[1:])}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).with_name("cycle_growth.json").write_text(json.dumps(summary, indent=2))
    print(f"\nReproduce: python bench/cycle.py {' '.join(sys.argv[1:])}")
    return 0


def _step_seconds() -> tuple[float, dict[str, float], dict[str, float]]:
    """Durations of the latest run's asset-check steps (their sum, each) and of all its steps,
    from its step statistics."""
    import dagster as dg
    from benchkit import last_run_steps

    from flywheel_assets.definitions import cycle_assets

    names = {
        spec.name
        for c in cycle_assets()
        if isinstance(c, dg.AssetChecksDefinition)
        for spec in c.check_specs
    }
    steps = last_run_steps()
    checks = {k: round(v, 2) for k, v in steps.items() if any(k.endswith(n) for n in names)}
    every = {k: round(v, 2) for k, v in sorted(steps.items(), key=lambda kv: -kv[1])}
    return sum(checks.values()), dict(sorted(checks.items(), key=lambda kv: -kv[1])), every


if __name__ == "__main__":
    raise SystemExit(main())
