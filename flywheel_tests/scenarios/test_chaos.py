"""Kill tests: a day's whole cycle, run as a user runs it (`dagster asset materialize` in its own
process), is SIGKILLed inside every stage; the plain rerun must complete on its own within a
bound, and every warehouse table must hold exactly the rows of the uninterrupted run: 0 hangs,
0 lost, 0 doubled. On DuckDB (a kill mid-write must leave a file that opens and recovers) and
on PostgreSQL. Behind the `chaos` marker (`.ci/run` runs it after the suite)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from flywheel_assets.orchestration.runs import run_states
from flywheel_assets.platform.files import PARTIAL
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.simulation.demo import run_demo
from flywheel_assets.simulation.simulator import SimulatorConfig
from flywheel_tests.support.environment import PG_ADMIN_URL, restored_environment

pytestmark = pytest.mark.chaos

SHOP = SimulatorConfig(
    seed=5, n_users=1_500, n_items=200, sessions_per_day=250, new_users_per_day=20
)
START = dt.date(2026, 3, 1)
DAY = START + dt.timedelta(days=1)  # day 2: a champion, a challenger and an experiment exist
RERUN_BOUND_S = 150.0  # a rerun that takes longer than this counts as a hang
CLI = [
    str(Path(sys.executable).with_name("dagster")),
    "asset",
    "materialize",
    "-m",
    "flywheel_assets.definitions",
    "--select",
    "* and not group:kafka",
    "--partition",
    DAY.isoformat(),
]

# (step, seconds after its STEP_START line) for every stage of the cycle. A step's start is
# seen in the run's log a few milliseconds after it began, so 0.0 is already inside it.
KILL_POINTS = [
    ("catalog_items", 0.0),  # ingestion
    ("raw_events", 0.0),
    ("raw_events", 0.15),
    ("served_requests", 0.0),
    ("catalog_items_catalog_items_suite", 0.5),  # quality
    ("raw_events_raw_events_suite", 0.0),
    ("accepted_events", 0.0),
    ("accepted_events", 0.1),
    ("accepted_events_events_quarantine_share", 0.0),
    ("user_activity_daily", 0.0),  # features
    ("user_features", 0.05),
    ("user_category_features", 0.0),
    ("training_examples", 0.0),  # training
    ("challenger_model", 0.3),
    ("offline_evaluation", 0.0),  # evaluation
    ("online_evaluation", 0.2),
    ("promotion_decision", 0.0),  # promotion
    ("online_features", 0.2),  # publishing: the serving bundle, the pointer, the health page
    ("champion_model", 0.0),
    ("flywheel_health", 0.0),
]
# SIGTERM (what Kubernetes sends before SIGKILL): the run stops within 10 s holding nothing.
TERM_POINTS = [("accepted_events", 0.0, "SIGTERM"), ("challenger_model", 0.3, "SIGTERM")]
# One point per stage on PostgreSQL (the same code paths; its server makes each run slower).
PG_POINTS = [
    ("raw_events", 0.1),
    ("accepted_events", 0.05),
    ("user_features", 0.0),
    ("challenger_model", 0.5),
    ("online_evaluation", 0.0),
    ("promotion_decision", 0.0),
    ("champion_model", 0.0),
]


def _table_counts(url: str) -> dict[str, int]:
    wh = Warehouse(url)
    try:
        with wh.begin() as conn:
            names = [
                r[0]
                for r in conn.execute(
                    sa.text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                    )
                )
            ]
            # names come from the catalog, not from data
            return {
                n: int(conn.execute(sa.text(f'SELECT COUNT(*) FROM "{n}"')).scalar())  # noqa: S608
                for n in sorted(names)
            }
    finally:
        wh.dispose()


# Logs that grow by design with every run, killed or not: the audit trail and the alerts.
APPEND_ONLY = {"audit_log", "alerts"}


def _comparable(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k not in APPEND_ONLY}


class _Run:
    """The cycle in its own process group; its log is read as it is written."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.lines: list[str] = []
        self.seen = threading.Condition()
        self.proc = subprocess.Popen(
            CLI,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with self.log.open("w") as out:
            for line in self.proc.stderr:
                out.write(line)
                with self.seen:
                    self.lines.append(line)
                    self.seen.notify_all()
        with self.seen:
            self.seen.notify_all()

    def wait_for_step(self, step: str, timeout: float = 120.0) -> bool:
        marker = f" - {step} - STEP_START "
        deadline = time.monotonic() + timeout
        with self.seen:
            while time.monotonic() < deadline:
                if any(marker in line for line in self.lines):
                    return True
                if self.proc.poll() is not None and not self.reader.is_alive():
                    return False
                self.seen.wait(0.05)
        return False

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.reader.join(5)

    def terminate(self) -> float:
        """SIGTERM, as Kubernetes sends first; the seconds until the process exited."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.reader.join(5)
        return time.monotonic() - sent

    def finish(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -999
        finally:
            self.reader.join(5)


def _home(tmp: Path, warehouse_url: str | None) -> tuple[dict[str, str], str]:
    """A 2-day demo home; the environment a user's shell would have for it."""
    with restored_environment():
        home = tmp / "home"
        run_demo(days=2, seed=5, start=START, home=home, config=SHOP, warehouse_url=warehouse_url)
        env = {
            **os.environ,
            "FLYWHEEL_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "FLYWHEEL_PSEUDONYM_KEY": os.environ["FLYWHEEL_PSEUDONYM_KEY"],
            "FLYWHEEL_WAREHOUSE_URL": warehouse_url or f"duckdb:///{home / 'warehouse.duckdb'}",
            "OMP_WAIT_POLICY": "PASSIVE",
        }
    return env, env["FLYWHEEL_WAREHOUSE_URL"]


def _stray_files(home: Path) -> list[str]:
    """Partial files a kill could leave where readers look: the models, the serving folder."""
    found = []
    for folder in (home / "models", home / "serving"):
        # the partial name platform/files.py writes before its rename (".tmp": older writers)
        found += [str(p) for p in folder.rglob("*") if p.name.endswith((PARTIAL, ".tmp"))]
        found += [str(p) for p in folder.rglob(".*staging")]
    return found


def _kill_and_rerun(env: dict[str, str], url: str, points: list, tmp: Path) -> list[dict]:
    home = Path(env["FLYWHEEL_HOME"])
    baseline = _Run(env, tmp / "baseline.log")
    assert baseline.finish(RERUN_BOUND_S) == 0, (tmp / "baseline.log").read_text()[-3000:]
    expected = _comparable(_table_counts(url))
    assert expected["events"] > 0 and expected["model_registry"] > 0
    results = []
    for i, (step, delay, *how) in enumerate(points):
        victim = _Run(env, tmp / f"kill-{i}.log")
        assert victim.wait_for_step(step), f"{step} never started: see {victim.log}"
        time.sleep(delay)
        if how == ["SIGTERM"]:
            stopped_in = victim.terminate()
            assert stopped_in < 10, f"SIGTERM in {step}: the run took {stopped_in:.1f} s to stop"
            assert victim.proc.returncode != 0  # it stopped, it did not carry on to the end
            instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
            assert run_states(instance) == [], "a stopped run must hold nothing"
        else:
            victim.kill()
        began = time.monotonic()
        rerun = _Run(env, tmp / f"rerun-{i}.log")
        code = rerun.finish(RERUN_BOUND_S)
        took = time.monotonic() - began
        log = rerun.log.read_text()
        assert code == 0, f"rerun after a kill in {step} (+{delay}s): exit {code}\n{log[-3000:]}"
        counts = _comparable(_table_counts(url))
        diff = {t: (expected.get(t), counts.get(t)) for t in expected.keys() | counts.keys()
                if expected.get(t) != counts.get(t)}  # fmt: skip
        assert not diff, f"after a kill in {step} (+{delay}s): (expected, got) {diff}"
        assert not _stray_files(home), _stray_files(home)
        results.append({"step": step, "delay": delay, "rerun_s": round(took, 1)})
    return results


# The DuckDB points in two halves of about equal time, each on its own home: the two xdist
# workers share them (about 400 s each on 2 cores, instead of 800 s on one worker). A later
# point costs more (the victim runs longer before its kill), so the first half has more points.
SPLIT = [step for step, *_ in KILL_POINTS].index("challenger_model")
DUCKDB_HALVES = {
    "ingestion to training examples": KILL_POINTS[:SPLIT],
    "training to publishing, and SIGTERM": KILL_POINTS[SPLIT:] + TERM_POINTS,
}


@pytest.mark.parametrize("half", list(DUCKDB_HALVES))
def test_kills_in_every_stage_on_duckdb_then_the_rerun_completes_with_the_same_rows(tmp_path, half):
    assert len(KILL_POINTS) >= 20
    env, url = _home(tmp_path, None)
    results = _kill_and_rerun(env, url, DUCKDB_HALVES[half], tmp_path)
    print("\n".join(f"{r['step']} +{r['delay']}s: rerun {r['rerun_s']} s" for r in results))


@pytest.fixture
def pg_warehouse() -> Iterator[str]:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = f"flywheel_chaos_{uuid.uuid4().hex[:8]}"
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL not reachable at {PG_ADMIN_URL} (CI=true): {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        yield (
            sa.engine.make_url(PG_ADMIN_URL)
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_kills_in_every_stage_on_postgres_then_the_rerun_completes_with_the_same_rows(
    tmp_path, pg_warehouse
):
    env, url = _home(tmp_path, pg_warehouse)
    results = _kill_and_rerun(env, url, PG_POINTS, tmp_path)
    print("\n".join(f"{r['step']} +{r['delay']}s: rerun {r['rerun_s']} s" for r in results))


MONITOR_BOUND_S = 90.0
FINISHED = (
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
)  # docs/operations.md: a dead worker's run is failed and its slots freed


def test_the_daemon_fails_a_killed_scheduled_run_frees_its_slots_and_a_retry_completes(tmp_path):
    """The daemon path, as `dagster dev` runs it: the schedule starts yesterday's cycle, its
    worker is SIGKILLed mid-cycle; run monitoring marks the run failed and frees its slots, the
    run is retried and the retry completes, and an alert names the dead run."""
    from flywheel_assets.orchestration.runs import held_slots
    from flywheel_assets.platform.alerts import read_alerts
    from flywheel_assets.platform.dev_broker import free_port
    from flywheel_tests.scenarios.test_live_automation import open_instance_when_up

    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    with restored_environment():
        home = tmp_path / "home"
        run_demo(days=2, seed=5, start=yesterday - dt.timedelta(days=1), home=home, config=SHOP)
        key = os.environ["FLYWHEEL_PSEUDONYM_KEY"]
    env = {
        **os.environ,
        "FLYWHEEL_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "FLYWHEEL_PSEUDONYM_KEY": key,
        "FLYWHEEL_CYCLE_CRON": "* * * * *",  # every minute, so the test does not wait a night
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    env.pop("FLYWHEEL_WAREHOUSE_URL", None)
    port = free_port()
    log = tmp_path / "dagster-dev.log"
    dev = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "dev", "-m",
         "flywheel_assets.definitions", "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip

    def scheduled(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
        return [
            r
            for r in instance.get_runs()
            if r.job_name == "flywheel_cycle" and r.tags.get("dagster/partition") == str(yesterday)
        ]

    try:
        deadline = time.monotonic() + 400
        instance = open_instance_when_up(home / "dagster", port, dev, deadline)
        victim = None
        while victim is None and time.monotonic() < deadline:  # a run well into its cycle
            assert dev.poll() is None, log.read_text()[-3000:]
            for run in scheduled(instance):
                steps = {
                    e.step_key
                    for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
                }
                if "user_features" in steps and "flywheel/worker_pid" in run.tags:
                    victim = run
            time.sleep(0.5)
        assert victim is not None, f"no scheduled cycle reached user_features: {log}"
        os.kill(int(victim.tags["flywheel/worker_pid"]), signal.SIGKILL)
        killed = time.monotonic()

        failed_after = freed_after = None
        retry = None
        while time.monotonic() < deadline:
            now = time.monotonic() - killed
            status = instance.get_run_by_id(victim.run_id).status
            if failed_after is None and status == dg.DagsterRunStatus.FAILURE:
                failed_after = now
            if failed_after is not None and freed_after is None:
                if victim.run_id not in held_slots(instance):
                    freed_after = now
            retries = [r for r in scheduled(instance)
                       if r.tags.get("dagster/parent_run_id") == victim.run_id]  # fmt: skip
            retry = retries[0] if retries else None
            if freed_after is not None and retry and retry.status in FINISHED:
                break
            time.sleep(1)
        assert failed_after is not None and failed_after < MONITOR_BOUND_S, failed_after
        assert freed_after is not None and freed_after < MONITOR_BOUND_S, freed_after
        assert retry is not None and retry.status == dg.DagsterRunStatus.SUCCESS, (
            retry and retry.status,
            log.read_text()[-3000:],
        )
        # Said why, by whichever saw it first: the code server whose child the worker was
        # ("... was terminated by signal 9"), run monitoring asking flywheel's launcher (when
        # the code server died too: flywheel_tests/orchestration/test_launcher.py), or a run's
        # reaper ("... is gone").
        said = [e.message or "" for e in instance.all_logs(victim.run_id)]
        assert any(
            "terminated by signal 9" in m or "is gone" in m or "Detected run worker status" in m
            for m in said
        ), said[-5:]
        alerted = {a["run_id"]: a for a in read_alerts(home)}
        assert victim.run_id in alerted, alerted
        print(
            f"killed run failed after {failed_after:.1f} s, slots freed after {freed_after:.1f} s,"
            f" retry {retry.run_id} succeeded"
        )
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        try:
            dev.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
