"""The launcher's worker health check, which the daemon's run monitoring asks about every
STARTED run (the daemon path when the code server that started the worker is gone too)."""

from __future__ import annotations

import subprocess
import uuid

import dagster as dg
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun

from flywheel_assets.orchestration.launcher import FlywheelRunLauncher
from flywheel_assets.orchestration.runs import WORKER_RUN_TAG, WORKER_TAG_PREFIX
from flywheel_assets.platform.liveness import ProcessIdentity


def _run(worker: ProcessIdentity | None, recorded_by: str | None = None) -> DagsterRun:
    run_id = str(uuid.uuid4())
    tags = {} if worker is None else {**worker.as_tags(WORKER_TAG_PREFIX)}
    if worker is not None:
        tags[WORKER_RUN_TAG] = recorded_by or run_id
    return DagsterRun(
        job_name="flywheel_cycle", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags
    )


def test_the_health_check_fails_a_dead_worker_and_only_a_dead_one() -> None:
    launcher = FlywheelRunLauncher()
    assert launcher.supports_check_run_worker_health
    gone = subprocess.Popen(["true"])
    dead = ProcessIdentity.of(gone.pid)
    gone.wait()
    result = launcher.check_run_worker_health(_run(dead))
    assert result.status == WorkerStatus.FAILED and "is gone" in (result.msg or "")

    me = ProcessIdentity.current()
    assert launcher.check_run_worker_health(_run(me)).status == WorkerStatus.RUNNING
    # not recorded yet, or a retry still carrying its dead parent's tags: never failed on that
    assert launcher.check_run_worker_health(_run(None)).status == WorkerStatus.RUNNING
    inherited = _run(dead, recorded_by="the-parent-run")
    assert launcher.check_run_worker_health(inherited).status == WorkerStatus.RUNNING
    # another host: cannot be judged from here, so not failed by guesswork
    elsewhere = ProcessIdentity("another-host", me.boot, me.pid_namespace, 1, "j1")
    assert launcher.check_run_worker_health(_run(elsewhere)).status == WorkerStatus.RUNNING
