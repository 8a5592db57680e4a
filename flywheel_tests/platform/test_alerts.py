"""Alerts of failed runs: the file, the PostgreSQL table and a webhook, each independent of
the others, and idempotent per run."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from flywheel_assets.platform.alerts import (
    WEBHOOK_ENV,
    Alert,
    alerts_file,
    read_alerts,
    record_alert,
)
from flywheel_assets.platform.warehouse import Warehouse


def alert(run_id: str) -> Alert:
    return Alert(
        alert_id=f"run-failure:{run_id}",
        raised_at=dt.datetime(2026, 11, 25, 1, 5),
        kind="run_failure",
        job_name="flywheel_cycle",
        run_id=run_id,
        partition_key="2026-11-24",
        message="raw_events: cannot read events.parquet",
        details={
            "steps": [{"step": "raw_events", "error": "cannot read"}],
            "note": "'; DROP TABLE alerts; --",
        },
    )


class Hook:
    """A local webhook endpoint that keeps what it receives."""

    def __init__(self, status: int = 200) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_an_alert_reaches_the_file_the_table_and_the_webhook_once(
    tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = Hook()
    monkeypatch.setenv(WEBHOOK_ENV, hook.url)
    Warehouse(pg_database).migrate()
    try:
        assert record_alert(alert("r1"), tmp_path, pg_database) == []
        assert record_alert(alert("r1"), tmp_path, pg_database) == []  # the sensor saw it twice
    finally:
        hook.close()
    assert [a["run_id"] for a in read_alerts(tmp_path)] == ["r1"]
    wh = Warehouse(pg_database)
    with wh.begin() as conn:
        rows = wh.query_df(conn, "SELECT alert_id, partition_key, details FROM alerts")
    assert rows["alert_id"].tolist() == ["run-failure:r1"]
    assert json.loads(rows["details"].iloc[0])["note"] == "'; DROP TABLE alerts; --"
    assert "flywheel_cycle for 2026-11-24" in hook.received[0]["text"]
    assert hook.received[0]["alert"]["run_id"] == "r1"


def test_a_failing_sink_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = Hook(status=500)
    monkeypatch.setenv(WEBHOOK_ENV, hook.url)
    try:
        problems = record_alert(
            alert("r2"), tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/none"
        )
    finally:
        hook.close()
    assert any(p.startswith("warehouse:") for p in problems)
    assert any(p.startswith("webhook:") and "500" in p for p in problems)
    assert [a["run_id"] for a in read_alerts(tmp_path)] == ["r2"]
    monkeypatch.setenv(WEBHOOK_ENV, "not a url")
    alerts_file(tmp_path).write_text(
        alerts_file(tmp_path).read_text() + '{"alert_id": "torn',
    )
    problems = record_alert(alert("r3"), tmp_path)
    assert [p.split(":")[0] for p in problems] == ["webhook"]
    assert [a["run_id"] for a in read_alerts(tmp_path)] == ["r2", "r3"]
