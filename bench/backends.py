"""bench/backends: the same flywheel days on each warehouse backend, timed and compared.

Runs `flywheel demo`'s loop (the default simulator: ~33k events a day) for ``--days`` days with
one seed on:
  1. duckdb        the embedded default (DuckDB file, SQLite Dagster storage): the baseline;
  2. duckdb-enc    the same file encrypted at rest (FLYWHEEL_WAREHOUSE_ENCRYPTION_KEY; DuckDB's
                   mbedtls here, as the tests: httpfs cannot be downloaded on this machine);
  3. postgresql    warehouse and Dagster storage on PostgreSQL (dagster.production.yaml);
  4. pg-roles      as 3, through a pipeline login with least-privilege roles, every step acting
                   as its stage's role (FLYWHEEL_WAREHOUSE_ROLES).
Reported per backend: seconds per day (serving by the simulator plus the whole cycle), the
ratio to the embedded default in the same run, and whether every day's figures (events,
quarantined, champion, challenger, decision, CTR, purchase rate, oracle share) equal the
baseline's.

    .venv/bin/python bench/backends.py                 # 3 days each, ~6 minutes
    .venv/bin/python bench/backends.py --days 10       # the README's demo length

Needs PostgreSQL at FLYWHEEL_BENCH_PG_URL (default postgresql+psycopg://postgres@127.0.0.1/postgres).
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
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import code_version, last_run_steps, log  # noqa: E402

from flywheel_assets.platform.governance import STAGES, Roles, apply_grants  # noqa: E402
from flywheel_assets.platform.warehouse import Warehouse  # noqa: E402
from flywheel_assets.simulation.demo import run_demo  # noqa: E402

ADMIN = os.environ.get("FLYWHEEL_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1/postgres")
BACKENDS = ("duckdb", "duckdb-enc", "postgresql", "pg-roles")
SCRATCH_ENV = (
    "FLYWHEEL_WAREHOUSE_ENCRYPTION_KEY",
    "FLYWHEEL_DUCKDB_UNSAFE_CRYPTO",
    "FLYWHEEL_WAREHOUSE_ROLES",
)


def _admin_do(*statements: str) -> None:
    engine = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def _db_url(name: str, user: str | None = None) -> str:
    url = sa.engine.make_url(ADMIN).set(database=name)
    if user:
        url = url.set(username=user)
    return url.render_as_string(hide_password=False)


def run_backend(name: str, days: int, seed: int, start: dt.date, work: Path) -> dict[str, object]:
    for var in SCRATCH_ENV:
        os.environ.pop(var, None)
    tag = uuid.uuid4().hex[:8]
    wh_db, dagster_db = f"bench_wh_{tag}", f"bench_dagster_{tag}"
    cleanup: list[str] = []
    kwargs: dict[str, object] = {}
    roles = Roles(f"fwb{tag}")
    if name == "duckdb-enc":
        os.environ["FLYWHEEL_WAREHOUSE_ENCRYPTION_KEY"] = f"bench key {tag}"
        os.environ["FLYWHEEL_DUCKDB_UNSAFE_CRYPTO"] = "true"
    if name in ("postgresql", "pg-roles"):
        _admin_do(f'CREATE DATABASE "{wh_db}"', f'CREATE DATABASE "{dagster_db}"')
        cleanup += [f'DROP DATABASE IF EXISTS "{wh_db}" WITH (FORCE)',
                    f'DROP DATABASE IF EXISTS "{dagster_db}" WITH (FORCE)']  # fmt: skip
        server = sa.engine.make_url(ADMIN)
        os.environ.update(
            DAGSTER_PG_HOST=str(server.host), DAGSTER_PG_PORT=str(server.port or 5432),
            DAGSTER_PG_USERNAME=str(server.username), DAGSTER_PG_DB=dagster_db,
            DAGSTER_PG_PASSWORD=server.password or "unused-with-trust-auth",
        )  # fmt: skip
        kwargs = {"warehouse_url": _db_url(wh_db), "dagster_storage": "postgres"}
    if name == "pg-roles":
        login = f"{roles.prefix}_pipeline"
        _admin_do(f"CREATE ROLE {login} LOGIN")
        admin_wh = Warehouse(_db_url(wh_db))
        admin_wh.migrate(applied_by="bench")
        apply_grants(admin_wh, roles, actor="bench", why="bench", logins={login: list(STAGES)})
        admin_wh.dispose()
        os.environ["FLYWHEEL_WAREHOUSE_ROLES"] = roles.prefix
        kwargs["warehouse_url"] = _db_url(wh_db, login)
    marks = [time.perf_counter()]
    steps: list[dict[str, float]] = []

    def on_day(_row: dict[str, object]) -> None:
        marks.append(time.perf_counter())
        steps.append({k: round(v, 2) for k, v in last_run_steps().items()})

    try:
        rows = run_demo(
            days=days, seed=seed, start=start, home=work / name, on_day=on_day, **kwargs
        )
    finally:
        for var in SCRATCH_ENV:
            os.environ.pop(var, None)
        _admin_do(*cleanup)
        if name == "pg-roles":
            wh = Warehouse(_db_url("postgres"))
            names = [*roles.names().values(), f"{roles.prefix}_pipeline"]
            with wh.begin() as conn:  # their database is gone, and its grants with it
                for role in names:
                    conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
            wh.dispose()
    per_day = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    return {"rows": rows, "seconds_per_day": per_day, "steps": steps}


def _print_step_growth(name: str, steps: list[dict[str, float]], top: int = 8) -> None:
    """The steps whose seconds grow most from day 5 (or the first day) to the last day."""
    if len(steps) < 2:
        return
    first = 4 if len(steps) >= 5 else 0
    a, b = steps[first], steps[-1]
    grown = sorted(b, key=lambda k: -(b[k] - a.get(k, 0.0)))[:top]
    print(f"\n{name}: steps that grow most, seconds on day {first + 1} and day {len(steps)}")
    for key in grown:
        print(f"  {key:60} {a.get(key, 0.0):7.2f} {b[key]:7.2f}")
    print(f"  {'all steps (sum)':60} {sum(a.values()):7.2f} {sum(b.values()):7.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", default="2026-01-01")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "backends.json"))
    args = parser.parse_args()
    start = dt.date.fromisoformat(args.start)
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-backends-") as tmp:
        for name in args.backends.split(","):
            log(f"== {name}: {args.days} days, seed {args.seed}")
            results[name] = run_backend(name, args.days, args.seed, start, Path(tmp))
    base = results[next(iter(results))]
    base_total = sum(base["seconds_per_day"])
    print(f"bench/backends, commit {code_version()}, {platform.node()} "
          f"({os.cpu_count()} cores), {args.days} days, seed {args.seed}")  # fmt: skip
    print(f"{'backend':12} {'s/day mean':>10} {'s/day max':>10} {'ratio':>6}  same figures")
    for name, r in results.items():
        secs = r["seconds_per_day"]
        same = r["rows"] == base["rows"]
        print(f"{name:12} {sum(secs) / len(secs):10.1f} {max(secs):10.1f} "
              f"{sum(secs) / base_total:6.2f}  {'yes' if same else 'NO'}")  # fmt: skip
    # growth with history: each day's seconds, and the last day against day 5 (issue 24)
    print("\nseconds per day (growth with history):")
    print(f"{'backend':12} " + " ".join(f"{d + 1:>6}" for d in range(args.days))
          + ("  last/day5" if args.days >= 5 else ""))  # fmt: skip
    for name, r in results.items():
        secs = r["seconds_per_day"]
        growth = f"  {secs[-1] / secs[4]:9.2f}" if len(secs) >= 5 else ""
        print(f"{name:12} " + " ".join(f"{x:6.1f}" for x in secs) + growth)
    for name, r in results.items():
        if name != next(iter(results)):
            ratios = [
                x / b for x, b in zip(r["seconds_per_day"], base["seconds_per_day"], strict=True)
            ]
            print(
                f"{name} / {next(iter(results))} per day: " + " ".join(f"{x:.2f}" for x in ratios)
            )
    for name, r in results.items():
        _print_step_growth(name, r["steps"])
    last = base["rows"][-1]
    print(f"last day's figures ({last['day']}): oracle share {last['oracle_share']}, "
          f"purchase rate {last['purchase_rate']}, champion {last['champion']}")  # fmt: skip
    print(f"reproduce: .venv/bin/python bench/backends.py --days {args.days} --seed {args.seed} "
          f"--backends {args.backends}")  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    return 0 if all(r["rows"] == base["rows"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
