"""Ingesting one source's day (flywheel_assets.ingestion.ingest) on a real DuckDB warehouse,
without Dagster: every row accounted for, the day replaced, a bad file refused."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from flywheel_assets.ingestion.accounting import source_accounting
from flywheel_assets.ingestion.contract import FieldMap
from flywheel_assets.ingestion.ingest import (
    catalog_source,
    events_source,
    ingest_day,
    users_source,
)
from flywheel_assets.ingestion.landing import LandingFileError, partition_dir
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import Warehouse

DAY = dt.date(2026, 5, 4)
NOW = dt.datetime(2026, 5, 5, 6, 0)
PSEUDONYMS = Pseudonymiser("ingest-test-key-0123456789")


def land(landing: Path, source: str, name: str, text: str, day: dt.date = DAY) -> Path:
    path = partition_dir(landing, source, day) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path


def rows(wh: Warehouse, sql: str) -> pd.DataFrame:
    with wh.begin() as conn:
        return wh.query_df(conn, sql)


# What a catalog day writes, each in a stable order.
DAY_TABLES = {
    "items": "SELECT * FROM items ORDER BY ALL",
    "quarantine": "SELECT * FROM quarantine ORDER BY ALL",
    "ingested_files": "SELECT * FROM ingested_files ORDER BY ALL",
    "ingestion_accounting": "SELECT * FROM ingestion_accounting ORDER BY ALL",
}


def _day_tables(wh: Warehouse) -> dict[str, pd.DataFrame]:
    return {table: rows(wh, sql) for table, sql in DAY_TABLES.items()}


CATALOG = (
    "item_id,category,price,brand\n"
    "i1,shoes,49.5,acme\n"
    "i2,hats,10,\n"
    "i3,,3.0,acme\n"  # no category: quarantined
    "i4,hats,12,acme,extra\n"  # one field too many: quarantined by the reader
    "i2,hats,11,\n"  # i2 again: the later line wins, the first is a duplicate
)


def test_a_catalog_day_accounts_for_every_row(wh: Warehouse, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    land(landing, "catalog", "items.csv", CATALOG)

    report = ingest_day(wh, landing, catalog_source(DAY, None), DAY, now=NOW)

    assert (report.files, report.rows_read) == (1, 5)
    assert report.rows_accepted + report.rows_quarantined == report.rows_read
    acc = report.accounting
    assert acc is not None
    assert (
        acc["rows_read"] == acc["rows_accepted"] + acc["rows_quarantined"] + acc["rows_duplicate"]
    )
    assert (acc["rows_accepted"], acc["rows_quarantined"], acc["rows_duplicate"]) == (2, 2, 1)
    # The stored accounting row is the one the report carries.
    with wh.begin() as conn:
        assert source_accounting(wh, conn, DAY, "catalog") == acc
    items = rows(wh, "SELECT item_id, price, valid_from FROM items ORDER BY item_id")
    assert items[["item_id", "price"]].values.tolist() == [["i1", 49.5], ["i2", 11.0]]
    assert (items["valid_from"] == pd.Timestamp(DAY)).all()
    # Why rows were quarantined, by reason without its detail.
    assert dict(zip(report.reasons["reason"], report.reasons["n"], strict=True)) == {
        "duplicate_item_id": 1,
        "missing_required": 1,
        "wrong_field_count": 1,
    }
    assert report.files_detail()[["file", "read", "accepted", "quarantined"]].values.tolist() == [
        ["items.csv", 5, 2, 3]
    ]
    assert len(report.files_detail()["sha256"].iloc[0]) == 12
    assert report.warnings == ()


def test_re_running_a_day_replaces_it(wh: Warehouse, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    first = land(landing, "catalog", "a.csv", CATALOG)
    land(landing, "catalog", "b.csv", "item_id,category,price\ni9,toys,1.0\n")
    ingest_day(wh, landing, catalog_source(DAY, None), DAY, now=NOW)
    before = _day_tables(wh)
    again = ingest_day(wh, landing, catalog_source(DAY, None), DAY, now=NOW)
    for table, frame in _day_tables(wh).items():
        pd.testing.assert_frame_equal(frame, before[table], obj=table)
    assert again.rows_read == 6

    # A file taken away: its rows leave the day (replaced, never appended).
    first.unlink()
    report = ingest_day(wh, landing, catalog_source(DAY, None), DAY, now=NOW)
    assert (report.rows_read, report.rows_accepted, report.rows_quarantined) == (1, 1, 0)
    assert rows(wh, "SELECT item_id FROM items")["item_id"].tolist() == ["i9"]
    assert rows(wh, "SELECT COUNT(*) AS n FROM quarantine")["n"].iloc[0] == 0
    assert rows(wh, "SELECT path FROM ingested_files")["path"].str.endswith("b.csv").all()


def test_an_unreadable_file_fails_the_day_and_writes_nothing(wh: Warehouse, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    land(landing, "catalog", "a.csv", "item_id,category,price\ni1,c,1.0\n")
    ingest_day(wh, landing, catalog_source(DAY, None), DAY, now=NOW)
    bad = partition_dir(landing, "catalog", DAY) / "b.csv.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")

    with pytest.raises(LandingFileError, match=r"b\.csv\.gz: gzip data is corrupt"):
        ingest_day(wh, landing, catalog_source(DAY, None), DAY, now=NOW)
    # The day as it was before the failed run.
    assert rows(wh, "SELECT item_id FROM items")["item_id"].tolist() == ["i1"]
    assert len(rows(wh, "SELECT * FROM ingested_files")) == 1


def test_users_are_pseudonymised_and_bad_lines_scrubbed(wh: Warehouse, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    land(
        landing,
        "users",
        "users.jsonl",
        '{"user_id": "alice", "region": "north", "email": "alice@example.com"}\n'
        '{"user_id": "bob", "region": "south"\n'  # malformed: stored scrubbed
        '{"region": "east"}\n',  # no user id
    )
    report = ingest_day(wh, landing, users_source(PSEUDONYMS, FieldMap.default()), DAY, now=NOW)

    assert (report.rows_read, report.rows_accepted, report.rows_quarantined) == (3, 1, 2)
    users = rows(wh, "SELECT * FROM users")
    assert users["user_id"].tolist() == [PSEUDONYMS.one("alice")]
    stored = rows(wh, "SELECT reason, payload FROM quarantine ORDER BY line_no")
    assert stored["reason"].str.split(":").str[0].tolist() == ["malformed_json", "missing_required"]
    assert "bob" not in " ".join(stored["payload"]) and "alice" not in " ".join(stored["payload"])


def _event(i: int, **change: object) -> dict:
    return {
        "event_id": f"e{i}",
        "event_type": "view",
        "event_time": f"{DAY}T10:00:{i:02d}Z",
        "user_id": "alice",
        "item_id": "i1",
        **change,
    }


def _add_kafka_batch(wh: Warehouse) -> None:
    """What kafka_events committed for the day: one accepted row and its batch log."""
    consumed = dt.datetime.combine(DAY, dt.time(11))
    with wh.begin() as conn:
        wh.insert_df(
            conn,
            "kafka_events",
            pd.DataFrame(
                {
                    "dt": [DAY],
                    "topic": "flywheel.events",
                    "kafka_partition": 0,
                    "kafka_offset": 41,
                    "event_id": "k1",
                    "event_type": "click",
                    "event_time": dt.datetime.combine(DAY, dt.time(10, 30)),
                    "user_id": PSEUDONYMS.one("carol"),
                    "item_id": "i1",
                    "consumed_at": consumed,
                }
            ),
        )
        wh.insert_df(
            conn,
            "kafka_batches",
            pd.DataFrame(
                {
                    "dt": [DAY],
                    "consumer": "flywheel",
                    "topic": "flywheel.events",
                    "kafka_partition": 0,
                    "first_offset": 40,
                    "last_offset": 41,
                    "rows_read": 2,
                    "rows_accepted": 1,
                    "rows_quarantined": 1,
                    "consumed_at": consumed,
                }
            ),
        )


def _events_spec(now: dt.datetime = NOW):  # noqa: ANN202
    return events_source(
        DAY,
        PSEUDONYMS,
        None,
        now=now,
        future_tolerance=dt.timedelta(hours=1),
        max_lateness=dt.timedelta(days=30),
    )


def test_events_join_the_topics_rows_of_the_day(wh: Warehouse, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    lines = [
        _event(1),
        _event(2, event_type="teleport"),  # not an event type
        _event(3, event_time=f"{DAY + dt.timedelta(days=3)}T00:00:00Z"),  # in the future
        _event(4, event_time=f"{DAY - dt.timedelta(days=60)}T00:00:00Z"),  # too late
    ]
    land(landing, "events", "events.jsonl", "".join(json.dumps(r) + "\n" for r in lines))
    _add_kafka_batch(wh)

    report = ingest_day(wh, landing, _events_spec(), DAY, now=NOW)

    assert report.accounting is None  # accepted_events accounts for the day
    # The file's 4 lines and the topic partition's 2 messages.
    assert (report.rows_read, report.rows_accepted, report.rows_quarantined) == (6, 2, 4)
    raw = rows(wh, "SELECT event_id, user_id, source_file, line_no FROM raw_events ORDER BY 1")
    assert raw["event_id"].tolist() == ["e1", "k1"]
    assert raw["source_file"].iloc[1] == "kafka://flywheel.events/0"
    assert raw["line_no"].tolist() == [1, 41]
    assert raw["source_file"].iloc[0].endswith("events.jsonl")
    assert raw["user_id"].iloc[0] == PSEUDONYMS.one("alice")
    reasons = set(rows(wh, "SELECT reason FROM quarantine")["reason"].str.split(":").str[0])
    assert reasons == {"invalid_event_type", "future_event", "too_old_event"}
    detail = report.files_detail()
    assert detail["file"].tolist() == ["events.jsonl", "kafka://flywheel.events/0"]
    assert detail["sha256"].iloc[1] == "offsets 40-41"
    logged = rows(wh, "SELECT fmt, rows_read FROM ingested_files ORDER BY fmt")
    assert logged.values.tolist() == [["jsonl", 4], ["kafka", 2]]


def test_a_day_without_files_is_reported_empty(wh: Warehouse, tmp_path: Path) -> None:
    report = ingest_day(wh, tmp_path / "landing", _events_spec(), DAY, now=NOW)
    assert (report.files, report.rows_read, report.quarantine_share) == (0, 0, 0.0)
    assert report.warnings == (
        f"no landing files for events on {DAY} under {tmp_path / 'landing' / 'events'}",
    )
    assert report.reasons.empty and report.files_detail().empty
