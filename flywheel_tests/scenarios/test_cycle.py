"""The whole cycle through Dagster's materialize() on the real assets and a real DuckDB file."""

import datetime as dt
import json

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from flywheel_assets.platform.settings import FlywheelPaths
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.simulation.demo import materialize_day, run_demo
from flywheel_tests.support.environment import restored_environment
from flywheel_tests.support.homes import (
    SMALL_SHOP,
    SMALL_SHOP_DAYS,
    SMALL_SHOP_GROUP,
    SMALL_SHOP_SEED,
    SMALL_SHOP_START,
    DemoHome,
)

# The module's tests share an expensive module fixture: one worker runs them all, so it is built once.
# With the small shop's other readers (support/homes.py): its determinism test compares the
# module's own run with that shop's, a second independent run of the same seed.
pytestmark = pytest.mark.xdist_group(SMALL_SHOP_GROUP)

SMALL = SMALL_SHOP
START = SMALL_SHOP_START
TABLES = [
    "ingested_files",
    "raw_events",
    "events",
    "quarantine",
    "items",
    "users",
    "user_features",
    "item_features",
    "user_category_features",
    "user_item_activity_daily",
    "region_category_features",
    "region_brand_features",
    "training_examples",
    "model_registry",
    "model_aliases",
    "alias_history",
    "offline_evaluations",
    "promotion_decisions",
    "experiments",
    "experiment_results",
]


def counts(wh: Warehouse) -> dict[str, int]:
    with wh.begin() as conn:
        return {t: int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar()) for t in TABLES}  # noqa: S608


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    with restored_environment():  # the module runs with the demo's settings, then they go
        home = tmp_path_factory.mktemp("fw") / "home"
        rows = run_demo(
            days=SMALL_SHOP_DAYS, seed=SMALL_SHOP_SEED, start=START, home=home, config=SMALL
        )
        yield home, rows


def test_three_days_turn_the_flywheel(demo_home):
    home, rows = demo_home
    assert [r["day"] for r in rows] == ["2026-02-01", "2026-02-02", "2026-02-03"]
    assert rows[0]["champion"] == "cold-start"
    # The first model passes the offline gate and must now beat the cold-start policy online:
    # from the next day it serves half of the users.
    assert rows[0]["decision"] == "experiment"
    assert rows[1]["champion"] == "cold-start"
    wh = Warehouse(FlywheelPaths.from_env(home).warehouse_url)
    c = counts(wh)
    assert c["events"] > 0 and c["model_registry"] == 3 and c["promotion_decisions"] == 3
    with wh.begin() as conn:
        reg = wh.query_df(conn, "SELECT * FROM model_registry ORDER BY dt")
        served = wh.query_df(
            conn,
            "SELECT DISTINCT model_version, variant FROM events WHERE dt = :d AND event_type = 'impression' ORDER BY variant",
            d=START + dt.timedelta(days=1),
        )
        arms = wh.query_df(
            conn,
            "SELECT user_id, COUNT(DISTINCT variant) AS n_arms, MIN(variant) AS variant FROM events "
            "WHERE dt >= :d AND event_type = 'impression' GROUP BY user_id",
            d=START + dt.timedelta(days=1),
        )
        experiments = wh.query_df(conn, "SELECT * FROM experiments")
    # Lineage: exact partitions, parameters and a verifiable artefact for every model.
    assert json.loads(reg.iloc[2]["training_partitions_json"]) == [
        "2026-02-01",
        "2026-02-02",
        "2026-02-03",
    ]
    assert json.loads(reg.iloc[0]["params_json"])["objective"] == "binary:logistic"
    assert served.to_dict("records") == [
        {"model_version": rows[0]["challenger"], "variant": "challenger"},
        {"model_version": "cold-start", "variant": "champion"},
    ]
    exp = experiments.iloc[0]
    assert exp["challenger"] == rows[0]["challenger"] and pd.isna(exp["champion"])
    assert exp["start_dt"] == START + dt.timedelta(days=1)
    # Assignment by hashing: every user stays in one arm, and the arms split about evenly.
    assert (arms["n_arms"] == 1).all()
    assert (arms["variant"] == "challenger").mean() == pytest.approx(0.5, abs=0.06)
    # Serving logged propensities in (0, 1] on every impression.
    with wh.begin() as conn:
        bad = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM events WHERE event_type = 'impression' AND NOT (propensity > 0 AND propensity <= 1)"
            )
        ).scalar()
    assert bad == 0
    assert (home / "serving" / "champion.json").exists()
    # The simulated feed's junk is all caught, each row with the reason it deserves.
    with wh.begin() as conn:
        reasons = set(
            wh.query_df(conn, "SELECT DISTINCT reason FROM quarantine")["reason"]
            .str.split(":")
            .str[0]
        )
    assert reasons == {
        "duplicate_event_id",
        "invalid_event_type",
        "invalid_timestamp",
        "unknown_item",
    }
    assert all(r["quarantined"] > 0 and r["duplicates"] > 0 for r in rows)
    assert all(r["read"] == r["accepted"] + r["quarantined"] + r["duplicates"] for r in rows)


