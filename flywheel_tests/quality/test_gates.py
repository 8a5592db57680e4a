"""Issue 5's gates end to end: a day with injected violations is stopped at the right check,
nothing downstream of it materialises, the check names the violation; fixing the data and
re-running passes. Then the quarantine release path with its accounting and audit trail.

One shop is simulated for 4 days (small simulator): the last day has the 3 reference days that
volume and drift need before they judge a day (their minimum). Every scenario damages day 4's
landing files, runs the whole cycle of day 4 through Dagster, then restores the files and
re-runs.
"""

import datetime as dt
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from flywheel_assets.ingestion.accounting import source_accounting
from flywheel_assets.platform.settings import FlywheelPaths
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.quality.quarantine import REF_FILE, ReleaseError, export_rows, release
from flywheel_assets.simulation.demo import run_demo
from flywheel_assets.simulation.simulator import SimulatorConfig
from flywheel_tests.support.environment import restored_environment

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("quality.test_gates")]

SMALL = SimulatorConfig(
    seed=5, n_users=2_000, n_items=300, sessions_per_day=300, new_users_per_day=30
)
START = dt.date(2026, 3, 1)
DAYS = 4
DAY = START + dt.timedelta(days=DAYS - 1)
ENV = {
    # The small shop is judged from its first days: no warm-up, and only a column that is
    # stationary from day one (prices) is watched, so a clean day passes.
    "FLYWHEEL_DRIFT_WARMUP_DAYS": "0",
    # The last day is judged by all the days before it (DAYS - 1), whatever the defaults: a
    # reference window may not start before the first events.
    "FLYWHEEL_VOLUME_REFERENCE_DAYS": str(DAYS - 1),
    "FLYWHEEL_VOLUME_MIN_REFERENCE_DAYS": str(DAYS - 1),
    "FLYWHEEL_DRIFT_REFERENCE_DAYS": str(DAYS - 1),
    "FLYWHEEL_DRIFT_MIN_REFERENCE_DAYS": str(DAYS - 1),
    "FLYWHEEL_DRIFT_COLUMNS": json.dumps({"item_features": ["i_price"]}),
}
DOWNSTREAM_OF_EVENTS = {
    "user_activity_daily",
    "item_activity_daily",
    "user_item_activity_daily",
    "user_features",
    "user_brand_features",
    "item_features",
    "user_category_features",
    "region_category_features",
    "region_brand_features",
    "training_examples",
    "challenger_model",
    "offline_evaluation",
    "promotion_decision",
    "champion_model",
}
DOWNSTREAM_OF_FEATURES = {
    "training_examples",
    "challenger_model",
    "offline_evaluation",
    "promotion_decision",
    "champion_model",
}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with restored_environment(ENV):
        os.environ.update(ENV)
        home = tmp_path_factory.mktemp("gates") / "home"
        run_demo(days=DAYS, seed=5, start=START, home=home, config=SMALL)
        yield home


def run_day(day: dt.date = DAY) -> dg.ExecuteInProcessResult:
    from flywheel_assets.definitions import cycle_assets
    from flywheel_assets.defs.resources import resources

    return dg.materialize(
        cycle_assets(),
        partition_key=day.isoformat(),
        resources=resources(),
        instance=dg.DagsterInstance.get(),
        raise_on_error=False,
    )


def landing(home: Path, source: str) -> Path:
    return FlywheelPaths.from_env(home).landing_dir / source / f"dt={DAY:%Y-%m-%d}"


def rewrite_events(home: Path, change: Callable[[list[dict]], list[dict]]) -> None:
    path = next(landing(home, "events").glob("*.jsonl"))
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(json.dumps(r) + "\n" for r in change(rows)))


def duplicate_ids(home: Path) -> None:
    def change(rows: list[dict]) -> list[dict]:
        for i in range(1, len(rows), 20):  # 5%: another event's id on a different event
            rows[i]["event_id"] = rows[i - 1]["event_id"]
        return rows

    rewrite_events(home, change)


def unknown_items(home: Path) -> None:
    def change(rows: list[dict]) -> list[dict]:
        for i in range(0, len(rows), 20):
            rows[i]["item_id"] = f"sku-ghost-{i}"
        return rows

    rewrite_events(home, change)


def negative_prices(home: Path) -> None:
    def change(rows: list[dict]) -> list[dict]:
        for i in range(0, len(rows), 20):
            rows[i]["price"] = -abs(rows[i].get("price") or 1.0)
        return rows

    rewrite_events(home, change)


def volume_drop(home: Path) -> None:
    rewrite_events(home, lambda rows: rows[::10])  # 90% of the day is missing


