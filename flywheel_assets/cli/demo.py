"""`flywheel demo`: the flywheel on the shop simulator, day after day."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from flywheel_assets.cli.common import add_world_argument
from flywheel_assets.simulation.demo import COLUMNS, ENV_FILE, run_demo
from flywheel_assets.simulation.simulator import SimulatorConfig


def _demo(args: argparse.Namespace) -> int:
    home = (
        Path(args.home)
        if args.home
        else Path(".flywheel") / f"demo-seed{args.seed}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    )
    widths = {
        "day": 10,
        "read": 6,
        "accepted": 8,
        "quarantined": 11,
        "duplicates": 10,
        "champion": 18,
        "challenger": 18,
        "decision": 18,  # "promote+experiment": every decision of the day
    }

    def fmt(v: object, col: str) -> str:
        w = widths.get(col, max(len(col), 6))
        if isinstance(v, float):
            return f"{v:>{w}.4f}"
        if isinstance(v, int):
            return f"{v:>{w}}"
        return f"{'-' if v is None else v!s:>{w}}"

    if not args.json:
        print(" ".join(f"{c:>{widths.get(c, max(len(c), 6))}}" for c in COLUMNS), flush=True)

    def on_day(row: dict[str, object]) -> None:
        if args.json:
            print(json.dumps({c: row[c] for c in COLUMNS}), flush=True)
        else:
            print(" ".join(fmt(row[c], c) for c in COLUMNS), flush=True)

    run_demo(
        days=args.days,
        seed=args.seed,
        start=dt.date.fromisoformat(args.start),
        home=home.resolve(),
        fmt=args.format,
        on_day=on_day,
        warehouse_url=args.warehouse_url,
        kafka=args.kafka,
        dagster_storage=args.dagster_storage,
        config=SimulatorConfig.for_world(args.world, seed=args.seed),
        realtime=args.realtime,
    )
    print(
        f"done; home: {home.resolve()}\n"
        f"open the UI: source {home.resolve() / ENV_FILE} && "
        '(cd "$DAGSTER_HOME" && "$OLDPWD"/.venv/bin/dagster dev -m flywheel_assets.definitions)',
        file=sys.stderr,
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the flywheel on the shop simulator, day after day, on a fresh embedded home",
    )
    demo.add_argument("--days", type=int, default=10)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--start", default="2026-01-01", help="first simulated day (YYYY-MM-DD)")
    demo.add_argument(
        "--home", default=None, help="a fresh folder for the demo (default: ./.flywheel/demo-...)"
    )
    demo.add_argument(
        "--format", choices=["jsonl", "csv", "parquet"], default="jsonl", help="landing file format"
    )
    demo.add_argument(
        "--warehouse-url",
        default=None,
        help="an empty warehouse to use instead of DuckDB in the home (e.g. PostgreSQL)",
    )
    demo.add_argument(
        "--kafka",
        action="store_true",
        help="send the events through a Kafka topic (a local Tansu broker) instead of files",
    )
    demo.add_argument(
        "--dagster-storage",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="Dagster's runs and event logs: SQLite in the home, or PostgreSQL as in production "
        "(dagster.production.yaml; server from DAGSTER_PG_HOST, _PORT, _USERNAME, _PASSWORD, _DB)",
    )
    add_world_argument(demo)
    demo.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether challengers learn the session's last hour (FLYWHEEL_REALTIME_FEATURES; "
        "default: on in the dynamic world, off in the static one)",
    )
    demo.add_argument("--json", action="store_true", help="one JSON object per day on stdout")
    demo.set_defaults(func=_demo)
    add_forecast_parser(sub)
    add_likelihood_parser(sub)


def _new_home(args: argparse.Namespace, kind: str) -> Path:
    """``--home``, else a new folder under ./.flywheel named by the demo, seed and time."""
    if args.home:
        return Path(args.home)
    return Path(".flywheel") / f"{kind}-seed{args.seed}-{dt.datetime.now():%Y%m%d-%H%M%S}"


def _demo_forecast(args: argparse.Namespace) -> int:
    from flywheel_assets.simulation.forecast_demo import run_forecast_demo

    home = _new_home(args, "forecast")
    r = run_forecast_demo(
        home=home.resolve(),
        days=args.days,
        items=args.items,
        seed=args.seed,
        start=dt.date.fromisoformat(args.start),
    )
    if args.json:
        print(
            json.dumps(
                {
                    "day": r.day.isoformat(),
                    "model_version": r.model_version,
                    "backtest": r.backtest.drop(columns=["dt"]).to_dict(orient="records"),
                    "hidden_days": r.scores.to_dict(orient="records"),
                    "fill_rate": r.fill_rate,
                    "service_level": r.service_level,
                },
                default=str,
            )
        )
        return 0
    cols = ["level", "model", "mase", "wape", "bias", "coverage_80", "coverage_80_discrete"]
    print(f"backtest on {r.day} (4 rolling origins, 28 days each):")
    print(r.backtest.sort_values(["level", "mase"])[cols].to_string(index=False))
    print(f"\nthe forecast made on {r.day} (champion {r.model_version}), on the 28 hidden days:")
    print(r.scores.to_string(index=False))
    print(
        f"\nreplenishment plan against demand drawn from the truth: fill rate {r.fill_rate:.3f} "
        f"(service level {r.service_level:.2f})"
    )
    print(
        f"home: {home.resolve()} (source {home.resolve() / ENV_FILE} to open it)", file=sys.stderr
    )
    return 0


def add_forecast_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo-forecast",
        help="a simulated shop with only its order history: import it, forecast, and score "
        "the forecast against the simulator's hidden next 28 days",
    )
    p.add_argument("--days", type=int, default=400, help="days of order history")
    p.add_argument("--items", type=int, default=500, help="items in the catalog on the first day")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", default="2025-01-01", help="first day of the history")
    p.add_argument(
        "--home", default=None, help="a fresh folder (default: ./.flywheel/forecast-...)"
    )
    p.add_argument("--json", action="store_true", help="the figures as one JSON object")
    p.set_defaults(func=_demo_forecast)


def _demo_likelihood(args: argparse.Namespace) -> int:
    from flywheel_assets.simulation.likelihood_demo import run_likelihood_demo

    home = _new_home(args, "likelihood")
    r = run_likelihood_demo(
        home=home.resolve(),
        days=args.days,
        users=args.users,
        seed=args.seed,
        start=dt.date.fromisoformat(args.start),
    )
    if args.json:
        print(
            json.dumps(
                {
                    "day": r.day.isoformat(),
                    "model_version": r.model_version,
                    "backtest": r.backtest.drop(
                        columns=["dt", "reliability_json", "gains_json"]
                    ).to_dict(orient="records"),
                    "hidden_days": r.hidden.to_dict(orient="records"),
                },
                default=str,
            )
        )
        return 0
    cols = ["horizon_days", "model", "rows", "base_rate", "auc", "log_loss", "ece", "lift_top10"]
    print(f"backtest on {r.day} (held-out days a week apart):")
    print(r.backtest.sort_values(["horizon_days", "model"])[cols].to_string(index=False))
    print(f"\nthe scores published on {r.day} ({r.model_version}), on the hidden days after it:")
    print(r.hidden.to_string(index=False))
    print(
        f"home: {home.resolve()} (source {home.resolve() / ENV_FILE} to open it)", file=sys.stderr
    )
    return 0


def add_likelihood_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo-likelihood",
        help="a simulated customer base: who will buy in 7 and 30 days, scored against what "
        "the users then did and the simulator's exact chances",
    )
    p.add_argument("--days", type=int, default=300, help="days of history")
    p.add_argument("--users", type=int, default=20_000, help="customers (signing up over time)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", default="2025-01-01", help="first day of the history")
    p.add_argument(
        "--home", default=None, help="a fresh folder (default: ./.flywheel/likelihood-...)"
    )
    p.add_argument("--json", action="store_true", help="the figures as one JSON object")
    p.set_defaults(func=_demo_likelihood)
