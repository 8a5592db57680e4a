"""Hostile landing files through the real ingestion assets and checks: every row accounted for,
the accepted table exactly the valid unique rows, re-runs idempotent, unreadable files loud."""

import datetime as dt
import gzip
import json
import os
import random
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel_assets.defs.ingestion.assets import catalog_items, raw_events, users
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.quality.checks import QUALITY_CHECKS
from flywheel_assets.defs.resources import resources
from flywheel_assets.platform.warehouse import Warehouse

KEY = "hostile-test-key-0123456789"
DAY = dt.date(2026, 5, 11)
RAW_USER = "customer-4711@example.com"
ASSETS = [catalog_items, users, raw_events, accepted_events]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    monkeypatch.setenv("FLYWHEEL_PSEUDONYM_KEY", KEY)
    for var in (
        "FLYWHEEL_WAREHOUSE_URL",
        "FLYWHEEL_LANDING_DIR",
        "FLYWHEEL_FIELD_MAP",
        "FLYWHEEL_KAFKA_BOOTSTRAP",
        "FLYWHEEL_MAX_EVENT_LATENESS_DAYS",
    ):
        monkeypatch.delenv(var, raising=False)
    catalog = home / "landing" / "catalog" / f"dt={DAY}"
    catalog.mkdir(parents=True)
    (catalog / "items.jsonl").write_text(
        "\n".join(
            json.dumps({"item_id": f"i{k}", "category": "c", "price": 9.5}) for k in range(50)
        )
    )
    (home / "landing" / "events" / f"dt={DAY}").mkdir(parents=True)
    return home


def _folder(home: Path) -> Path:
    return home / "landing" / "events" / f"dt={DAY}"


def _valid(i: int) -> dict:
    return {
        "event_id": f"ok-{i}",
        # No purchases: these users have no earlier click, which the funnel check would flag.
        "event_type": random.Random(i).choice(["impression", "view", "click", "add_to_cart"]),
        "event_time": f"{DAY}T{i % 24:02d}:{i % 60:02d}:00Z",
        "user_id": RAW_USER if i % 7 == 0 else f"user-{i % 97}",
        "item_id": f"i{i % 50}",
        "position": str(i % 10),
        "propensity": "0.2",
        "price": "9.5",
    }


def _materialize(instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ASSETS, *QUALITY_CHECKS],
        partition_key=DAY.isoformat(),
        resources=resources(),
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _tables(home: Path) -> dict[str, pd.DataFrame]:
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    with wh.begin() as conn:
        out = {
            t: wh.query_df(conn, f"SELECT * FROM {t}")  # noqa: S608
            for t in (
                "raw_events",
                "events",
                "quarantine",
                "ingested_files",
                "ingestion_accounting",
            )
        }
    wh.dispose()
    return out


