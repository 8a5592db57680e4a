"""Must-show 1 of the serving issue: with ``dagster dev`` running (webserver and daemon, as a
user starts it), landing files that appear start runs by sensor, the daily schedule turns the
whole cycle and a promotion decision is recorded without anyone clicking, and a failed run
raises an alert. Nothing is started by hand: the test only writes files and watches."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from flywheel_assets.platform.alerts import read_alerts
from flywheel_assets.platform.dev_broker import free_port
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.serving.policy import uniform_random_slates
from flywheel_assets.simulation.demo import INSTANCE_DIR, write_landing
from flywheel_assets.simulation.simulator import ShopSimulator, SimulatorConfig

SIM = SimulatorConfig(
    seed=4, n_users=1_500, n_items=200, sessions_per_day=300, new_users_per_day=20
)
DEADLINE_S = 600


def cold_start(candidates):
    return uniform_random_slates(candidates, k=SIM.slate_size, seed=1).assign(
        model_version="cold-start", variant="champion"
    )


def open_instance_when_up(
    dagster_home: Path, port: int, proc: subprocess.Popen, deadline: float
) -> dg.DagsterInstance:
    """The instance, once `dagster dev` answers: its webserver and daemon create the SQLite
    storage as they start, and a third process creating it at the same moment can collide
    ("table ... already exists")."""
    import httpx

    while True:
        assert proc.poll() is None, "dagster dev exited while starting"
        assert time.monotonic() < deadline, "dagster dev did not start"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(1)
    for _ in range(30):
        try:
            return dg.DagsterInstance.from_config(str(dagster_home))
        except Exception:  # noqa: BLE001 - storage still being created by dagster dev
            time.sleep(1)
    return dg.DagsterInstance.from_config(str(dagster_home))


@pytest.mark.slow
@pytest.mark.long  # minutes of a real `dagster dev`: .ci/run's second run, not the README's
def test_dagster_dev_turns_the_flywheel_by_itself(tmp_path: Path) -> None:
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    broken_day = yesterday - dt.timedelta(days=1)
    home = tmp_path / "home"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(INSTANCE_DIR / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        **os.environ,
        "FLYWHEEL_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "FLYWHEEL_PSEUDONYM_KEY": "k" * 64,
        "FLYWHEEL_PARTITION_START": (yesterday - dt.timedelta(days=7)).isoformat(),
        # every minute instead of 01:00, so the test does not wait for the night
        "FLYWHEEL_CYCLE_CRON": "* * * * *",
        "GX_ANALYTICS_ENABLED": "false",
    }
    for var in ("FLYWHEEL_WAREHOUSE_URL", "FLYWHEEL_LANDING_DIR", "FLYWHEEL_MODELS_DIR",
                "FLYWHEEL_KAFKA_BOOTSTRAP"):  # fmt: skip
        env.pop(var, None)
    port = free_port()
    log = (tmp_path / "dagster-dev.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-m", "flywheel_assets.definitions",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        # The shop delivers yesterday's files while Dagster runs (a corrupt file the day before).
        sim = ShopSimulator(SIM, start=yesterday - dt.timedelta(days=30))
        landing = home / "landing"
        write_landing(
            sim.catalog_records(yesterday, full=True), landing, "catalog", yesterday, "jsonl"
        )
        write_landing(sim.user_records(yesterday, full=True), landing, "users", yesterday, "jsonl")
        write_landing(
            sim.serve_day(yesterday, cold_start).feed, landing, "events", yesterday, "jsonl"
        )
        bad = landing / "events" / f"dt={broken_day}"
        bad.mkdir(parents=True)
        (bad / "events.parquet").write_bytes(
            b"this is not parquet" + bytes(np.arange(200, dtype=np.uint8))
        )

        deadline = time.monotonic() + DEADLINE_S
        instance = open_instance_when_up(dagster_home, port, proc, deadline)
        state: dict[str, object] = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, (
                f"dagster dev exited: {(tmp_path / 'dagster-dev.log').read_text()[-3000:]}"
            )
            runs = instance.get_runs()
            state = {
                "sensor_ok": [r for r in runs if r.tags.get("flywheel/trigger") == "landing_files"
                              and r.tags.get("dagster/partition") == str(yesterday)
                              and r.status == dg.DagsterRunStatus.SUCCESS],
                "cycle_ok": [r for r in runs if r.job_name == "flywheel_cycle"
                             and r.tags.get("dagster/schedule_name") == "daily_flywheel_cycle"
                             and r.tags.get("dagster/partition") == str(yesterday)
                             and r.status == dg.DagsterRunStatus.SUCCESS],
                "failed": [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE],
                "alerts": read_alerts(home),
                "all": [(r.job_name, r.tags.get("dagster/partition"), r.status.value) for r in runs],
            }  # fmt: skip
            alerted = {a["run_id"] for a in state["alerts"]}  # type: ignore[union-attr]
            if (
                state["sensor_ok"]
                and state["cycle_ok"]
                and state["failed"]
                and all(r.run_id in alerted for r in state["failed"])  # type: ignore[union-attr]
            ):
                break
            bad_cycle = [r for r in runs if r.job_name == "flywheel_cycle"
                         and r.status == dg.DagsterRunStatus.FAILURE]  # fmt: skip
            assert not bad_cycle, f"the cycle failed: {bad_cycle[0].run_id}; runs: {state['all']}"
            time.sleep(5)
        else:
            pytest.fail(
                f"not done in {DEADLINE_S}s: {state.get('all')}, alerts {state.get('alerts')}"
            )
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()

    cycles = [r for r in instance.get_runs() if r.job_name == "flywheel_cycle"]
    assert len(cycles) == 1, f"the schedule ticks every minute but a day runs once: {state['all']}"
    failed = state["failed"]
    assert {r.tags.get("dagster/partition") for r in failed} == {str(broken_day)}  # type: ignore[union-attr]
    alert = next(a for a in state["alerts"] if a["partition_key"] == str(broken_day))  # type: ignore[union-attr]
    assert alert["kind"] == "run_failure" and "events.parquet" in json.dumps(alert)
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    with wh.begin() as conn:
        decision = wh.query_df(
            conn, "SELECT decision, reason FROM promotion_decisions WHERE dt = :dt", dt=yesterday
        )
    assert len(decision) == 1, "the scheduled cycle recorded no promotion decision"
    # what serving reads was published by the same runs
    assert (home / "serving" / "champion.json").exists()
    assert (home / "serving" / "features" / f"dt={yesterday}" / "_SUCCESS").exists()