def test_no_raw_personal_ids_reach_the_warehouse(demo_home):
    home, _ = demo_home
    wh = Warehouse(FlywheelPaths.from_env(home).warehouse_url)
    with wh.begin() as conn:
        leaked = conn.execute(
            sa.text(
                "SELECT (SELECT COUNT(*) FROM events WHERE user_id LIKE 'cust-%') + "
                "(SELECT COUNT(*) FROM users WHERE user_id LIKE 'cust-%') + "
                "(SELECT COUNT(*) FROM quarantine WHERE payload LIKE '%cust-%' OR payload LIKE '%@example.com%')"
            )
        ).scalar()
        cols = wh.query_df(conn, "SELECT * FROM users LIMIT 1").columns
    assert leaked == 0
    assert "email" not in cols


def test_rematerialising_a_day_changes_no_row_count(demo_home):
    home, _ = demo_home
    wh = Warehouse(FlywheelPaths.from_env(home).warehouse_url)
    before = counts(wh)

    def state() -> tuple[list, list]:
        with wh.begin() as conn:
            exps = wh.query_df(
                conn,
                "SELECT experiment_id, challenger, champion, start_dt, status, end_dt, reason "
                "FROM experiments ORDER BY experiment_id",
            )
            decisions = wh.query_df(
                conn,
                "SELECT dt, decision, challenger, champion_after, experiment_id, reason "
                "FROM promotion_decisions ORDER BY dt",
            )
        return exps.astype(str).values.tolist(), decisions.astype(str).values.tolist()

    decided = state()
    with wh.begin() as conn:
        champion = conn.execute(
            sa.text("SELECT model_version FROM model_aliases WHERE alias = 'champion'")
        ).scalar()
    materialize_day(START + dt.timedelta(days=1))  # an old day: a later decision exists
    materialize_day(START + dt.timedelta(days=2))  # the latest day: replayed
    assert counts(wh) == before
    # Replaying the newest day undoes and redoes its decision: the same experiments, the same
    # decisions, nothing started twice.
    assert state() == decided
    with wh.begin() as conn:
        assert (
            conn.execute(
                sa.text("SELECT model_version FROM model_aliases WHERE alias = 'champion'")
            ).scalar()
            == champion
        )


