"""Dead runs and pool slots, against a real instance (SQLite, as the embedded default) and the
real CLI: a run frees the slot of a run whose worker died, fails loudly after the wait bound
naming the holder, stops on SIGTERM while it waits; `flywheel doctor` lists and clears."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from flywheel_assets.orchestration.runs import WORKER_TAG_PREFIX, held_slots, run_states
from flywheel_assets.platform.alerts import read_alerts
from flywheel_assets.platform.liveness import Liveness, ProcessIdentity

POOL = "flywheel_warehouse"
DAY = "2026-03-01"
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


# -- liveness (no Dagster) ---------------------------------------------------------------------


def test_this_process_is_alive_and_its_identity_round_trips_through_tags():
    me = ProcessIdentity.current()
    assert me.liveness() is Liveness.ALIVE
    assert ProcessIdentity.from_tags(me.as_tags("x/"), "x/") == me
    assert ProcessIdentity.from_tags({"x/pid": "12"}, "x/") is None  # incomplete
    assert ProcessIdentity.from_tags({**me.as_tags("x/"), "x/pid": "twelve"}, "x/") is None


def test_an_exited_a_zombie_and_a_reused_pid_are_dead_another_host_unknown():
    child = subprocess.Popen(["sleep", "30"])
    who = ProcessIdentity(
        host=ProcessIdentity.current().host,
        boot_time=ProcessIdentity.current().boot_time,
        pid=child.pid,
        start_time=round(__import__("psutil").Process(child.pid).create_time(), 2),
    )
    assert who.liveness() is Liveness.ALIVE
    child.kill()
    time.sleep(0.2)  # not reaped yet: a zombie, whose pid still exists
    assert who.liveness() is Liveness.DEAD
    child.wait()
    assert who.liveness() is Liveness.DEAD  # gone
    me = ProcessIdentity.current()
    reused = ProcessIdentity(me.host, me.boot_time, me.pid, me.start_time - 100)
    assert reused.liveness() is Liveness.DEAD  # our pid, but another process started then
    elsewhere = ProcessIdentity("another-host", me.boot_time, me.pid, me.start_time)
    assert elsewhere.liveness() is Liveness.UNKNOWN
    rebooted = ProcessIdentity(me.host, me.boot_time - 3600, me.pid, me.start_time)
    assert rebooted.liveness() is Liveness.DEAD


# -- a real instance and the real CLI -----------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An empty flywheel home with the repository's instance file; the environment for it."""
    (tmp_path / "dagster").mkdir()
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster" / "dagster.yaml")
    return {
        **os.environ,
        "FLYWHEEL_HOME": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "FLYWHEEL_PSEUDONYM_KEY": "orchestration-test-key-0123456789",
        "FLYWHEEL_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        "FLYWHEEL_REAP_INTERVAL_SECONDS": "1",
    }


def _instance(env: dict[str, str]) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def _holder(instance: dg.DagsterInstance, worker: ProcessIdentity) -> str:
    """A STARTED run of ``worker`` holding the warehouse pool's only slot."""
    run_id = str(uuid.uuid4())
    instance.add_run(
        DagsterRun(
            job_name="flywheel_cycle",
            run_id=run_id,
            status=dg.DagsterRunStatus.STARTED,
            tags={"dagster/partition": DAY, **worker.as_tags(WORKER_TAG_PREFIX)},
        )
    )
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(POOL)
    assert storage.claim_concurrency_slot(POOL, run_id, "accepted_events").is_claimed
    return run_id


def _identity_of(proc: subprocess.Popen) -> ProcessIdentity:
    import psutil

    me = ProcessIdentity.current()
    return ProcessIdentity(
        me.host, me.boot_time, proc.pid, round(psutil.Process(proc.pid).create_time(), 2)
    )


