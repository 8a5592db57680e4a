"""The demo loop: the simulator plays the shop, the flywheel turns once per simulated day.

Day D: the champion (cold start before any model) serves the simulator's requests; the
simulated users' events land as files in FLYWHEEL_LANDING_DIR/events/dt=D/; the whole cycle is
materialised for partition D through Dagster (recorded in the instance at DAGSTER_HOME, so the
UI shows every run); its promotion decision picks who serves D + 1.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from flywheel_assets import registry
from flywheel_assets.evaluation.settings import ExperimentSettings
from flywheel_assets.ingestion.accounting import COUNT_NAMES, day_counts
from flywheel_assets.platform.settings import FlywheelPaths
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.simulation.simulator import ShopSimulator, SimulatorConfig
from flywheel_assets.training.settings import TrainingSettings

COLUMNS = [
    "day",
    "read",
    "accepted",
    "quarantined",
    "duplicates",
    "champion",
    "challenger",
    "decision",
    "ctr",
    "purchase_rate",
    "oracle_share",
    "baseline_share",
]
# dagster.yaml and dagster.production.yaml (the repository's top level; links to them in the
# package make a built wheel carry them too).
INSTANCE_DIR = Path(__file__).resolve().parents[1] / "instance"
DEMO_EXPERIMENT_DAYS = 3
# Settings a demo home never inherits from the shell: its own warehouse, folders and days (a
# shell that sourced another demo's flywheel.env has partitions that may not hold these days).
DEMO_CLEARS = (
    "FLYWHEEL_WAREHOUSE_URL",
    "FLYWHEEL_LANDING_DIR",
    "FLYWHEEL_MODELS_DIR",
    "FLYWHEEL_PARTITION_START",
    "FLYWHEEL_PARTITION_END",
)


def prepare_home(
    home: Path,
    warehouse_url: str | None = None,
    seed: int | None = None,
    dagster_storage: str = "sqlite",
) -> FlywheelPaths:
    """Create a fresh home and point the environment at it (warehouse: DuckDB inside it,
    unless ``warehouse_url`` names another, e.g. an empty PostgreSQL database).

    With ``seed`` the pseudonym key is derived from it, so a demo run is reproducible: users'
    experiment arms hash their pseudonyms. The simulated shop's ids protect nobody; a real
    deployment's key is a secret from the environment (docs/decisions.md, 44)."""
    if home.exists() and any(home.iterdir()):
        raise SystemExit(f"{home} is not empty: the demo needs a fresh home (pass another --home)")
    home.mkdir(parents=True, exist_ok=True)
    key_file = home / "pseudonym.key"
    key = (
        secrets.token_hex(32)
        if seed is None
        else hashlib.sha256(f"flywheel demo pseudonym key, seed {seed}".encode()).hexdigest()
    )
    key_file.write_text(key)
    key_file.chmod(0o600)
    dagster_home = home / "dagster"
    dagster_home.mkdir()
    # Dagster's storage: SQLite in the home (dagster.yaml), or PostgreSQL as in production
    # (dagster.production.yaml, its server from the DAGSTER_PG_* variables).
    if dagster_storage not in DAGSTER_STORAGES:
        raise SystemExit(f"unknown Dagster storage {dagster_storage!r}: {list(DAGSTER_STORAGES)}")
    shutil.copy(INSTANCE_DIR / DAGSTER_STORAGES[dagster_storage], dagster_home / "dagster.yaml")
    os.environ["FLYWHEEL_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    os.environ["FLYWHEEL_PSEUDONYM_KEY"] = key_file.read_text().strip()
    for var in DEMO_CLEARS:
        os.environ.pop(var, None)
    if warehouse_url:
        os.environ["FLYWHEEL_WAREHOUSE_URL"] = warehouse_url
    # A simulated shop is small and its models improve fast: experiments get three daily
    # looks (production default: 7, a whole week) unless the environment says otherwise.
    os.environ.setdefault("FLYWHEEL_EXPERIMENT_MAX_DAYS", str(DEMO_EXPERIMENT_DAYS))
    return FlywheelPaths.from_env(home)


ENV_FILE = "flywheel.env"


def write_env_file(
    paths: FlywheelPaths, start: dt.date, days: int, warehouse_url: str | None
) -> Path:
    """``$home/flywheel.env``: the settings the demo ran with, for every later process on the
    home (``source`` it, then ``dagster dev``, ``flywheel status``, a backfill). The
    partitions are the demo's days, so the UI shows those and not two years of gaps; the
    pseudonym key stays in its own file (read when sourced, never copied)."""
    home = paths.home
    settings = {
        "FLYWHEEL_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "FLYWHEEL_PARTITION_START": start.isoformat(),
        "FLYWHEEL_PARTITION_END": (start + dt.timedelta(days=days - 1)).isoformat(),
        "FLYWHEEL_EXPERIMENT_MAX_DAYS": str(ExperimentSettings.resolve().experiment_max_days),
        "FLYWHEEL_REALTIME_FEATURES": str(TrainingSettings.resolve().realtime_features).lower(),
    }
    if warehouse_url:
        settings["FLYWHEEL_WAREHOUSE_URL"] = warehouse_url
    # What the demo cleared must be cleared here too: a shell set up for a real deployment
    # must not point a demo's Dagster home at the real warehouse or models.
    cleared = [v for v in DEMO_CLEARS if v not in settings]
    key_file = shlex.quote(str(home / "pseudonym.key"))
    lines = [
        "# The settings of this demo home: `source` this file, then run `dagster dev`, `dg dev`,",
        "# `flywheel status` or a backfill on it (README, 'Open the UI').",
        *(f"export {k}={shlex.quote(v)}" for k, v in settings.items()),
        *(f"unset {k}" for k in cleared),
        # a missing key file stops here instead of exporting an empty key
        f'FLYWHEEL_PSEUDONYM_KEY="$(cat {key_file})" || '
        '{ echo "flywheel.env: cannot read the pseudonym key" >&2; return 1; }',
        "export FLYWHEEL_PSEUDONYM_KEY",
    ]
    path = home / ENV_FILE
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)  # the warehouse URL may name a login
    return path


