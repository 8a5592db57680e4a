"""HTTP tests of the ranking service: a real uvicorn server in a thread, on a free port, and
a promotion as serving sees it."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import uvicorn

from flywheel_assets import registry
from flywheel_assets.platform.dev_broker import free_port
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.serving.pointer import publish_serving_pointer


class Server:
    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def promote(home: Path, version: str, reason: str = "promotion under load") -> None:
    """What a promotion does to what serving reads: promotion_decision moves the champion
    alias and ends the experiment, champion_model publishes the pointer."""
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with wh.begin() as conn:
        running = registry.open_experiment(conn)
        if running is not None:
            registry.end_experiment(
                conn, running.experiment_id, status="promoted", end_dt=now.date(), reason="test"
            )
        registry.move_alias(conn, registry.CHAMPION, version, actor="test", reason=reason, now=now)
    publish_serving_pointer(wh, home, "test")
