"""Rolling the champion back from the UI or `dagster job execute` (the CLI has `flywheel rollback`)."""

import dagster as dg

from flywheel_assets import registry
from flywheel_assets.defs.common import utcnow
from flywheel_assets.serving.pointer import publish_serving_pointer


class RollbackConfig(dg.Config):
    reason: str
    to_version: str | None = None
    to_cold_start: bool = False
    actor: str | None = None


@dg.op(
    description="Restore an earlier champion (config: to_version or the previous one; reason).",
    required_resource_keys={"warehouse", "paths"},
)
def rollback_op(context: dg.OpExecutionContext, config: RollbackConfig) -> None:
    wh = context.resources.warehouse.get()
    with wh.begin() as conn:
        before, after = registry.rollback(
            conn,
            to_version=config.to_version,
            to_cold_start=config.to_cold_start,
            reason=config.reason,
            actor=config.actor or f"dagster run {context.run_id}",
            now=utcnow(),
        )
    pointer = publish_serving_pointer(wh, context.resources.paths.paths().home, "rollback")
    context.log.info(
        f"champion rolled back: {before} -> {after}; serving: {pointer['model_version']}"
    )


@dg.job(
    description="Roll the champion back to an earlier version (recorded with who and why).",
    # Never re-run by itself: a rollback killed after its commit, run again, would roll back
    # once more (to the version just rolled away from). Check `flywheel history` and re-run.
    tags={"dagster/max_retries": "0"},
)
def rollback_job() -> None:
    rollback_op()