def _materialize(env: dict[str, str], **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "flywheel_assets.definitions",
         "--select", "catalog_items", "--partition", DAY],
        env={**env, **extra}, cwd=env["FLYWHEEL_HOME"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if text in line or time.monotonic() > deadline:
            break
    assert any(text in x for x in lines), "".join(lines)[-3000:]
    return lines


def test_a_run_frees_the_slot_of_a_run_whose_worker_died_while_it_waited(home):
    instance = _instance(home)
    worker = subprocess.Popen(["sleep", "120"])
    holder = _holder(instance, _identity_of(worker))
    run = _materialize(home)
    _wait_for_line(run, "blocked by limit for pool flywheel_warehouse")
    worker.kill()  # SIGKILL, as an out-of-memory kill would; left unreaped: a zombie
    began = time.monotonic()
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 0, out[-3000:]
    assert time.monotonic() - began < 20  # the reap interval is 1 s here
    assert f"Freed a slot held by a dead run: run {holder}" in out
    instance = _instance(home)
    assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.FAILURE
    assert held_slots(instance) == {}
    alert = {a["run_id"]: a for a in read_alerts(Path(home["FLYWHEEL_HOME"]))}[holder]
    assert alert["kind"] == "run_died" and "is gone" in alert["message"]
    worker.wait()


@pytest.fixture
def live_holder(home) -> Iterator[str]:
    """A STARTED run holding the pool's slot, whose worker (a `sleep`) is alive throughout."""
    worker = subprocess.Popen(["sleep", "120"])
    try:
        yield _holder(_instance(home), _identity_of(worker))
    finally:
        worker.kill()
        worker.wait()


def test_a_step_blocked_past_the_bound_fails_naming_the_holder_and_the_fix(home, live_holder):
    run = _materialize(home, FLYWHEEL_SLOT_WAIT_TIMEOUT_SECONDS="3")
    out, _ = run.communicate(timeout=90)
    assert run.returncode != 0
    assert "waited" in out and "FLYWHEEL_SLOT_WAIT_TIMEOUT_SECONDS=3" in out
    assert f"Held by: run {live_holder} (flywheel_cycle for {DAY}): STARTED" in out
    assert f"flywheel doctor --free {live_holder}" in out
    # The holder is alive: it keeps its slot and its status.
    instance = _instance(home)
    assert instance.get_run_by_id(live_holder).status == dg.DagsterRunStatus.STARTED
    assert list(held_slots(instance)) == [live_holder]


def test_sigterm_stops_a_waiting_run_within_seconds_and_it_holds_nothing(home, live_holder):
    run = _materialize(home)
    _wait_for_line(run, "blocked by limit for pool flywheel_warehouse")
    sent = time.monotonic()
    run.send_signal(signal.SIGTERM)
    run.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    instance = _instance(home)
    waiting = [s for s in run_states(instance) if s.run_id != live_holder]
    assert waiting == []  # not STARTED any more, no slot and no queued claim
    assert list(held_slots(instance)) == [live_holder]


def _doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "flywheel"), "doctor", *args], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_doctor_lists_dead_runs_clears_them_and_frees_a_named_one(home):
    instance = _instance(home)
    gone = subprocess.Popen(["true"])
    dead_worker = _identity_of(gone)
    gone.wait()
    dead = _holder(instance, dead_worker)
    alive = subprocess.Popen(["sleep", "120"])
    try:
        live_id = str(uuid.uuid4())
        instance.add_run(
            DagsterRun(
                job_name="flywheel_cycle",
                run_id=live_id,
                status=dg.DagsterRunStatus.STARTED,
                tags=_identity_of(alive).as_tags(WORKER_TAG_PREFIX),
            )
        )
        listed = _doctor(home)
        assert listed.returncode == 1, listed.stdout + listed.stderr
        assert f"DEAD  run {dead}" in listed.stdout and f"ok    run {live_id}" in listed.stdout
        rows = {r["run_id"]: r for r in json.loads(_doctor(home, "--json").stdout)}
        assert rows[dead]["dead"] and rows[dead]["slots"] == [f"{POOL}:accepted_events"]
        assert rows[live_id]["liveness"] == "alive" and not rows[live_id]["dead"]

        fixed = _doctor(home, "--fix")
        assert fixed.returncode == 0 and f"run {dead}: marked failed and freed" in fixed.stdout
        instance = _instance(home)
        assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live_id).status == dg.DagsterRunStatus.STARTED
        assert held_slots(instance) == {}

        assert _doctor(home).returncode == 0  # only the live run is left
        freed = _doctor(home, "--free", live_id)
        assert freed.returncode == 0 and "marked failed" in freed.stdout
        assert _instance(home).get_run_by_id(live_id).status == dg.DagsterRunStatus.FAILURE
        assert _doctor(home, "--free", "no-such-run").returncode == 2
    finally:
        alive.kill()
        alive.wait()
