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
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dagster as dg
import psutil
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from flywheel_assets.orchestration.runs import (
    WORKER_RUN_TAG,
    WORKER_TAG_PREFIX,
    held_slots,
    reap_dead,
    run_states,
)
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


def _until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_an_exited_a_zombie_and_a_reused_pid_are_dead_another_host_or_namespace_unknown():
    child = subprocess.Popen(["sleep", "30"])
    who = ProcessIdentity.of(child.pid)
    assert who.liveness() is Liveness.ALIVE
    child.kill()
    # not reaped yet: a zombie, whose pid still exists
    assert _until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE)
    assert who.liveness() is Liveness.DEAD
    child.wait()
    assert who.liveness() is Liveness.DEAD  # gone
    me = ProcessIdentity.current()
    assert replace(me, start=me.start + "0").liveness() is Liveness.DEAD  # the pid, reused
    assert replace(me, boot="another-boot").liveness() is Liveness.DEAD  # rebooted since
    assert replace(me, host="another-host").liveness() is Liveness.UNKNOWN
    assert replace(me, pid_namespace="1").liveness() is Liveness.UNKNOWN  # another container


def test_a_wall_clock_step_does_not_make_a_live_process_dead(monkeypatch):
    me = ProcessIdentity.current()
    # NTP stepping the clock moves psutil's boot and start times (wall-clock seconds)
    real = psutil.boot_time
    monkeypatch.setattr(psutil, "boot_time", lambda: real() + 1.0)
    assert me.liveness() is Liveness.ALIVE


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


def _add_run(
    instance: dg.DagsterInstance, worker: ProcessIdentity, recorded_by: str | None = None
) -> str:
    """A STARTED run of ``worker``; ``recorded_by``: the run whose worker the tags name (a
    retry starts with its parent's)."""
    run_id = str(uuid.uuid4())
    tags = {
        "dagster/partition": DAY,
        **worker.as_tags(WORKER_TAG_PREFIX),
        WORKER_RUN_TAG: recorded_by or run_id,
    }
    instance.add_run(
        DagsterRun(
            job_name="flywheel_cycle", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags
        )
    )
    return run_id


def _holder(instance: dg.DagsterInstance, worker: ProcessIdentity) -> str:
    """A STARTED run of ``worker`` holding the warehouse pool's only slot."""
    run_id = _add_run(instance, worker)
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(POOL)
    assert storage.claim_concurrency_slot(POOL, run_id, "accepted_events").is_claimed
    return run_id


def _dead_worker() -> ProcessIdentity:
    gone = subprocess.Popen(["true"])
    who = ProcessIdentity.of(gone.pid)
    gone.wait()
    return who


def _identity_of(proc: subprocess.Popen) -> ProcessIdentity:
    return ProcessIdentity.of(proc.pid)


def _materialize(env: dict[str, str], **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "flywheel_assets.definitions",
         "--select", "catalog_items", "--partition", DAY],
        env={**env, **extra}, cwd=env["FLYWHEEL_HOME"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 60) -> None:
    """Read ``proc``'s output on a thread until a line holds ``text``; fail at the deadline
    even if the process prints nothing more."""
    seen = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if text in line:
                seen.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert seen.wait(timeout), "".join(lines)[-3000:]


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
    dead = _holder(instance, _dead_worker())
    alive = subprocess.Popen(["sleep", "120"])
    try:
        live_id = _add_run(instance, _identity_of(alive))
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


def test_a_retry_carrying_its_dead_parents_worker_tags_is_not_taken_for_dead(home):
    instance = _instance(home)
    parent = _add_run(instance, _dead_worker())
    retry = _add_run(instance, _dead_worker(), recorded_by=parent)  # copied tags, not its own
    states = {s.run_id: s for s in run_states(instance)}
    assert states[parent].dead
    assert states[retry].liveness is Liveness.UNKNOWN and not states[retry].dead
    reap_dead(instance, by="test")
    assert instance.get_run_by_id(retry).status == dg.DagsterRunStatus.STARTED


def test_a_slot_assigned_to_a_killed_waiter_is_freed(home):
    instance = _instance(home)
    storage = instance.event_log_storage
    holder = subprocess.Popen(["sleep", "120"])
    try:
        live = _holder(instance, _identity_of(holder))
        waiter = _add_run(instance, _dead_worker())  # queued, then killed
        assert not storage.claim_concurrency_slot(POOL, waiter, "raw_events").is_claimed
        storage.free_concurrency_slot_for_step(live, "accepted_events")  # assigned to the waiter
        assert held_slots(instance)[waiter] == [f"{POOL}:raw_events (assigned)"]
        third = _add_run(instance, _identity_of(holder))
        assert not storage.claim_concurrency_slot(POOL, third, "users").is_claimed
        assert any(waiter in line for line in reap_dead(instance, by="test"))
        assert waiter not in held_slots(instance)
        assert storage.claim_concurrency_slot(POOL, third, "users").is_claimed
    finally:
        holder.kill()
        holder.wait()
