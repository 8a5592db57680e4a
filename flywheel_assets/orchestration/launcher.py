"""The run launcher for the daemon path: Dagster's default launcher, plus the worker health check
that lets the daemon's run monitoring find a run whose process was killed.

Dagster's ``DefaultRunLauncher`` cannot tell whether a run's worker is alive, so its run
monitoring never fails a STARTED run whose worker was SIGKILLed: the run stays STARTED and keeps
its pool slots. flywheel's executor records the worker's identity on the run
(:mod:`flywheel_assets.orchestration.runs`); this launcher answers the monitor from it. The
instance files configure it (``run_launcher`` in ``dagster.yaml``) with run monitoring, slot
freeing and run retries.
"""

from __future__ import annotations

from dagster import DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

from flywheel_assets.orchestration.runs import worker_liveness
from flywheel_assets.platform.liveness import Liveness


class FlywheelRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        state, worker = worker_liveness(run)
        if state is Liveness.DEAD:
            return CheckRunHealthResult(
                WorkerStatus.FAILED, f"the run's worker ({worker}) is gone: killed or crashed"
            )
        # ALIVE; or UNKNOWN: not recorded yet (the worker records itself as its first act; a
        # retry starts with its parent's tags), or on another host. Nothing to fail it on.
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker {worker} {state.value}")