def repriced_catalog(home: Path) -> None:
    # A feed bug triples every price: one more catalog file for the day.
    first = next((FlywheelPaths.from_env(home).landing_dir / "catalog").glob("dt=*/*.jsonl"))
    today = {json.loads(x)["item_id"] for x in next(landing(home, "catalog").glob("*")).open()}
    rows = [json.loads(x) for x in first.read_text().splitlines()]
    rows = [dict(r, price=round(r["price"] * 3, 2)) for r in rows if r["item_id"] not in today]
    (landing(home, "catalog") / "reprice.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )


SCENARIOS = {
    # name: (damage, check that must stop the day, words its description must name,
    #        assets that must not materialise)
    "duplicate ids": (
        duplicate_ids,
        "events_quarantine_share",
        ["event_id_conflict"],
        DOWNSTREAM_OF_EVENTS,
    ),
    "unknown items": (
        unknown_items,
        "events_quarantine_share",
        ["unknown_item"],
        DOWNSTREAM_OF_EVENTS,
    ),
    "negative prices": (
        negative_prices,
        "events_quarantine_share",
        ["invalid_price"],
        DOWNSTREAM_OF_EVENTS,
    ),
    "90% volume drop": (
        volume_drop,
        "raw_events_suite",
        ["expect_table_row_count_to_be_between", "expected"],
        {"accepted_events", *DOWNSTREAM_OF_EVENTS},
    ),
    "shifted feature distribution": (
        repriced_catalog,
        "item_features_drift",
        ["i_price", "PSI"],
        DOWNSTREAM_OF_FEATURES,
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_damaged_day_is_stopped_at_the_right_check_and_passes_once_fixed(
    shop: Path, name: str
) -> None:
    damage, check, words, blocked = SCENARIOS[name]
    backup = shop.parent / "landing-backup"
    shutil.rmtree(backup, ignore_errors=True)
    shutil.copytree(FlywheelPaths.from_env(shop).landing_dir, backup)
    try:
        damage(shop)
        result = run_day()
        assert not result.success
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        failed = {n for n, e in evaluations.items() if not e.passed}
        assert check in failed, f"{name}: failed checks {failed}"
        stopped = evaluations[check]
        assert stopped.severity == dg.AssetCheckSeverity.ERROR
        text = (stopped.description or "") + json.dumps(
            {k: str(v.value) for k, v in stopped.metadata.items()}
        )
        for word in words:
            assert word in text, f"{name}: {word!r} not named by {check}: {stopped.description}"
        materialized = {
            e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
        }
        assert not materialized & blocked, f"{name}: {materialized & blocked} materialised"
    finally:
        shutil.rmtree(FlywheelPaths.from_env(shop).landing_dir)
        shutil.copytree(backup, FlywheelPaths.from_env(shop).landing_dir)
    fixed = run_day()
    assert fixed.success
    errors = [
        e.check_name
        for e in fixed.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert errors == []
    assert "promotion_decision" in {
        e.asset_key.to_user_string() for e in fixed.get_asset_materialization_events()
    }


def _counts(wh: Warehouse) -> dict[str, int]:
    with wh.begin() as conn:
        return source_accounting(wh, conn, DAY, "events")


def test_quarantined_rows_are_fixed_released_and_accounted_for(shop: Path) -> None:
    paths = FlywheelPaths.from_env(shop)
    wh = Warehouse(paths.warehouse_url)
    key = os.environ["FLYWHEEL_PSEUDONYM_KEY"]
    backup = shop.parent / "landing-backup-release"
    shutil.rmtree(backup, ignore_errors=True)
    shutil.copytree(paths.landing_dir, backup)

    def bad_prices(rows: list[dict]) -> list[dict]:
        # Not rows the feed also redelivers: releasing one of those turns its redelivered copy
        # (accepted while the original sat in quarantine) into the duplicate, so accepted rows
        # would rise by one less than released, rightly, and this count would not show it.
        seen = Counter(r.get("event_id") for r in rows)
        for i in range(0, len(rows), 200):  # 0.5%: quarantined, below the share limit
            if seen[rows[i].get("event_id")] == 1:
                rows[i]["price"] = -abs(rows[i].get("price") or 1.0)
        return rows

    try:
        rewrite_events(shop, bad_prices)
        assert run_day().success
        before = _counts(wh)
        exported = shop.parent / "fix.jsonl"
        n = export_rows(wh, DAY, exported, reason="invalid_price")
        assert n >= 10
        fixes = [json.loads(x) for x in exported.read_text().splitlines()]
        # The export carries pseudonyms, never the raw customer ids of the landing file.
        assert all(r["user_id"].startswith("u_") for r in fixes)
        assert not any("cust-" in x for x in exported.read_text().splitlines())

        # A file that is still wrong is refused whole, and nothing is written.
        still_bad = shop.parent / "still-bad.jsonl"
        still_bad.write_text(
            "".join(json.dumps(dict(r, price=abs(float(r["price"])))) + "\n" for r in fixes[1:])
            + json.dumps(fixes[0])
            + "\n"
        )
        with pytest.raises(ReleaseError, match="invalid_price"):
            release(wh, DAY, still_bad, key=key, released_by="alice", why="t", now=_now())
        with pytest.raises(ReleaseError, match="not an open quarantined event"):
            wrong = shop.parent / "wrong-ref.jsonl"
            wrong.write_text(json.dumps(dict(fixes[0], **{REF_FILE: "nope.jsonl"})) + "\n")
            release(wh, DAY, wrong, key=key, released_by="alice", why="t", now=_now())
        with pytest.raises(ReleaseError, match="who"):
            release(wh, DAY, exported, key=key, released_by=" ", why="t", now=_now())
        with wh.begin() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM quarantine_releases")).scalar() == 0

        good = shop.parent / "good.jsonl"
        good.write_text(
            "".join(json.dumps(dict(r, price=abs(float(r["price"])))) + "\n" for r in fixes)
        )
        result = release(
            wh, DAY, good, key=key, released_by="alice", why="feed sent negative prices", now=_now()
        )
        assert result.rows == n and result.reasons == {"invalid_price": n}
        with pytest.raises(ReleaseError, match="not an open quarantined event"):
            release(wh, DAY, good, key=key, released_by="alice", why="again", now=_now())

        assert run_day().success
        after = _counts(wh)
        # The same landed rows; n of them moved from quarantined to accepted.
        assert after["rows_read"] == before["rows_read"]
        assert after["rows_accepted"] == before["rows_accepted"] + n
        assert after["rows_quarantined"] == before["rows_quarantined"] - n
        assert sum(after[k] for k in after if k != "rows_read") == after["rows_read"]
        with wh.begin() as conn:
            released = pd.read_sql(
                sa.text(
                    "SELECT e.price, e.user_id FROM events e JOIN quarantine_releases r "
                    "ON e.event_id = r.event_id WHERE e.dt = :d"
                ),
                conn,
                params={"d": DAY},
            )
            audit = pd.read_sql(sa.text("SELECT * FROM audit_log ORDER BY logged_at"), conn)
        assert len(released) == n and (released["price"] >= 0).all()
        # Pseudonyms were kept as they were, so the users' histories still join.
        assert set(released["user_id"]) == {r["user_id"] for r in fixes}
        # The trail also holds the schema's creation and the cycle's own changes (settings,
        # alias moves); exactly one release, by whom, with its rows.
        assert set(audit["action"]) <= {
            "migrate", "configuration", "move_challenger", "move_champion", "quarantine_release"
        }  # fmt: skip
        audit = audit[audit["action"] == "quarantine_release"].reset_index()
        assert len(audit) == 1
        assert audit.loc[0, "actor"] == "alice"
        assert json.loads(audit.loc[0, "details"])["rows"] == n

        # Re-ingesting the day's files keeps the release: the accounting does not move.
        assert run_day().success
        assert _counts(wh) == after
    finally:
        shutil.rmtree(paths.landing_dir)
        shutil.copytree(backup, paths.landing_dir)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def test_open_quarantine_lists_and_exports_on_postgresql(pg_database: str, tmp_path: Path) -> None:
    # The release command's queries on PostgreSQL, which types a NULL parameter strictly.
    wh = Warehouse(pg_database)
    wh.migrate()
    at = dt.datetime(2026, 3, 8, 12)
    with wh.begin() as conn:
        for line, reason in ((1, "invalid_price"), (2, "invalid_event_time")):
            conn.execute(
                sa.text(
                    "INSERT INTO quarantine (dt, source, stage, source_file, line_no, reason, "
                    "payload, quarantined_at) VALUES (:d, 'events', 'ingestion', 'f.jsonl', "
                    ":n, :r, :p, :at)"
                ),
                {"d": DAY, "n": line, "r": reason, "p": json.dumps({"price": "-1"}), "at": at},
            )
    try:
        from flywheel_assets.quality.quarantine import open_rows

        assert sorted(open_rows(wh, DAY)["reason"]) == ["invalid_event_time", "invalid_price"]
        assert open_rows(wh, DAY, "invalid_price")["line_no"].tolist() == [1]
        out = tmp_path / "fix.jsonl"
        assert export_rows(wh, DAY, out, reason="invalid_event_time") == 1
        row = json.loads(out.read_text())
        assert row[REF_FILE] == "f.jsonl" and row["_quarantined_line"] == 2
    finally:
        wh.dispose()