def _write_hostile_day(home: Path) -> set[str]:
    """About 5% hostile rows over JSONL, CSV and Parquet; returns the ids that must be accepted."""
    folder = _folder(home)
    expected: set[str] = set()
    lines: list[bytes] = []
    for i in range(1900):
        row = _valid(i)
        lines.append(json.dumps(row).encode())
        expected.add(row["event_id"])
    bad = [
        b'{"event_id": "t-1", "event_type": "view", "user_id": "' + RAW_USER.encode(),  # truncated
        b'{"event_id": "u-1", "user_id": "\xff\xfe\xfd", "item_id": "i1"}',  # invalid UTF-8
        b'"just a string"',
        json.dumps({**_valid(0), "event_id": "w-1", "position": "top"}).encode(),  # wrong type
        json.dumps({**_valid(0), "event_id": "w-2", "propensity": 7}).encode(),
        json.dumps({**_valid(0), "event_id": "m-1", "user_id": None}).encode(),  # missing
        json.dumps(
            {k: v for k, v in _valid(0).items() if k != "item_id"} | {"event_id": "m-2"}
        ).encode(),
        json.dumps({**_valid(0), "event_id": "x-1", "event_type": "teleport"}).encode(),
        json.dumps({**_valid(0), "event_id": "p-1", "price": -1}).encode(),
        json.dumps({**_valid(0), "event_id": "p-2", "price": "1e400"}).encode(),
        json.dumps({**_valid(0), "event_id": "f-1", "event_time": "2030-01-01T00:00:00Z"}).encode(),
        json.dumps({**_valid(0), "event_id": "o-1", "event_time": "2025-01-01T00:00:00Z"}).encode(),
        json.dumps({**_valid(0), "event_id": "n-1", "item_id": "not-in-catalog"}).encode(),
        json.dumps(_valid(5)).encode(),  # duplicate within the file
        json.dumps({**_valid(0), "event_id": "h-1", "session_id": "A" * 2_000_000}).encode(),
    ]
    # Hostile-looking text in a valid row is data, never SQL.
    sql = {**_valid(3000), "event_id": "s-1", "session_id": "'); DROP TABLE events; --"}
    script = {**_valid(3001), "event_id": "s-2", "request_id": "<script>alert(1)</script>"}
    late = {
        **_valid(3002),
        "event_id": "l-1",
        "event_time": f"{DAY - dt.timedelta(days=3)}T08:00:00Z",
    }
    for row in (sql, script, late):
        lines.append(json.dumps(row).encode())
        expected.add(row["event_id"])
    rng = random.Random(1)
    for b in bad:
        lines.insert(rng.randrange(len(lines)), b)
    (folder / "part-1.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))

    # CSV: one row with an extra field, one with a missing field, the rest fine.
    csv_rows = [_valid(i) | {"event_id": f"csv-{i}"} for i in range(40)]
    frame = pd.DataFrame(csv_rows)
    text = frame.to_csv(index=False).splitlines()
    text[5] = text[5] + ",surplus"
    text[9] = ",".join(text[9].split(",")[:-1])
    (folder / "part-2.csv").write_text("\n".join(text) + "\n")
    expected |= {f"csv-{i}" for i in range(40)} - {"csv-4", "csv-8"}  # line 1 is the header

    # Parquet of another schema (integer ids, a float time, no event_type column): every row
    # is quarantined for its missing field, the file is not lost.
    pq.write_table(
        pa.table({"event_id": [1, 2], "event_time": [1.5, 2.5], "item_id": [1, 2]}),
        folder / "part-3.parquet",
    )
    (folder / "part-4.jsonl").write_text("")  # an empty file
    return expected


def test_hostile_landing_files_every_row_accounted_and_only_valid_unique_rows_accepted(home):
    expected = _write_hostile_day(home)
    result = _materialize()
    assert result.success
    checks = result.get_asset_check_evaluations()
    # Warnings (e.g. impressions without request_id in a hostile feed) are reported, not blocking.
    errors = [c for c in checks if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR]
    assert checks and not errors, [c.check_name for c in errors]

    t = _tables(home)
    assert set(t["events"]["event_id"]) == expected
    assert len(t["events"]) == len(expected)
    files = t["ingested_files"][t["ingested_files"]["source"] == "events"]
    read = int(files["rows_read"].sum())
    q = t["quarantine"][t["quarantine"]["source"] == "events"]
    assert read == len(t["events"]) + len(q)
    assert (q["reason"].str.len() > 0).all() and q["source_file"].notna().all()
    reasons = set(q["reason"].str.split(":").str[0])
    assert {
        "malformed_json",
        "invalid_utf8",
        "not_an_object",
        "invalid_position",
        "invalid_propensity",
        "missing_required",
        "invalid_event_type",
        "invalid_price",
        "future_event",
        "too_old_event",
        "unknown_item",
        "duplicate_event_id",
        "wrong_field_count",
        "field_too_long",
    } <= reasons
    book = t["ingestion_accounting"].set_index("source").loc["events"]
    assert book["rows_read"] == read
    assert (
        book["rows_read"]
        == book["rows_accepted"] + book["rows_quarantined"] + book["rows_duplicate"]
    )
    # A 2 MB id is not data: quarantined, and its stored payload is capped.
    huge = q[q["reason"] == "field_too_long:session_id"]
    assert len(huge) == 1 and len(huge["payload"].iloc[0]) <= 10_000
    # No raw personal id anywhere: rows, quarantined payloads, nor the DuckDB file's bytes.
    dump = "".join(df.astype(str).to_csv() for df in t.values())
    assert RAW_USER not in dump and "customer-4711" not in dump
    raw = (home / "warehouse.duckdb").read_bytes()
    assert RAW_USER.encode() not in raw and b"customer-4711" not in raw


def test_ingesting_the_same_files_twice_changes_nothing(home):
    _write_hostile_day(home)
    instance = dg.DagsterInstance.ephemeral()
    assert _materialize(instance).success
    first = {k: len(v) for k, v in _tables(home).items()}
    assert _materialize(instance).success
    # The same files delivered again under new names on the same day: duplicates, not rows.
    folder = _folder(home)
    (folder / "redelivered.jsonl.gz").write_bytes((folder / "part-1.jsonl.gz").read_bytes())
    assert _materialize(instance).success
    again = _tables(home)
    assert len(again["events"]) == first["events"]
    book = again["ingestion_accounting"].set_index("source").loc["events"]
    assert (
        book["rows_read"]
        == book["rows_accepted"] + book["rows_quarantined"] + book["rows_duplicate"]
    )
    (folder / "redelivered.jsonl.gz").unlink()
    assert _materialize(instance).success
    assert {k: len(v) for k, v in _tables(home).items()} == first


def test_an_unreadable_file_fails_loudly_and_leaves_the_day_as_it_was(home):
    folder = _folder(home)
    (folder / "good.jsonl").write_text("\n".join(json.dumps(_valid(i)) for i in range(30)))
    instance = dg.DagsterInstance.ephemeral()
    assert _materialize(instance).success
    before = {k: len(v) for k, v in _tables(home).items()}

    (folder / "more.jsonl").write_text("\n".join(json.dumps(_valid(i + 100)) for i in range(30)))
    (folder / "broken.jsonl.gz").write_bytes(gzip.compress(b'{"a": 1}\n' * 100)[:-20])
    result = _materialize(instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.to_string()
    assert "broken.jsonl.gz" in message and "re-run the partition" in message
    # Nothing of the day was half-written: not even the good new file's rows.
    assert {k: len(v) for k, v in _tables(home).items()} == before

    (folder / "broken.jsonl.gz").unlink()
    assert _materialize(instance).success
    assert len(_tables(home)["events"]) == 60


def test_missing_pseudonym_key_fails_before_anything_is_read(home, monkeypatch):
    monkeypatch.delenv("FLYWHEEL_PSEUDONYM_KEY")
    (_folder(home) / "good.jsonl").write_text(json.dumps(_valid(1)))
    with pytest.raises(Exception, match="FLYWHEEL_PSEUDONYM_KEY"):
        dg.materialize([raw_events], partition_key=DAY.isoformat(), resources=resources())
    assert not (home / "warehouse.duckdb").exists()


def test_a_file_name_that_is_not_utf8_fails_at_once_naming_it_and_writes_nothing(home):
    """The documented failure of an unusable file (docs/events.md): the name is shown with its
    non-UTF-8 byte escaped, says what to do, is not retried, and the day is left as it was."""
    folder = _folder(home)
    (folder / "good.jsonl").write_text("\n".join(json.dumps(_valid(i)) for i in range(30)))
    instance = dg.DagsterInstance.ephemeral()
    assert _materialize(instance).success
    before = {k: len(v) for k, v in _tables(home).items()}

    latin1 = folder / os.fsdecode(b"caf\xe9.jsonl")
    latin1.write_text("\n".join(json.dumps(_valid(i + 100)) for i in range(30)))
    result = _materialize(instance)
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "raw_events"
    message = failure.step_failure_data.error.to_string()
    assert "caf\\xe9.jsonl" in message and "not UTF-8" in message and "rename" in message
    assert {k: len(v) for k, v in _tables(home).items()} == before

    latin1.rename(folder / "café.jsonl")
    assert _materialize(instance).success
    assert len(_tables(home)["events"]) == 60


@pytest.fixture(params=["duckdb", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'w.duckdb'}"
    return request.getfixturevalue("pg_database")


def test_kafka_messages_with_nul_lone_surrogates_and_internal_names(broker, warehouse_url):
    """The topic takes the same contract as files on both backends: NUL and lone surrogates
    are quarantined with their reason (nothing stored holds a NUL), a field named ``_line_no``
    is kept, and the batch commits instead of failing on PostgreSQL."""
    from confluent_kafka import Producer

    from flywheel_assets.ingestion.kafka import KafkaSettings, ingest_topic
    from flywheel_assets.platform.dev_broker import create_topic
    from flywheel_assets.platform.pseudonym import Pseudonymiser

    def event(i: int, **fields: object) -> bytes:
        return json.dumps(_valid(i) | fields).encode()

    cases: list[tuple[bytes, str | None]] = [
        (event(1), None),
        (event(2, session_id="a\x00'; DROP TABLE events; --"), "nul_in_text:session_id"),
        (event(3, event_type="vi\x00ew"), "nul_in_text:event_type"),
        (event(4, model_version="\x00"), "nul_in_text:model_version"),
        (b'{"event_id": "raw-nul", "session_id": "a\x00b"}', "malformed_json"),
        (event(6, session_id="a\ud800"), "invalid_text:session_id"),
        (json.dumps(_valid(7) | {"session_id": "\udfff"}, indent=1).encode(), "invalid_text"),
        (event(8, _line_no="mine"), None),
        (event(9, event_type="teleport", _line_no="kept"), "invalid_event_type:teleport"),
        (event(10, **{"\x00line_no": "escaped"}), None),
    ]
    topic = "text-rules-" + ("pg" if warehouse_url.startswith("postgresql") else "duckdb")
    create_topic(broker.bootstrap, topic, 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    stamp = int(dt.datetime(2026, 5, 11, 12, tzinfo=dt.UTC).timestamp() * 1000)
    for value, _ in cases:
        producer.produce(topic, value=value, timestamp=stamp)
    assert producer.flush(30) == 0

    wh = Warehouse(warehouse_url)
    wh.migrate()
    report = ingest_topic(
        KafkaSettings(broker.bootstrap, topic),
        wh,
        Pseudonymiser(KEY),
        now=lambda: dt.datetime(2026, 5, 12, 1),
    )
    assert report.messages == len(cases)
    with wh.begin() as conn:
        accepted = wh.query_df(conn, "SELECT * FROM kafka_events ORDER BY kafka_offset")
        quarantined = wh.query_df(conn, "SELECT * FROM quarantine ORDER BY line_no")
    wh.dispose()
    assert accepted["kafka_offset"].tolist() == [i for i, (_, r) in enumerate(cases) if r is None]
    assert quarantined["line_no"].tolist() == [i for i, (_, r) in enumerate(cases) if r]
    for offset, reason in zip(quarantined["line_no"], quarantined["reason"], strict=True):
        assert reason.startswith(cases[offset][1]), (offset, reason)
    everything = accepted.astype(str).to_csv() + quarantined.astype(str).to_csv()
    assert "\x00" not in everything
    payloads = dict(zip(quarantined["line_no"], quarantined["payload"], strict=True))
    assert json.loads(payloads[1])["session_id"] == "a\x00'; DROP TABLE events; --"
    assert payloads[4] == '{"event_id": "raw-nul", "session_id": "a\\u0000b"}'
    assert json.loads(payloads[8])["_line_no"] == "kept"


def test_rows_quarantined_for_their_text_can_be_exported_fixed_and_released(home, tmp_path):
    from flywheel_assets.quality.quarantine import ReleaseError, export_rows, release

    lines = [
        json.dumps(_valid(1)),
        json.dumps(_valid(2) | {"session_id": "a\ud800"}),  # ASCII escapes: invalid_text
        json.dumps(_valid(3) | {"session_id": "a\x00b"}),  # nul_in_text
    ]
    (_folder(home) / "text.jsonl").write_text("\n".join(lines) + "\n")
    ingest = [catalog_items, raw_events]  # the quality gates would judge one row too few
    assert dg.materialize(ingest, partition_key=DAY.isoformat(), resources=resources()).success
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    out = tmp_path / "fix.jsonl"
    assert export_rows(wh, DAY, out) == 2
    fixes = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert sorted(f["_reason"] for f in fixes) == [
        "invalid_text:session_id",
        "nul_in_text:session_id",
    ]
    assert sorted(f["session_id"] for f in fixes) == ["a\x00b", "a\ud800"]
    # Released unchanged: still invalid, refused with the reasons.
    with pytest.raises(ReleaseError, match="invalid_text:session_id"):
        release(wh, DAY, out, key=KEY, released_by="me", why="fix", now=dt.datetime(2026, 5, 12))
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text("".join(json.dumps(f | {"session_id": "s"}) + "\n" for f in fixes), "utf-8")
    with pytest.raises(ReleaseError, match="NUL"):
        release(
            wh, DAY, fixed, key=KEY, released_by="me", why="x\x00", now=dt.datetime(2026, 5, 12)
        )
    done = release(
        wh, DAY, fixed, key=KEY, released_by="me", why="fix", now=dt.datetime(2026, 5, 12)
    )
    assert done.rows == 2
    wh.dispose()