DAGSTER_STORAGES = {"sqlite": "dagster.yaml", "postgres": "dagster.production.yaml"}


def _iso_times(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def write_landing(df: pd.DataFrame, landing_dir: Path, source: str, day: dt.date, fmt: str) -> Path:
    folder = landing_dir / source / f"dt={day:%Y-%m-%d}"
    folder.mkdir(parents=True, exist_ok=True)
    out = _iso_times(df)
    path = folder / f"{source}-{day:%Y%m%d}.{fmt}"
    tmp = path.with_suffix(path.suffix + ".tmp")
    if fmt == "jsonl":
        out.to_json(tmp, orient="records", lines=True)
    elif fmt == "csv":
        out.to_csv(tmp, index=False)
    elif fmt == "parquet":
        out.to_parquet(tmp, index=False)
    else:
        raise ValueError(f"unknown landing format {fmt!r}: use jsonl, csv or parquet")
    tmp.replace(path)  # writers publish whole files: readers ignore *.tmp
    return path


def produce_day(df: pd.DataFrame, bootstrap: str, topic: str, day: dt.date) -> int:
    """The day's feed as JSON messages on ``topic``, stamped at the day's noon (the broker
    day is the day they belong to), as a shop's producer would send them."""
    from confluent_kafka import Producer

    lines = _iso_times(df).to_json(orient="records", lines=True).splitlines()
    stamp = int(dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC).timestamp() * 1000)
    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i, line in enumerate(lines):
        producer.produce(
            topic,
            value=line.encode(),
            timestamp=stamp,
            on_delivery=lambda err, _m: errors.append(str(err)) if err else None,
        )
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(60) or errors:
        raise SystemExit(f"producing the day's events to Kafka failed: {errors[:3]}")
    return len(lines)


