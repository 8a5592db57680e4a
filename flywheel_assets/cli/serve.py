"""`flywheel serve` and `flywheel simulate`: the ranking service, and the simulator driving it."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from flywheel_assets.cli.common import add_world_argument, settings_or_exit


def _serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    # Workers are separate processes: they read their settings from the environment.
    for var, value in (
        ("FLYWHEEL_SERVE_EPSILON", args.epsilon),
        ("FLYWHEEL_SERVE_SINK", args.sink),
        ("FLYWHEEL_SERVE_RELOAD_SECONDS", args.reload_seconds),
    ):
        if value is not None:
            os.environ[var] = str(value)
    from flywheel_assets.platform.settings import PseudonymSettings
    from flywheel_assets.serving.settings import ServingSettings

    settings_or_exit(ServingSettings)  # a wrong FLYWHEEL_SERVE_* fails here, not in every worker
    if not settings_or_exit(PseudonymSettings).key:
        print(
            "FLYWHEEL_PSEUDONYM_KEY is not set: the service needs the key ingestion uses, to "
            "find users' features and assign experiment arms",
            file=sys.stderr,
        )
        return 2
    uvicorn.run(
        "flywheel_assets.serving.app:create_app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
    )
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import httpx

    from flywheel_assets.platform.settings import FlywheelPaths
    from flywheel_assets.simulation.live_shop import LiveShopError, simulate_day
    from flywheel_assets.simulation.simulator import ShopSimulator, SimulatorConfig

    sessions = {"sessions_per_day": args.sessions} if args.sessions else {}
    config = SimulatorConfig.for_world(args.world, seed=args.seed, **sessions)
    sim = ShopSimulator(config, start=dt.date.fromisoformat(args.start))
    first = dt.date.fromisoformat(args.from_day) if args.from_day else sim.start
    landing = None if args.no_exports else (
        Path(args.landing_dir) if args.landing_dir else FlywheelPaths.from_env().landing_dir
    )  # fmt: skip
    print(
        f"{'sim day':>10} {'requests':>8} {'events':>7} {'oracle':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7}  versions",
        flush=True,
    )
    with httpx.Client(base_url=args.url.rstrip("/"), timeout=args.timeout) as client:
        try:
            ready = client.get("/readyz")
        except httpx.TransportError as exc:
            print(f"cannot reach {args.url}: {exc}; is `flywheel serve` running?", file=sys.stderr)
            return 2
        if ready.status_code != 200:
            print(f"{args.url} is not ready: {ready.text}", file=sys.stderr)
            return 2
        for i in range(args.days):
            day = first + dt.timedelta(days=i)
            try:
                r = simulate_day(
                    client, sim, day, landing_dir=landing, concurrency=args.concurrency
                )
            except LiveShopError as exc:
                print(f"{day}: {exc}", file=sys.stderr)
                return 1
            versions = ", ".join(f"{v} x{n}" for v, n in r.versions.items())
            print(
                f"{day!s:>10} {r.requests:>8} {r.impressions + r.feedback:>7} "
                f"{r.oracle_share:>7.3f} {r.p50_ms:>7.1f} {r.p99_ms:>7.1f}  {versions}",
                flush=True,
            )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    sv = sub.add_parser(
        "serve",
        help="the ranking service over HTTP (POST /rank, /events; /docs for the API)",
        description="Serves the published champion (and the experiment's challenger for its "
        "share of users), logs impressions and feedback to the landing folder or Kafka, and "
        "switches models without a restart when the pipeline publishes new ones. Needs "
        "FLYWHEEL_HOME and FLYWHEEL_PSEUDONYM_KEY (README, 'Serving').",
    )
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--workers", type=int, default=1, help="processes (one per core)")
    sv.add_argument("--epsilon", type=float, default=None, help="exploration (default 0.05)")
    sv.add_argument("--sink", choices=["landing", "kafka"], default=None)
    sv.add_argument("--reload-seconds", type=float, default=None)
    sv.add_argument("--log-level", default="info")
    sv.set_defaults(func=_serve)

    sm = sub.add_parser(
        "simulate",
        help="drive a running ranking service with the shop simulator over HTTP",
        description="Each simulated day: the shop's catalog and users exports to the landing "
        "folder, one POST /rank per request, the simulated users' feedback to POST /events.",
    )
    sm.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    sm.add_argument("--days", type=int, default=1, help="simulated days to play")
    sm.add_argument("--seed", type=int, default=1)
    sm.add_argument("--start", default="2026-01-01", help="the simulated shop's first day")
    sm.add_argument(
        "--from-day", default=None, help="first simulated day to play (default: --start)"
    )
    sm.add_argument("--sessions", type=int, default=None, help="sessions per day (default 1,300)")
    sm.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    sm.add_argument("--timeout", type=float, default=30.0)
    sm.add_argument(
        "--landing-dir", default=None, help="where exports go (default: FLYWHEEL_LANDING_DIR)"
    )
    sm.add_argument("--no-exports", action="store_true", help="do not write catalog/users exports")
    add_world_argument(sm)
    sm.set_defaults(func=_simulate)
