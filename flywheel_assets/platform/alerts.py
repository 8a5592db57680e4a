"""Alerts: what the run-failure sensor records when a flywheel run fails.

Every alert goes to ``FLYWHEEL_HOME/alerts/alerts.jsonl`` (one JSON object per line); to the
warehouse table ``alerts`` when the warehouse is PostgreSQL (with the embedded DuckDB file, a
write from the daemon could take the file from a running step, so it stays out); and, when
``FLYWHEEL_ALERT_WEBHOOK_URL`` is set, as a POST of ``{"text": ..., "alert": {...}}`` (Slack's
incoming-webhook format; most chat and paging tools take it). A sink that fails does not stop
the others; the sensor logs what failed as an error (Dagster moves a run-status sensor past a
run even when its evaluation fails, so there is no retry to rely on).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from flywheel_assets.platform.settings import AlertSettings
from flywheel_assets.platform.warehouse import Warehouse

log = logging.getLogger(__name__)
WEBHOOK_ENV = "FLYWHEEL_ALERT_WEBHOOK_URL"


@dataclass(frozen=True)
class Alert:
    alert_id: str
    raised_at: dt.datetime
    kind: str
    job_name: str | None
    run_id: str | None
    partition_key: str | None
    message: str
    details: dict

    def text(self) -> str:
        where = f" for {self.partition_key}" if self.partition_key else ""
        return f"flywheel: {self.kind} - {self.job_name}{where} (run {self.run_id}): {self.message}"

    def as_json(self) -> dict:
        d = asdict(self)
        d["raised_at"] = self.raised_at.isoformat()
        return d


def alerts_file(home: Path) -> Path:
    return home / "alerts" / "alerts.jsonl"


def read_alerts(home: Path) -> list[dict]:
    path = alerts_file(home)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash must not stop later alerts
    return out


def record_alert(alert: Alert, home: Path, warehouse_url: str | None = None) -> list[str]:
    """Record ``alert`` everywhere configured; returns the problems of sinks that failed."""
    problems = []
    path = alerts_file(home)
    try:
        if alert.alert_id not in {a["alert_id"] for a in read_alerts(home)}:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a+") as fh:
                # after a line cut short by a crash, start on a line of our own
                torn = fh.tell() > 0 and (fh.seek(fh.tell() - 1), fh.read(1))[1] != "\n"
                fh.write(("\n" if torn else "") + json.dumps(alert.as_json()) + "\n")
    except Exception as exc:  # noqa: BLE001 - the warehouse and webhook still get it
        problems.append(f"{path}: {exc}")
    if warehouse_url and warehouse_url.startswith("postgresql"):
        wh = None
        try:
            wh = Warehouse(warehouse_url)
            with wh.begin() as conn:
                wh.run(
                    conn,
                    "platform/alerts/insert_alert",
                    **{**asdict(alert), "details": json.dumps(alert.details, default=str)},
                )
        except Exception as exc:  # noqa: BLE001 - the file and webhook still get it
            problems.append(f"warehouse: {exc}")
        finally:
            if wh is not None:
                wh.dispose()
    url = AlertSettings.resolve().webhook_url
    if url:
        try:
            r = httpx.post(url, json={"text": alert.text(), "alert": alert.as_json()}, timeout=10)
            r.raise_for_status()
        except Exception as exc:  # noqa: BLE001 - a bad URL or a dead endpoint
            problems.append(f"webhook: {type(exc).__name__}: {exc}")
    return problems
