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

from flywheel_assets.orchestration.runs import WORKER_TAG_PREFIX
from flywheel_assets.platform.liveness import Liveness, ProcessIdentity


class FlywheelRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        who = ProcessIdentity.from_tags(run.tags, WORKER_TAG_PREFIX)
        if who is None:
            # Not recorded yet (the worker records itself as its first act), or a run of
            # another executor: nothing to judge by, so it is not reported dead.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "worker not recorded")
        state = who.liveness()
        if state is Liveness.DEAD:
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"the run's worker ({who.describe()}) is gone: killed or crashed",
            )
        if state is Liveness.UNKNOWN:
            return CheckRunHealthResult(
                WorkerStatus.RUNNING, f"worker {who.describe()} is on another host"
            )
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker {who.describe()} alive")
