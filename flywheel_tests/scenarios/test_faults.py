"""The warehouse going away mid-run on real PostgreSQL: the step retries and the run completes
with nothing lost or doubled."""

import datetime as dt
import json
import threading
import time

import dagster as dg
import sqlalchemy as sa

from flywheel_assets.defs.ingestion.assets import catalog_items, raw_events
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.quality.checks import raw_events_accounted
from flywheel_assets.defs.resources import resources
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_tests.support.environment import PG_ADMIN_URL

DAY = dt.date(2026, 6, 1)


def _set_connections(db: str, allowed: bool) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            sa.text(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS {"true" if allowed else "false"}')
        )
        if not allowed:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": db},
            )
    admin.dispose()


def test_warehouse_outage_mid_run_is_retried_and_the_run_completes(
    tmp_path, monkeypatch, pg_database
):
    home = tmp_path / "home"
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    monkeypatch.setenv("FLYWHEEL_PSEUDONYM_KEY", "faults-test-key-0123456789")
    monkeypatch.setenv("FLYWHEEL_WAREHOUSE_URL", pg_database)
    for var in ("FLYWHEEL_LANDING_DIR", "FLYWHEEL_KAFKA_BOOTSTRAP", "FLYWHEEL_FIELD_MAP"):
        monkeypatch.delenv(var, raising=False)
    landing = home / "landing"
    (landing / "catalog" / f"dt={DAY}").mkdir(parents=True)
    (landing / "catalog" / f"dt={DAY}" / "items.jsonl").write_text(
        json.dumps({"item_id": "i1", "category": "c", "price": 1})
    )
    (landing / "events" / f"dt={DAY}").mkdir(parents=True)
    (landing / "events" / f"dt={DAY}" / "e.jsonl").write_text(
        "\n".join(
            json.dumps(
                {
                    "event_id": f"e{i}",
                    "event_type": "view",
                    "event_time": f"{DAY}T10:00:00Z",
                    "user_id": f"u{i % 7}",
                    "item_id": "i1",
                }
            )
            for i in range(500)
        )
    )
    wh = Warehouse(pg_database)
    wh.migrate()
    wh.dispose()
    db = sa.engine.make_url(pg_database).database
    instance = dg.DagsterInstance.ephemeral()

    # The catalog lands; then the database refuses connections while raw_events starts.
    assert dg.materialize(
        [catalog_items], partition_key=DAY.isoformat(), resources=resources(), instance=instance
    ).success
    _set_connections(db, allowed=False)
    back = threading.Timer(3.0, _set_connections, args=(db, True))
    back.start()
    try:
        started = time.monotonic()
        result = dg.materialize(
            [raw_events, accepted_events, raw_events_accounted],
            partition_key=DAY.isoformat(),
            resources=resources(),
            instance=instance,
            raise_on_error=False,
        )
    finally:
        back.join()
        _set_connections(db, allowed=True)
    assert result.success, "the step should have been retried after the outage"
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retried and time.monotonic() - started >= 3.0
    assert all(c.passed for c in result.get_asset_check_evaluations())
    wh = Warehouse(pg_database)
    with wh.begin() as conn:
        n = conn.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events")).one()
    wh.dispose()
    assert tuple(n) == (500, 500)