def test_every_landed_row_is_accounted_for_and_bad_lines_are_quarantined(demo_home):
    home, _ = demo_home
    paths = FlywheelPaths.from_env(home)
    day = START + dt.timedelta(days=2)
    folder = paths.landing_dir / "events" / f"dt={day}"
    good = {
        "event_id": "x-1",
        "event_type": "click",
        "event_time": f"{day}T10:00:00Z",
        "user_id": "cust-0000001",
        "item_id": "sku-00001",
    }
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "event_id": "x-2", "event_type": "teleport"}),
        json.dumps({**good, "event_id": "x-3", "item_id": "sku-99999"}),  # not in the catalog
        json.dumps(
            {**good, "event_id": "x-4", "event_time": f"{day + dt.timedelta(days=3)}T10:00:00Z"}
        ),
        json.dumps(good),  # duplicate
    ]
    (folder / "extra.jsonl").write_text("\n".join(lines) + "\n")
    wh = Warehouse(paths.warehouse_url)
    before = counts(wh)
    try:
        materialize_day(day)
        after = counts(wh)
        with wh.begin() as conn:
            q = wh.query_df(
                conn,
                "SELECT reason, stage FROM quarantine WHERE dt = :d AND source_file LIKE '%extra.jsonl'",
                d=day,
            )
        reasons = sorted(q["reason"].str.split(":").str[0])
        assert reasons == [
            "duplicate_event_id",
            "future_event",
            "invalid_event_type",
            "malformed_json",
            "unknown_item",
        ]
        assert after["events"] == before["events"] + 1
        assert after["quarantine"] == before["quarantine"] + 5
        with wh.begin() as conn:
            book = wh.query_df(conn, "SELECT * FROM ingestion_accounting WHERE dt = :d", d=day)
        row = book.set_index("source").loc["events"]
        assert row["rows_duplicate"] >= 1  # our duplicate line, plus the feed's redeliveries
        assert row["rows_read"] == (
            row["rows_accepted"] + row["rows_quarantined"] + row["rows_duplicate"]
        )
    finally:
        (folder / "extra.jsonl").unlink()
        materialize_day(day)
    assert counts(wh) == before


def test_accounting_table_balances_every_source_and_day(demo_home):
    home, rows = demo_home
    wh = Warehouse(FlywheelPaths.from_env(home).warehouse_url)
    with wh.begin() as conn:
        book = wh.query_df(conn, "SELECT * FROM ingestion_accounting ORDER BY dt, source")
        landed = wh.query_df(
            conn, "SELECT dt, source, SUM(rows_read) AS n FROM ingested_files GROUP BY dt, source"
        )
    assert len(book) == 4 * len(rows)  # events, catalog, users and orders for every day
    assert (
        book["rows_read"]
        == book["rows_accepted"] + book["rows_quarantined"] + book["rows_duplicate"]
    ).all()
    merged = book.merge(landed, on=["dt", "source"])
    assert (merged["rows_read"] == merged["n"]).all()
    events = book[book["source"] == "events"]
    assert (events["rows_accepted"] > 0).all() and (events["rows_duplicate"] > 0).all()
    # Every purchase became an order line: the orders source counts them all in.
    orders = book[book["source"] == "orders"].set_index("dt")["rows_accepted"]
    with wh.begin() as conn:
        purchases = wh.query_df(
            conn,
            "SELECT dt, COUNT(*) AS n FROM raw_events WHERE event_type = 'purchase' GROUP BY dt",
        ).set_index("dt")["n"]
    assert (orders > 0).all() and (orders <= purchases.reindex(orders.index)).all()


def test_a_failing_blocking_check_stops_everything_downstream(demo_home):
    from flywheel_assets.definitions import cycle_assets
    from flywheel_assets.defs.resources import resources

    home, _ = demo_home
    day = START + dt.timedelta(days=2)
    wh = Warehouse(FlywheelPaths.from_env(home).warehouse_url)
    # Bypass ingestion: a raw (not pseudonymised) user id in raw_events.
    with wh.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO raw_events (dt, event_id, event_type, event_time, user_id, item_id, source_file, line_no) "
                "VALUES (:d, 'tampered-1', 'click', :t, 'cust-0000001', 'sku-00001', 'manual', 1)"
            ),
            {"d": day, "t": dt.datetime.combine(day, dt.time(12))},
        )
    try:
        result = dg.materialize(
            cycle_assets(),
            selection=dg.AssetSelection.assets("accepted_events").downstream(),
            partition_key=day.isoformat(),
            resources=resources(),
            instance=dg.DagsterInstance.get(),
            raise_on_error=False,
        )
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert evaluations["accepted_events_suite"].passed is False
        assert "user_id" in evaluations["accepted_events_suite"].description
        materialized = {
            e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
        }
        assert materialized == {"accepted_events"}
    finally:
        with wh.begin() as conn:
            conn.execute(sa.text("DELETE FROM raw_events WHERE event_id = 'tampered-1'"))
        materialize_day(day)


