"""PostgreSQL restarting mid-run, for real: the warehouse and Dagster's own storage live on a
private server (flywheel_tests/private_postgres.py) that a thread restarts (``pg_ctl restart -m
fast``: every connection is cut) while raw_events is writing its day. The step fails, Dagster
records it and retries; the run completes or fails loudly, a rerun of the day completes, and
the warehouse holds every event exactly once with the day's accounting balanced.
"""

import datetime as dt
import json
import threading
import time
from collections import Counter

import dagster as dg
import pytest
import sqlalchemy as sa

from flywheel_assets.defs.ingestion.assets import catalog_items, raw_events
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.quality.checks import accepted_events_accounted, raw_events_accounted
from flywheel_assets.defs.resources import resources
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_tests.support.private_postgres import PrivatePostgres

DAY = dt.date(2026, 6, 2)
N_FILES = 4
PER_FILE = 10_000  # valid events per file
BAD_TYPE_PER_FILE = 5  # break the contract: quarantined at ingestion
UNKNOWN_ITEM_PER_FILE = 3  # not in the catalog: quarantined at the quality stage
N_ITEMS = 50
LANDED = N_FILES * (PER_FILE + BAD_TYPE_PER_FILE + UNKNOWN_ITEM_PER_FILE)
RAW = N_FILES * (PER_FILE + UNKNOWN_ITEM_PER_FILE)
ACCEPTED = N_FILES * PER_FILE


def _event(i: int, *, event_type: str = "view", item: str | None = None) -> str:
    return json.dumps(
        {
            "event_id": f"e{i}",
            "event_type": event_type,
            "event_time": f"{DAY}T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z",
            "user_id": f"u{i % 997}",
            "item_id": item or f"i{i % N_ITEMS}",
            "session_id": f"s{i % 3001}",
            "price": 9.5,
        }
    )


def _land(landing) -> None:
    catalog = landing / "catalog" / f"dt={DAY}"
    catalog.mkdir(parents=True)
    (catalog / "items.jsonl").write_text(
        "\n".join(
            json.dumps({"item_id": f"i{k}", "category": f"c{k % 5}", "price": 9.5})
            for k in range(N_ITEMS)
        )
    )
    events = landing / "events" / f"dt={DAY}"
    events.mkdir(parents=True)
    i = 0
    for f in range(N_FILES):
        lines = []
        for _ in range(PER_FILE):
            lines.append(_event(i))
            i += 1
        for _ in range(BAD_TYPE_PER_FILE):
            lines.append(_event(i, event_type="teleport"))
            i += 1
        for _ in range(UNKNOWN_ITEM_PER_FILE):
            lines.append(_event(i, item="no-such-item"))
            i += 1
        (events / f"part-{f}.jsonl").write_text("\n".join(lines) + "\n")


class _Restarter(threading.Thread):
    """Restart the server as soon as a warehouse transaction is writing raw_events."""

    def __init__(
        self, pg: PrivatePostgres, db: str, down_for: float, timeout: float = 40.0
    ) -> None:
        super().__init__(daemon=True)
        self.pg, self.db, self.down_for, self.timeout = pg, db, down_for, timeout
        self.seen: tuple | None = None  # the backend caught writing: state, query
        self.began = self.ended = None  # wall-clock seconds around the restart
        self.error: BaseException | None = None
        self.stop_polling = threading.Event()

    def run(self) -> None:
        admin = self.pg.admin_engine()
        try:
            deadline = time.monotonic() + self.timeout
            with admin.connect() as conn:
                while not self.stop_polling.is_set() and time.monotonic() < deadline:
                    row = conn.execute(
                        sa.text(
                            "SELECT pid, state, left(query, 60) FROM pg_stat_activity "
                            "WHERE datname = :db AND backend_xid IS NOT NULL "
                            "AND state IN ('active', 'idle in transaction') "
                            "AND query LIKE 'COPY raw_events%'"
                        ),
                        {"db": self.db},
                    ).first()
                    if row is not None:
                        self.seen = tuple(row)
                        break
                    time.sleep(0.01)
            if self.seen is not None:
                self.began = time.time()
                self.pg.restart(down_for=self.down_for)
                self.ended = time.time()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            admin.dispose()


def _error_text(error: object) -> str:
    """A SerializableErrorInfo with its causes and contexts, as one string."""
    parts = []
    while error is not None:
        parts.append(f"{error.cls_name}: {error.message}")
        error = error.cause or error.context
    return "\n".join(parts)


def _events(result: dg.ExecuteInProcessResult, kind: str) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type_value == kind]


def _run(instance: dg.DagsterInstance, **kwargs: object) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [raw_events, accepted_events, raw_events_accounted, accepted_events_accounted],
        partition_key=DAY.isoformat(),
        resources=resources(),
        instance=instance,
        **kwargs,
    )


