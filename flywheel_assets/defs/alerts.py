"""Alerts: every failed run of this code location is recorded (flywheel_assets/platform/alerts.py)."""

import dagster as dg

from flywheel_assets.defs.common import utcnow
from flywheel_assets.platform.alerts import Alert, record_alert
from flywheel_assets.platform.settings import FlywheelPaths


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Records an alert for every failed run of this code location: FLYWHEEL_HOME/alerts/"
        "alerts.jsonl, the warehouse's alerts table on PostgreSQL, and FLYWHEEL_ALERT_WEBHOOK_URL "
        "when set."
    ),
)
def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    steps = [
        {
            "step": e.step_key,
            "error": (
                e.step_failure_data.error.message.strip() if e.step_failure_data.error else ""
            ),
        }
        for e in context.get_step_failure_events()
    ]
    message = steps[0]["error"] if steps and steps[0]["error"] else context.failure_event.message
    alert = Alert(
        alert_id=f"run-failure:{run.run_id}",
        raised_at=utcnow(),
        kind="run_failure",
        job_name=run.job_name,
        run_id=run.run_id,
        partition_key=run.tags.get("dagster/partition"),
        message=(message or "run failed")[:2000],
        details={"steps": steps, "tags": dict(run.tags)},
    )
    paths = FlywheelPaths.from_env()
    problems = record_alert(alert, paths.home, paths.warehouse_url)
    for problem in problems:
        context.log.error(f"alert sink failed: {problem}; the alert: {alert.text()}")
    context.log.info(alert.text())