@pytest.mark.slow
def test_demo_is_deterministic(demo_home, small_shop_home: DemoHome):
    # The small shop is a second, independent run with the module run's seed and days, in its
    # own home: it reproduces every day to the last figure.
    _, rows = demo_home
    assert small_shop_home.path != demo_home[0]
    assert len(rows) == SMALL_SHOP_DAYS and small_shop_home.rows == rows


# Two more demo days on PostgreSQL (about a minute): .ci/run's second run, not the README's.
@pytest.mark.long
def test_the_same_cycle_runs_on_postgresql(demo_home, tmp_path, clean_env, pg_database):
    """The warehouse and Dagster's own storage both on PostgreSQL (dagster.production.yaml, as
    in production): the same figures as the embedded default for the same seed, every run and
    its event log in PostgreSQL, and re-running a day changes nothing."""
    import os

    from flywheel_tests.support.environment import PG_ADMIN_URL

    _, embedded_rows = demo_home
    dagster_db = sa.engine.make_url(pg_database).database + "_dagster"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{dagster_db}"'))
    server = sa.engine.make_url(pg_database)
    os.environ.update(
        DAGSTER_PG_HOST=str(server.host),
        DAGSTER_PG_PORT=str(server.port or 5432),
        DAGSTER_PG_USERNAME=str(server.username),
        DAGSTER_PG_PASSWORD=server.password or "unused-with-trust-auth",
        DAGSTER_PG_DB=dagster_db,
    )
    try:
        rows = run_demo(
            days=2, seed=11, start=START, home=tmp_path / "pg", config=SMALL,
            warehouse_url=pg_database, dagster_storage="postgres",
        )  # fmt: skip
        assert rows == embedded_rows[:2]
        instance = dg.DagsterInstance.get()
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert not (tmp_path / "pg" / "dagster" / "history").exists()  # no SQLite beside it
        wh = Warehouse(pg_database)
        assert wh.dialect == "postgresql"
        before = counts(wh)
        assert before["events"] > 0 and before["user_item_activity_daily"] > 0
        materialize_day(START + dt.timedelta(days=1))
        assert counts(wh) == before
        wh.dispose()
        runs = instance.get_runs()
        assert len(runs) == 3 and all(r.is_success for r in runs)
        instance.dispose()
        storage = sa.create_engine(server.set(database=dagster_db))
        with storage.connect() as conn:
            stored_runs = conn.execute(sa.text("SELECT COUNT(*) FROM runs")).scalar()
            materialized = conn.execute(
                sa.text(
                    "SELECT COUNT(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
                )
            ).scalar()
        storage.dispose()
        assert stored_runs == 3 and materialized > 3 * 20
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dagster_db}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.parametrize("cli", ["dagster", "dg"])
def test_cli_rematerialises_a_range_of_days(demo_home, cli):
    """`dagster asset materialize --partition-range` and `dg launch --partition-range` (the dg
    project's own command) re-run existing days in one run."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    # The CLI runs on a copy of the home that this process never opens: DuckDB lets one
    # process at a time hold a file, and the test process has held the original.
    source, _ = demo_home
    before = counts(Warehouse(FlywheelPaths.from_env(source).warehouse_url))
    home = source.parent / f"cli-copy-{cli}"
    shutil.copytree(source, home)
    bin_dir = Path(sys.executable).parent
    days = f"{START}...{START + dt.timedelta(days=2)}"
    command = {
        "dagster": [str(bin_dir / "dagster"), "asset", "materialize", "-m",
                    "flywheel_assets.definitions", "--select", "group:ingestion",
                    "--partition-range", days],
        # dg finds the project by pyproject.toml's [tool.dg]: run it from the repository.
        "dg": [str(bin_dir / "dg"), "launch", "--assets", "group:ingestion",
               "--partition-range", days],
    }[cli]  # fmt: skip
    out = subprocess.run(
        command,
        env={
            **os.environ,
            "FLYWHEEL_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
        },
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RUN_SUCCESS" in out.stderr
    assert counts(Warehouse(FlywheelPaths.from_env(home).warehouse_url)) == before
    runs = dg.DagsterInstance.from_config(str(home / "dagster")).get_runs(limit=1)
    assert runs[0].tags.get("dagster/asset_partition_range_start") == str(START)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_loop_takes_csv_and_parquet_landing_files(tmp_path, clean_env, fmt):
    rows = run_demo(days=1, seed=11, start=START, home=tmp_path / fmt, config=SMALL, fmt=fmt)
    files = list((tmp_path / fmt / "landing" / "events").rglob(f"*.{fmt}"))
    assert len(files) == 1
    assert rows[0]["read"] > 5_000
    assert 0 < rows[0]["quarantined"] < 0.01 * rows[0]["read"]  # the feed's junk, all caught
    assert rows[0]["decision"] == "experiment"


def test_flywheel_status_shows_serving_decisions_gaps_quarantine_and_alerts(
    demo_home, tmp_path, capsys
):
    """`flywheel status` on a demo home: what serves, the decisions with reasons, a missing
    day, staleness, open quarantine by reason and the latest alert."""
    import os
    import shutil

    from flywheel_assets import registry
    from flywheel_assets.cli.main import main
    from flywheel_assets.platform.alerts import Alert, record_alert

    home, _rows = demo_home
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    wh = Warehouse(f"duckdb:///{copy / 'warehouse.duckdb'}")
    gap = dt.date(2026, 2, 2)
    with wh.begin() as conn:  # the shop delivered nothing that day
        for table in ("ingested_files", "events", "promotion_decisions", "quarantine",
                      "ingestion_accounting"):  # fmt: skip
            wh.delete_partition(conn, table, gap)
        champion = registry.get_alias(conn, registry.CHAMPION) or "cold-start"
        open_rows = int(wh.scalar(conn, "SELECT COUNT(*) FROM quarantine_open"))
    wh.dispose()
    record_alert(
        Alert("run-failure:r9", dt.datetime(2026, 2, 4, 1, 5), "run_failure", "flywheel_cycle",
              "r9", "2026-02-04", "raw_events: cannot read events.parquet", {}),
        copy,
    )  # fmt: skip
    with restored_environment():
        os.environ["FLYWHEEL_HOME"] = str(copy)
        os.environ.pop("FLYWHEEL_WAREHOUSE_URL", None)
        capsys.readouterr()
        assert main(["status", "--as-of", "2026-02-04", "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert main(["status", "--as-of", "2026-02-10", "--json"]) == 0
        later = json.loads(capsys.readouterr().out)
        assert main(["status", "--as-of", "2026-02-04"]) == 0
        text = " ".join(capsys.readouterr().out.split())  # as read, whatever the wrapping
    assert status["champion"]["version"] == champion
    assert [d["day"] for d in status["decisions"]] == ["2026-02-03", "2026-02-01"]
    assert all(d["reason"] for d in status["decisions"])
    assert status["missing_days"] == ["2026-02-02"] and status["undecided_days"] == []
    assert status["stale_days"] == 0 and later["stale_days"] == 6
    assert sum(q["rows"] for q in status["quarantine"]) == open_rows > 0
    assert status["alerts"][-1]["run_id"] == "r9"
    assert status["serving"]["feature_bundle"] == "2026-02-03"
    for phrase in ("flywheel status", champion, "missing", "2026-02-02", "last decisions",
                   "open quarantine", "latest alerts", "cannot read events.parquet"):  # fmt: skip
        assert phrase in text, phrase


def test_warehouse_assets_report_rows_partition_and_column_schema(demo_home):
    """What the UI shows for each table asset: its row count, partition and the table's
    columns as the warehouse holds them."""
    import os

    home, _rows = demo_home
    instance = dg.DagsterInstance.from_config(os.path.join(home, "dagster"))
    for asset, column in (
        ("accepted_events", "propensity"),
        ("catalog_items", "category"),
        ("user_features", "u_ctr_28d"),
        ("user_item_activity_daily", "clicks"),
        ("training_examples", "label_purchase"),
        ("served_requests", "latency_ms"),
        ("challenger_model", "sha256"),
        ("online_evaluation", "p_adjusted"),
        ("promotion_decision", "evidence_json"),
    ):
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        meta = event.asset_materialization.metadata
        columns = {c.name: c.type for c in meta["dagster/column_schema"].schema.columns}
        assert column in columns, (asset, sorted(columns))
        if asset not in ("challenger_model", "online_evaluation", "promotion_decision"):
            assert "dagster/row_count" in meta, asset
        assert meta["partition"].value == "2026-02-03"


def test_flywheel_health_tracks_the_days_with_the_simulators_truth(demo_home):
    """One row per day, numbers the UI can chart, and a plot with the oracle share the demo
    reported."""
    import os

    home, rows = demo_home
    instance = dg.DagsterInstance.from_config(os.path.join(home, "dagster"))
    event = instance.get_latest_materialization_event(dg.AssetKey("flywheel_health"))
    meta = event.asset_materialization.metadata
    last = rows[-1]
    assert meta["purchase_rate"].value == pytest.approx(last["purchase_rate"], abs=1e-6)
    assert meta["ctr"].value == pytest.approx(last["ctr"], abs=1e-6)
    assert meta["oracle_share"].value == pytest.approx(last["oracle_share"], abs=1e-6)
    assert "data:image/png;base64," in meta["plot"].value
    wh = Warehouse(FlywheelPaths.from_env(home).warehouse_url)
    with wh.begin() as conn:
        days = wh.query_df(conn, "SELECT dt, champion FROM flywheel_health ORDER BY dt")
    assert [str(d) for d in days["dt"]] == [r["day"] for r in rows]
    assert days["champion"].fillna("cold-start").tolist() == [r["champion"] for r in rows]


def _readme_cli(home, copy, *argv: str) -> str:
    """A CLI command as the README runs it: the demo home's flywheel.env sourced, stdout a pipe
    (so rich lays out for 80 columns), on a copy of the home."""
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    flywheel = Path(sys.executable).parent / "flywheel"
    script = (
        f"source {shlex.quote(str(home / 'flywheel.env'))} && "
        f"export FLYWHEEL_HOME={shlex.quote(str(copy))} "
        f"DAGSTER_HOME={shlex.quote(str(copy / 'dagster'))} && "
        f"{shlex.quote(str(flywheel))} {shlex.join(argv)}"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("FLYWHEEL_")}
    out = subprocess.run(
        ["bash", "-c", script], env={**env, "COLUMNS": "80"}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _table_rows(text: str) -> list[list[str]]:
    """The rows of every table in ``text`` (a header line over a rule of ─), each as the
    lines it takes: a row starts with a date, a line without one continues the row above."""
    import re

    lines = text.splitlines()
    rows: list[list[str]] = []
    i = 0
    while i < len(lines):
        if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"─"}:
            i += 2
            # rows are indented; the next title or section starts at column 0
            while i < len(lines) and lines[i].strip() and lines[i].startswith(" "):
                if re.match(r"^\W*\d{4}-\d{2}-\d{2}|^\s*[a-z_]+[:\w]*\s+\d", lines[i]) or not rows:
                    rows.append([lines[i]])
                else:
                    rows[-1].append(lines[i])
                i += 1
        else:
            i += 1
    return rows


def test_the_readme_path_reads_at_80_columns_and_in_a_pipe(demo_home, tmp_path):
    """`flywheel status` and `flywheel history` as the README runs them, piped at 80 columns:
    no line wider than the terminal, no table row over more than 3 lines, no `nan`; every
    stored reason is a sentence; the demo's rows and the status name every decision of a day
    alike; `--json` gives the same."""
    import re
    import shutil

    from flywheel_assets import registry

    home, rows = demo_home
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    # Three days promote nobody: a person moves the champion, with a long reason that holds
    # brackets rich would read as markup.
    person = "rolled back by hand: [/x] is not markup, nor [red]this[/red]; " + "why " * 60
    wh = Warehouse(f"duckdb:///{copy / 'warehouse.duckdb'}")
    with wh.begin() as conn:
        first = rows[0]["challenger"]
        registry.move_alias(
            conn, registry.CHAMPION, first, actor="ann", reason=person, now=dt.datetime(2026, 2, 4)
        )
    wh.dispose()
    status = _readme_cli(home, copy, "status", "--as-of", "2026-02-04")
    history = _readme_cli(home, copy, "history")
    challenger = _readme_cli(home, copy, "history", "--alias", "challenger")
    for text in (status, history, challenger):
        assert not re.search(r"\bnan\b", text, re.IGNORECASE), text
        assert max(len(line.rstrip()) for line in text.splitlines()) <= 80, text
    tables = _table_rows(status)
    assert len(tables) >= 3 + 4  # 3 decisions, 3 days, quarantine reasons
    for text in (history, challenger):
        tables += _table_rows(text)
    assert all(len(r) <= 3 for r in tables), [r for r in tables if len(r) > 3]
    assert re.search(r"^ 2026-02-04 00:00 +- +cold-start +" + first, history, re.MULTILINE)
    assert "[/x] is not markup, nor [red]this[/red]" in " ".join(history.split())
    moves = json.loads(_readme_cli(home, copy, "history", "--alias", "challenger", "--json"))
    assert moves["moves"] and all(m["from"] != "nan" for m in moves["moves"])
    assert all(m["to"] in challenger for m in moves["moves"])
    state = json.loads(_readme_cli(home, copy, "status", "--as-of", "2026-02-04", "--json"))
    wh = Warehouse(f"duckdb:///{copy / 'warehouse.duckdb'}")
    with wh.begin() as conn:
        reasons = wh.query_df(conn, "SELECT reason FROM promotion_decisions")["reason"]
    wh.dispose()
    assert len(reasons) == len(rows) and all(r.endswith(".") for r in reasons)
    by_day = {d["day"]: d["decision"] for d in state["days"]}
    assert {r["day"]: r["decision"] for r in rows} == by_day
    assert [d["day"] for d in state["days"]] == [r["day"] for r in rows]  # none before the first
    for r in rows:
        assert r["decision"] in status
    model = json.loads(_readme_cli(home, copy, "model", "show", "--alias", "challenger", "--json"))
    # the alias names the newest trained challenger (the day's candidate), as history says
    assert model["model_version"] == moves["moves"][-1]["to"]
    assert model["training_spec"]["label"] == model["label"] == "purchase"


def test_one_days_counts_agree_under_one_name_everywhere(demo_home):
    """The demo's row, `flywheel status`, the accepted_events asset's metadata and the
    accounting table give the same read, accepted, quarantined and duplicates for a day."""
    import os

    from flywheel_assets.cli.status import status_for_home

    home, rows = demo_home
    day = rows[0]["day"]
    names = ("read", "accepted", "quarantined", "duplicates")
    demo = {k: rows[0][k] for k in names}
    status = status_for_home(home, today=START + dt.timedelta(days=3))
    shown = next(d for d in status["days"] if d["day"] == day)
    instance = dg.DagsterInstance.from_config(os.path.join(home, "dagster"))
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("accepted_events"), asset_partitions=[day]),
        limit=1,
    ).records[0]
    meta = record.asset_materialization.metadata
    wh = Warehouse(FlywheelPaths.from_env(home).warehouse_url)
    with wh.begin() as conn:
        book = wh.query_df(
            conn, "SELECT * FROM ingestion_accounting WHERE source = 'events' AND dt = :d", d=day
        ).iloc[0]
    assert demo["read"] == demo["accepted"] + demo["quarantined"] + demo["duplicates"]
    assert demo["quarantined"] > 0 and demo["duplicates"] > 0
    assert {k: shown[k] for k in names} == demo
    assert {k: meta[f"rows_{k}"].value for k in names} == demo
    columns = ("rows_read", "rows_accepted", "rows_quarantined", "rows_duplicate")
    assert dict(zip(names, (int(book[c]) for c in columns), strict=True)) == demo
