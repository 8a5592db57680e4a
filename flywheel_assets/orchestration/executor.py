"""flywheel's executor: Dagster's in-process executor, made safe against killed runs.

Dagster 1.13's in-process executor, waiting for a pool slot, (a) never sleeps (the next-claim
interval it computes is never positive, so it polls the storage at 100% of a core), (b) never
looks at a captured SIGTERM/SIGINT while it waits, and (c) waits forever for a slot whose
holder was SIGKILLed. This executor is the same executor with those three fixed:

- the run records its worker's identity when it starts, and reaps runs whose worker is dead
  (marks them failed, frees their slots, raises an alert);
- a step waiting for a slot sleeps between claims, checks every few seconds whether the holder
  has died (and frees its slot if so), and fails after ``FLYWHEEL_SLOT_WAIT_TIMEOUT_SECONDS``
  naming the run that holds the slot and the command that frees it;
- SIGTERM (what Kubernetes sends first) or SIGINT stops the run at once, even while it waits
  (Dagster's own executor would retry the interrupted step under its retry policy and go on);
  a run that ends, however it ends, frees its slots.

It reuses Dagster's execution internals (``dagster._core``), so dagster is pinned to a minor
version in pyproject.toml and a test drives every path here against the real instance.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import dagster as dg
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.context.system import PlanExecutionContext, PlanOrchestrationContext
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.plan.execute_plan import inner_plan_execution_iterator
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.executor.in_process import InProcessExecutor
from dagster._utils.interrupts import check_captured_interrupt

from flywheel_assets.orchestration.runs import reap_dead, record_worker, run_states
from flywheel_assets.platform.settings import RunSettings


class SlotWaitTimeout(Exception):
    """A step waited longer than the bound for a slot held by a run that is (as far as this
    process can tell) alive."""


class GuardedConcurrencyContext(InstanceConcurrencyContext):
    def __init__(self, job_context: PlanExecutionContext, settings: RunSettings) -> None:
        super().__init__(job_context.instance, job_context.dagster_run)
        self._log = job_context.log
        self._settings = settings
        self._waiting_since: dict[str, float] = {}
        self._next_reap = 0.0

    def claim(self, concurrency_key: str, step_key: str, step_priority: int = 0) -> bool:
        if check_captured_interrupt():
            # Dagster's in-process loop only looks at interrupts inside a step.
            raise DagsterExecutionInterruptedError()
        if super().claim(concurrency_key, step_key, step_priority):
            self._waiting_since.pop(step_key, None)
            return True
        now = time.monotonic()
        since = self._waiting_since.setdefault(step_key, now)
        if now >= self._next_reap:
            self._next_reap = now + self._settings.reap_interval_seconds
            if self._reap():
                self._pending_timeouts[step_key] = 0.0  # claim again at once
                return self.claim(concurrency_key, step_key, step_priority)
        bound = self._settings.slot_wait_timeout_seconds
        if bound and now - since > bound:
            message = self._timeout_message(concurrency_key, step_key, now - since)
            # A retry would only wait again behind the same live run: no automatic retry.
            self._instance.add_run_tags(self._run_id, {"dagster/max_retries": "0"})
            raise SlotWaitTimeout(message)
        return False

    def interval_to_next_pending_claim_check(self) -> float:
        # Dagster's returns min(0, ...), never positive, so the loop never sleeps. Sleep until
        # the next claim is due (at most 1 s, so a signal is seen quickly).
        if not self._pending_claims:
            return 0.0
        now = time.time()
        due = min(self._pending_timeouts.get(k, now) for k in self._pending_claims)
        return min(1.0, max(0.05, due - now))

    def _reap(self) -> list[str]:
        try:
            done = reap_dead(self._instance, by=f"run {self._run_id} (waiting for a slot)")
        except Exception as exc:  # noqa: BLE001 - a failed look must not end the waiting run
            self._log.warning(f"Could not check the runs holding the pool's slots: {exc!r}")
            return []
        for line in done:
            self._log.warning(f"Freed a slot held by a dead run: {line}")
        return done

    def _timeout_message(self, pool: str, step_key: str, waited: float) -> str:
        holders = [
            s
            for s in run_states(self._instance)
            if s.run_id != self._run_id
            and any(x.startswith(f"{pool}:") and not x.endswith("(queued)") for x in s.slots)
        ]
        who = "; ".join(s.line() for s in holders) or "no run (the slot was freed meanwhile)"
        first = holders[0].run_id if holders else "RUN_ID"
        return (
            f"Step {step_key} waited {waited:.0f} s for a slot of pool {pool!r} "
            f"(FLYWHEEL_SLOT_WAIT_TIMEOUT_SECONDS={self._settings.slot_wait_timeout_seconds:g}). "
            f"Held by: {who}. If that run is stuck, free its slot and fail it with "
            f"`flywheel doctor --free {first}` (or `flywheel doctor --fix` for every dead run); "
            "then rerun this partition."
        )


class FlywheelExecutor(InProcessExecutor):
    def __init__(self, retries: RetryMode, settings: RunSettings) -> None:
        super().__init__(retries=retries)
        self._settings = settings

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        instance, run = plan_context.instance, plan_context.dagster_run
        me = record_worker(instance, run.run_id)
        try:
            cleaned = reap_dead(instance, by=f"run {run.run_id} (starting)")
        except Exception as exc:  # noqa: BLE001 - cleaning up others must not stop this run
            plan_context.log.warning(f"Could not check for dead runs: {exc!r}")
            cleaned = []
        for line in cleaned:
            plan_context.log.warning(f"Cleaned up a dead run: {line}")
        steps = execution_plan.step_keys_to_execute
        yield DagsterEvent.engine_event(
            plan_context,
            f"Executing steps in process (pid: {os.getpid()}, worker {me.describe()})",
            event_specific_data=EngineEventData.in_process(os.getpid(), steps),
        )
        settings = self._settings

        def iterator(
            job_context: PlanExecutionContext,
            execution_plan: ExecutionPlan,
            instance_concurrency_context: InstanceConcurrencyContext | None = None,
        ) -> Iterator[DagsterEvent]:
            with GuardedConcurrencyContext(job_context, settings) as guarded:
                yield from inner_plan_execution_iterator(job_context, execution_plan, guarded)

        events = iter(
            ExecuteRunWithPlanIterable(
                execution_plan=plan_context.execution_plan,
                iterator=iterator,
                execution_context_manager=PlanExecutionContextManager(
                    job=plan_context.job,
                    retry_mode=plan_context.retry_mode,
                    execution_plan=plan_context.execution_plan,
                    run_config=plan_context.run_config,
                    dagster_run=run,
                    instance=instance,
                    raise_on_error=plan_context.raise_on_error,
                    output_capture=plan_context.output_capture,
                    step_dependency_config=self.step_dependency_config,
                ),
            )
        )
        try:
            for event in events:
                yield event
                if _retry_after_interrupt(event):
                    # Dagster retries a step interrupted by SIGTERM/SIGINT when it has a retry
                    # policy (as every flywheel asset does), so the run went on as if nothing
                    # was sent. A stop request stops the run.
                    raise DagsterExecutionInterruptedError()
        finally:
            try:
                events.close()  # type: ignore[attr-defined]  # its context managers free claims
            finally:
                _free_slots(instance, run.run_id, plan_context.log)


def _free_slots(instance: dg.DagsterInstance, run_id: str, log: object) -> None:
    """A run that ends, however it ends, holds no slot (a step that failed to free its own, or
    an interrupted claim, would otherwise block the pool until a reaper finds it)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    try:
        storage.free_concurrency_slots_for_run(run_id)
    except Exception as exc:  # noqa: BLE001 - the run's own outcome stands; the reaper will free
        log.warning(f"Could not free the run's pool slots: {exc!r}")  # type: ignore[attr-defined]


_INTERRUPTS = {"DagsterExecutionInterruptedError", "KeyboardInterrupt"}


def _retry_after_interrupt(event: DagsterEvent) -> bool:
    if event.event_type_value != "STEP_UP_FOR_RETRY":
        return False
    error = getattr(event.event_specific_data, "error", None)
    while error is not None:
        if error.cls_name in _INTERRUPTS:
            return True
        error = error.cause or error.context
    return False


@dg.executor(
    name="flywheel_in_process",
    config_schema={
        "retries": get_retries_config(),
        "slot_wait_timeout_seconds": dg.Field(
            float,
            is_required=False,
            description="overrides FLYWHEEL_SLOT_WAIT_TIMEOUT_SECONDS for this run",
        ),
    },
)
def flywheel_executor(init_context: dg.InitExecutorContext) -> FlywheelExecutor:
    """All steps in one process, one after another, safe against killed runs
    (flywheel_assets/orchestration/executor.py)."""
    config = init_context.executor_config
    given = {"slot_wait_timeout_seconds": config.get("slot_wait_timeout_seconds")}
    return FlywheelExecutor(
        retries=RetryMode.from_config(config["retries"]),  # type: ignore[arg-type]
        settings=RunSettings.resolve(given),
    )