@pytest.mark.chaos  # a server killed mid-run: with the kill tests (.ci/run's `-m "chaos or long"`)
def test_postgres_restart_mid_run_is_retried_and_nothing_is_lost_or_doubled(
    tmp_path, monkeypatch, caplog
):
    home = tmp_path / "home"
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    monkeypatch.setenv("FLYWHEEL_PSEUDONYM_KEY", "pg-restart-test-key-0123456789")
    for var in ("FLYWHEEL_LANDING_DIR", "FLYWHEEL_KAFKA_BOOTSTRAP", "FLYWHEEL_FIELD_MAP"):
        monkeypatch.delenv(var, raising=False)
    _land(home / "landing")

    with PrivatePostgres() as pg:
        wh_url = pg.create_database("warehouse")
        monkeypatch.setenv("FLYWHEEL_WAREHOUSE_URL", wh_url)
        # psycopg2 named explicitly: with SQLAlchemy 2.1 a plain postgresql:// URL means psycopg 3,
        # on which dagster-postgres's `NOTIFY run_events, :notify_id` is a syntax error.
        dagster_url = pg.create_database("dagster").replace("+psycopg:", "+psycopg2:")
        wh = Warehouse(wh_url)
        wh.migrate()
        wh.dispose()
        overrides = {"storage": {"postgres": {"postgres_url": dagster_url}}}
        with dg.instance_for_test(overrides=overrides) as instance:
            catalog = dg.materialize(
                [catalog_items], partition_key=DAY.isoformat(), resources=resources(),
                instance=instance,
            )  # fmt: skip
            assert catalog.success

            # The server goes down (for a second, so Dagster's own event writes meet it down
            # too) while raw_events's transaction is copying the day's rows.
            restarter = _Restarter(pg, "warehouse", down_for=1.0)
            restarter.start()
            caplog.clear()
            started = time.time()
            try:
                first = _run(instance, raise_on_error=False)
            finally:
                restarter.stop_polling.set()
                restarter.join(60)
            finished = time.time()
            assert restarter.error is None, f"restarting failed: {restarter.error!r}"
            assert restarter.seen is not None, "raw_events never started copying: no restart"
            assert started < restarter.began < restarter.ended < finished, (
                "the restart did not happen while the run was in progress"
            )
            # The step died on the restart (the error names the database's), Dagster recorded
            # that and retried it after the server was back.
            failed = _events(first, "STEP_UP_FOR_RETRY") + _events(first, "STEP_FAILURE")
            assert failed and failed[0].step_key == "raw_events"
            error = _error_text(failed[0].event_specific_data.error)
            assert "OperationalError" in error, error
            # Dagster's own storage was down too: its writes waited for the server
            # (dagster_postgres retries connecting) instead of losing the events.
            storage_retries = [
                r for r in caplog.records if "Retrying failed database connection" in r.getMessage()
            ]
            assert storage_retries, "Dagster's storage never met the server down"
            if first.success:
                assert _events(first, "STEP_UP_FOR_RETRY")
                assert all(c.passed for c in first.get_asset_check_evaluations())
                _check_warehouse(wh_url)  # the retry neither lost nor doubled a row
            else:
                # Failing is allowed, but loudly: a STEP_FAILURE carrying the database error.
                assert _events(first, "STEP_FAILURE"), "the run failed without a step failure"

            rerun = _run(instance)
            assert rerun.success
            assert all(c.passed for c in rerun.get_asset_check_evaluations())

            # Dagster's storage (on the restarted server) holds every run with its final
            # status (none stuck in STARTED) and the first run's whole event log.
            runs = {r.run_id: r for r in instance.get_runs()}
            assert {catalog.run_id, first.run_id, rerun.run_id} <= set(runs)
            assert runs[first.run_id].status == (
                dg.DagsterRunStatus.SUCCESS if first.success else dg.DagsterRunStatus.FAILURE
            )
            assert runs[rerun.run_id].status == dg.DagsterRunStatus.SUCCESS
            stored = instance.all_logs(first.run_id)
            kinds = [e.dagster_event.event_type_value for e in stored if e.is_dagster_event]
            assert Counter(kinds) >= Counter(e.event_type_value for e in first.all_events)
            assert kinds[-1] == ("PIPELINE_SUCCESS" if first.success else "PIPELINE_FAILURE")
            # Events created while the server was down were stored after it came back.
            assert any(restarter.began <= e.timestamp <= restarter.ended for e in stored)
            dagster_db = sa.create_engine(dagster_url)
            try:
                with dagster_db.connect() as conn:
                    statuses = dict(conn.execute(sa.text("SELECT run_id, status FROM runs")).all())
                    n_logged = conn.execute(
                        sa.text("SELECT COUNT(*) FROM event_logs WHERE run_id = :r"),
                        {"r": first.run_id},
                    ).scalar()
            finally:
                dagster_db.dispose()
            assert "STARTED" not in statuses.values(), statuses
            assert n_logged == len(stored)

        _check_warehouse(wh_url)


def _check_warehouse(url: str) -> None:
    """Every landed event exactly once, where it belongs, and the day's accounting balanced."""
    wh = Warehouse(url)
    try:
        with wh.begin() as conn:

            def one(sql: str) -> tuple:
                return tuple(conn.execute(sa.text(sql), {"dt": DAY}).one())

            raw = one("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM raw_events WHERE dt = :dt")
            events = one("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events WHERE dt = :dt")
            files = one(
                "SELECT COUNT(*), SUM(rows_read) FROM ingested_files "
                "WHERE dt = :dt AND source = 'events'"
            )
            quarantined = dict(
                conn.execute(
                    sa.text(
                        "SELECT stage, COUNT(*) FROM quarantine "
                        "WHERE dt = :dt AND source = 'events' GROUP BY stage"
                    ),
                    {"dt": DAY},
                ).all()
            )
            accounting = conn.execute(
                sa.text(
                    "SELECT rows_read, rows_accepted, rows_quarantined, rows_duplicate "
                    "FROM ingestion_accounting WHERE dt = :dt AND source = 'events'"
                ),
                {"dt": DAY},
            ).all()
    finally:
        wh.dispose()
    assert raw == (RAW, RAW)
    assert events == (ACCEPTED, ACCEPTED)
    assert files == (N_FILES, LANDED)
    assert quarantined == {
        "ingestion": N_FILES * BAD_TYPE_PER_FILE,
        "quality": N_FILES * UNKNOWN_ITEM_PER_FILE,
    }
    assert [tuple(r) for r in accounting] == [(LANDED, ACCEPTED, LANDED - ACCEPTED, 0)]