def materialize_kafka() -> None:
    """Read the topic to its end (the kafka_events asset), recorded in the demo's instance."""
    import dagster as dg

    from flywheel_assets.defs.ingestion.kafka import kafka_events
    from flywheel_assets.defs.resources import resources

    result = dg.materialize(
        [kafka_events],
        resources=resources(),
        instance=dg.DagsterInstance.get(),
        tags={"flywheel/source": "demo"},
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    if not result.success:
        raise SystemExit("reading the Kafka topic failed; see the run in the Dagster UI")


def _root_cause(error: object) -> str:
    """The innermost error's message: "Error occurred while executing op" says nothing."""
    if error is None:
        return "?"
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return str(getattr(error, "message", error)).strip()


def materialize_day(day: dt.date) -> None:
    import dagster as dg

    from flywheel_assets.definitions import loaded
    from flywheel_assets.defs.cycle import flywheel_cycle
    from flywheel_assets.orchestration.runs import reap_dead

    instance = dg.DagsterInstance.get()
    # execute_in_process runs Dagster's own in-process executor, not flywheel's: clear what a
    # killed earlier run left (a STARTED run, a held pool slot) so this one does not wait.
    for line in reap_dead(instance, by="flywheel demo"):
        print(f"cleaned up a dead run: {line}")
    # The cycle job itself, so the UI lists each demo day as a flywheel_cycle run, as the
    # schedule would have launched it.
    result = (
        loaded()
        .resolve_job_def(flywheel_cycle.name)
        .execute_in_process(
            partition_key=day.isoformat(),
            instance=instance,
            tags={"flywheel/source": "demo"},
            # The per-day progress line is the demo's output; Dagster's step log stays in the
            # instance (and the UI) instead of flooding the terminal.
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
    )
    if not result.success:
        failures = [
            f"{e.step_key}: {_root_cause(e.step_failure_data.error)}"
            for e in result.all_events
            if e.event_type_value == "STEP_FAILURE"
        ]
        raise SystemExit(
            f"the cycle for {day} failed:\n  "
            + "\n  ".join(failures)
            + "\nfix the cause, then re-run the day (re-materialising a day is safe); "
            "the run's full log is in the Dagster UI (dagster dev)"
        )


def record_simulator_day(
    wh: Warehouse,
    day: dt.date,
    oracle: float,
    baseline: float,
    demand: pd.DataFrame | None = None,
) -> None:
    """What only the simulator knows (the served policy against the oracle, for the
    flywheel_health asset's plot; each item's true expected units, for the demand forecast);
    replaced when a day is served again."""
    with wh.begin() as conn:
        wh.delete_partition(conn, "simulator_days", day)
        wh.insert_df(
            conn,
            "simulator_days",
            pd.DataFrame([{"dt": day, "oracle_share": oracle, "baseline_share": baseline}]),
        )
        if demand is not None and len(demand):
            wh.delete_partition(conn, "simulator_demand", day)
            wh.insert_df(
                conn, "simulator_demand", demand[["item_id", "expected_units"]].assign(dt=day)
            )


def day_summary(wh: Warehouse, day: dt.date) -> dict[str, object]:
    """The day's event counts (read, accepted, quarantined, duplicates: the accounting's
    names), its decision named in full, and what the served traffic did."""
    with wh.begin() as conn:
        row = wh.query_df(conn, load_sql("reporting/day_summary"), dt=day).iloc[0]
        found = day_counts(wh, conn, day, day).get(day, {})
        counts = {k: found.get(k) for k in COUNT_NAMES}
        decided = registry.day_decisions(conn, day, day).get(day, {})
    return (
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        | counts
        | {"decision": decided.get("decision"), "challenger": decided.get("challenger")}
    )


def run_demo(
    *,
    days: int,
    seed: int,
    start: dt.date,
    home: Path,
    fmt: str = "jsonl",
    epsilon: float = 0.05,
    on_day: Callable[[dict[str, object]], None] | None = None,
    config: SimulatorConfig | None = None,
    warehouse_url: str | None = None,
    kafka: bool = False,
    after_cycle: Callable[[dt.date, Warehouse], None] | None = None,
    dagster_storage: str = "sqlite",
    realtime: bool | None = None,
) -> list[dict[str, object]]:
    """``kafka``: the events go through a Kafka topic (a dev broker started for the demo)
    instead of landing files; catalog and users still arrive as files. ``after_cycle`` is
    called after each day's cycle (tests use it to act as an operator would). ``realtime``:
    whether challengers learn the real-time features (FLYWHEEL_REALTIME_FEATURES, written to
    the home's flywheel.env); by default on in the dynamic world and off in the static one, so
    ``--world static`` is the original shop and the original flywheel. Like the partitions,
    never inherited from the shell."""
    if realtime is None:
        realtime = (config or SimulatorConfig(seed=seed)).dynamic
    os.environ["FLYWHEEL_REALTIME_FEATURES"] = str(realtime).lower()
    if not kafka:
        return _run_demo(
            days, seed, start, home, fmt, epsilon, on_day, config, warehouse_url,
            after_cycle=after_cycle, dagster_storage=dagster_storage,
        )  # fmt: skip
    from flywheel_assets.platform.dev_broker import DevBroker, create_topic

    with DevBroker() as broker:
        topic = "flywheel.events"
        create_topic(broker.bootstrap, topic, partitions=3)
        os.environ["FLYWHEEL_KAFKA_BOOTSTRAP"] = broker.bootstrap
        os.environ["FLYWHEEL_KAFKA_TOPIC"] = topic
        try:
            return _run_demo(
                days, seed, start, home, fmt, epsilon, on_day, config, warehouse_url,
                kafka=(broker.bootstrap, topic), after_cycle=after_cycle,
                dagster_storage=dagster_storage,
            )  # fmt: skip
        finally:
            os.environ.pop("FLYWHEEL_KAFKA_BOOTSTRAP", None)
            os.environ.pop("FLYWHEEL_KAFKA_TOPIC", None)


def _run_demo(
    days: int,
    seed: int,
    start: dt.date,
    home: Path,
    fmt: str,
    epsilon: float,
    on_day: Callable[[dict[str, object]], None] | None,
    config: SimulatorConfig | None,
    warehouse_url: str | None,
    kafka: tuple[str, str] | None = None,
    after_cycle: Callable[[dt.date, Warehouse], None] | None = None,
    dagster_storage: str = "sqlite",
) -> list[dict[str, object]]:
    from flywheel_assets.platform.pseudonym import Pseudonymiser
    from flywheel_assets.simulation.demo_ranker import ChampionPolicy

    paths = prepare_home(home, warehouse_url, seed=seed, dagster_storage=dagster_storage)
    write_env_file(paths, start, days, warehouse_url)
    print(f"flywheel demo home: {paths.home}", file=sys.stderr)
    sim = ShopSimulator(config or SimulatorConfig(seed=seed), start=start)
    pseudonymiser = Pseudonymiser((paths.home / "pseudonym.key").read_text().strip())
    wh = Warehouse(paths.warehouse_url)
    wh.migrate()
    rows = []
    for i in range(days):
        t0 = time.perf_counter()
        day = start + dt.timedelta(days=i)
        write_landing(sim.catalog_records(day), paths.landing_dir, "catalog", day, fmt)
        write_landing(sim.user_records(day), paths.landing_dir, "users", day, fmt)
        policy = ChampionPolicy(
            wh, pseudonymiser, day, k=sim.config.slate_size, epsilon=epsilon, seed=seed
        )
        result = sim.serve_day(day, policy)
        record_simulator_day(wh, day, result.oracle_share, result.baseline_share, result.demand)
        # The purchases as the shop's order system delivers them (docs/orders.md).
        write_landing(result.orders, paths.landing_dir, "orders", day, fmt)
        if kafka:
            produce_day(result.feed, *kafka, day)
            materialize_kafka()
        else:
            write_landing(result.feed, paths.landing_dir, "events", day, fmt)
        print(
            f"[{i + 1}/{days}] {day}: served {result.n_requests} requests, {len(result.feed)} events "
            f"{'sent to Kafka' if kafka else 'landed'}; running the cycle...",
            file=sys.stderr,
        )
        materialize_day(day)
        if after_cycle:
            after_cycle(day, wh)
        s = day_summary(wh, day)
        row = {
            "day": day.isoformat(),
            **{k: s[k] for k in COUNT_NAMES},
            "champion": policy.model_version,
            "challenger": s["challenger"],
            "decision": s["decision"],
            "ctr": round(float(s["clicks"] or 0) / max(int(s["impressions"] or 0), 1), 6),
            "purchase_rate": round(float(s["purchases"] or 0) / max(int(s["requests"] or 0), 1), 6),
            "oracle_share": round(result.oracle_share, 6),
            "baseline_share": round(result.baseline_share, 6),
        }
        rows.append(row)
        print(f"[{i + 1}/{days}] {day}: done in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        if on_day:
            on_day(row)
    return rows


def run_job_for_day(job_name: str, day: dt.date, source: str) -> None:
    """Run one of the code location's jobs for ``day`` in this process, on the home's Dagster
    instance (so the run is in its UI), quietly; exits saying where to look when it fails."""
    import dagster as dg

    from flywheel_assets.definitions import loaded

    result = (
        loaded()
        .resolve_job_def(job_name)
        .execute_in_process(
            partition_key=day.isoformat(),
            instance=dg.DagsterInstance.get(),
            tags={"flywheel/source": source},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
    )
    if not result.success:
        raise SystemExit(f"the {job_name} run for {day} failed; see it in the Dagster UI")
