"""Dead runs and the pool slots they hold: find them, fail them, free them.

A run killed with SIGKILL (an out-of-memory kill, a pod eviction) stays STARTED in the instance
and keeps the concurrency slots it claimed; with the warehouse pool limited to one slot, every
later run waits for it forever. Each flywheel run records its worker's identity as run tags
when it starts (:func:`record_worker`), so any process on the same host can tell whether the
run is still alive; :func:`reap` marks a dead run failed, frees its slots and raises an alert.
Used by the executor (a waiting step frees a dead holder's slot), the daemon's run monitoring
(:mod:`flywheel_assets.orchestration.launcher`) and ``flywheel doctor``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

from flywheel_assets.platform.alerts import Alert, record_alert
from flywheel_assets.platform.clock import utcnow
from flywheel_assets.platform.liveness import Liveness, ProcessIdentity
from flywheel_assets.platform.settings import FlywheelPaths

WORKER_TAG_PREFIX = "flywheel/worker_"
WORKER_RUN_TAG = "flywheel/worker_run_id"
_UNFINISHED = (
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.CANCELING,
)
log = logging.getLogger(__name__)


def record_worker(instance: dg.DagsterInstance, run_id: str) -> ProcessIdentity:
    """Record this process as the worker of ``run_id`` (run tags ``flywheel/worker_*``)."""
    me = ProcessIdentity.current()
    # The run id too: a retry or a re-execution copies its parent's tags, and until it records
    # its own worker it must not look like its dead parent.
    instance.add_run_tags(run_id, {**me.as_tags(WORKER_TAG_PREFIX), WORKER_RUN_TAG: run_id})
    return me


# A finished run's slots are freed this long after it ended when its worker cannot be judged
# (another host, or not recorded); a finished run whose worker is known dead, at once.
FINISHED_GRACE_S = 60.0


@dataclass(frozen=True)
class RunState:
    """A run that holds slots or should be running, and whether its worker is alive."""

    run_id: str
    job_name: str
    partition: str | None
    status: str
    liveness: Liveness
    worker: str
    slots: tuple[str, ...]  # "pool:step_key" for every slot it holds or is queued for
    ended_ago: float | None = None  # seconds since a finished run ended

    @property
    def finished(self) -> bool:
        return self.status not in {s.value for s in _UNFINISHED}

    @property
    def dead(self) -> bool:
        """Its status or its slots are stale: its worker is gone (or, for a run that ended
        long enough ago, cannot be judged from here)."""
        if self.liveness is Liveness.DEAD:
            return True
        return (
            self.finished
            and self.liveness is Liveness.UNKNOWN
            and (self.ended_ago is None or self.ended_ago >= FINISHED_GRACE_S)
        )

    def line(self) -> str:
        where = f" for {self.partition}" if self.partition else ""
        held = f", holding {', '.join(self.slots)}" if self.slots else ""
        return (
            f"run {self.run_id} ({self.job_name}{where}): {self.status}, "
            f"worker {self.worker} {self.liveness.value}{held}"
        )


def worker_liveness(run: dg.DagsterRun) -> tuple[Liveness, str]:
    who = ProcessIdentity.from_tags(run.tags, WORKER_TAG_PREFIX)
    if who is None or run.tags.get(WORKER_RUN_TAG) != run.run_id:
        return Liveness.UNKNOWN, "(not recorded yet)"
    return who.liveness(), who.describe()


def held_slots(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """run id -> the "pool:step" slots it holds; "pool:step (queued)" for a claim it waits
    for and "pool:step (assigned)" for a slot assigned to it but not yet taken: a dead run's
    queued or assigned claim blocks the pool as surely as a held slot."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    held: dict[str, list[str]] = {}
    for pool in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(pool)
        claimed = {(slot.run_id, slot.step_key) for slot in info.claimed_slots}
        for run_id, step_key in sorted(claimed):
            held.setdefault(run_id, []).append(f"{pool}:{step_key}")
        for step in info.pending_steps:
            if (step.run_id, step.step_key) in claimed:
                continue
            how = "queued" if step.assigned_timestamp is None else "assigned"
            held.setdefault(step.run_id, []).append(f"{pool}:{step.step_key} ({how})")
    return held


def run_states(instance: dg.DagsterInstance) -> list[RunState]:
    """Every run that holds or waits for a slot or is unfinished, with its worker's
    liveness."""
    held = held_slots(instance)
    storage = instance.event_log_storage
    in_pools = (
        storage.get_concurrency_run_ids() if storage.supports_global_concurrency_limits else set()
    )
    wanted = set(held) | set(in_pools)
    records = {
        r.dagster_run.run_id: r
        for r in instance.get_run_records(filters=dg.RunsFilter(statuses=list(_UNFINISHED)))
    }
    missing = wanted - records.keys()
    if missing:
        records |= {
            r.dagster_run.run_id: r
            for r in instance.get_run_records(filters=dg.RunsFilter(run_ids=sorted(missing)))
        }
    now = time.time()
    states = []
    for run_id, record in records.items():
        run = record.dagster_run
        liveness, worker = worker_liveness(run)
        states.append(
            RunState(
                run_id=run_id,
                job_name=run.job_name,
                partition=run.tags.get("dagster/partition"),
                status=run.status.value,
                liveness=liveness,
                worker=worker,
                slots=tuple(held.get(run_id, ())),
                ended_ago=now - record.end_time if record.end_time else None,
            )
        )
    # slots of runs deleted from the instance: nobody can be holding them
    for run_id in wanted - records.keys():
        states.append(
            RunState(
                run_id,
                "(deleted run)",
                None,
                "DELETED",
                Liveness.DEAD,
                "-",
                tuple(held.get(run_id, ())),
            )
        )
    return sorted(states, key=lambda s: s.run_id)


def reap(instance: dg.DagsterInstance, state: RunState, by: str) -> str:
    """Mark the run failed (if it is not finished), free its slots, raise an alert; returns
    what was done, in words. ``by`` names who found it (for the run's log and the alert)."""
    run = instance.get_run_by_id(state.run_id)
    done = []
    if run is not None and run.status in _UNFINISHED:
        message = (
            f"The worker of this run ({state.worker}) is gone: it was killed or crashed. "
            f"Marked failed by {by}; rerun the partition (the cycle is idempotent)."
        )
        instance.report_run_failed(run, message)
        done.append("marked failed")
        _alert(state, message)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        # every slot, assigned slot and queued claim of the run, listed or not
        storage.free_concurrency_slots_for_run(state.run_id)
        if state.slots:
            done.append(f"freed {', '.join(state.slots)}")
    return f"run {state.run_id}: " + (" and ".join(done) or "nothing to do")


def _alert(state: RunState, message: str) -> None:
    # The same id as the run-failure sensor's, so a daemon that also sees the failure does not
    # raise a second alert for it.
    alert = Alert(
        alert_id=f"run-failure:{state.run_id}",
        raised_at=utcnow(),
        kind="run_died",
        job_name=state.job_name,
        run_id=state.run_id,
        partition_key=state.partition,
        message=message,
        details={"worker": state.worker, "slots": list(state.slots)},
    )
    paths = FlywheelPaths.from_env()
    for problem in record_alert(alert, paths.home, paths.warehouse_url):
        log.error("alert sink failed: %s; the alert: %s", problem, alert.text())


def reap_dead(
    instance: dg.DagsterInstance, by: str, states: Iterable[RunState] | None = None
) -> list[str]:
    """Reap every run whose worker is dead or that holds slots after it ended."""
    states = run_states(instance) if states is None else states
    return [reap(instance, s, by) for s in states if s.dead]
