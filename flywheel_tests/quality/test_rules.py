"""The day's quality rules (flywheel_assets.quality.rules) without Dagster: the relational rules
on a real DuckDB warehouse, accounting, the volume and freshness bounds, the quarantine share."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from flywheel_assets.ingestion.accounting import event_counts
from flywheel_assets.ingestion.ingest import catalog_source, events_source, ingest_day
from flywheel_assets.ingestion.landing import partition_dir
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.quality.rules import (
    accept_events,
    imbalance,
    judge_quarantine_share,
    quarantine_share_of_day,
    raw_events_parameters,
    volume_parameters,
)
from flywheel_assets.quality.settings import QualitySettings
from flywheel_assets.quality.suites import validate_partition

DAY = dt.date(2026, 5, 4)
NOW = dt.datetime(2026, 5, 6)
Q = QualitySettings()


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[Warehouse]:
    w = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    w.migrate()
    yield w
    w.dispose()


def _land(landing: Path, source: str, name: str, text: str, day: dt.date = DAY) -> None:
    path = partition_dir(landing, source, day) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _events(*rows: dict) -> str:
    base = {"event_type": "view", "user_id": "alice", "item_id": "i1"}
    return "".join(json.dumps({**base, **r}) + "\n" for r in rows)


def _ingest(wh: Warehouse, landing: Path, day: dt.date = DAY) -> None:
    ingest_day(wh, landing, catalog_source(day, None), day, now=NOW)
    spec = events_source(
        day,
        Pseudonymiser("rules-test-key-0123456789"),
        None,
        now=NOW,
        future_tolerance=dt.timedelta(hours=1),
        max_lateness=None,
    )
    ingest_day(wh, landing, spec, day, now=NOW)


def test_the_relational_rules_split_raw_events_and_account_for_them(
    wh: Warehouse, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    _land(landing, "catalog", "items.csv", "item_id,category,price\ni1,c,1.0\n")
    at = f"{DAY}T10:00:00Z"
    _land(
        landing,
        "events",
        "a.jsonl",
        _events(
            {"event_id": "e1", "event_time": at},
            {"event_id": "e2", "event_time": at, "item_id": "nowhere"},  # not in the catalog
            {"event_id": "e3", "event_time": at, "event_type": "click"},
            {"event_id": "e4", "event_time": "not a time"},  # quarantined at ingestion
        ),
    )
    # An exact redelivery in another file: a relational rule catches it.
    _land(landing, "events", "b.jsonl", _events({"event_id": "e1", "event_time": at}))
    _ingest(wh, landing)

    day = accept_events(wh, DAY, NOW)

    assert day.counts == {
        "landed": 5,
        "raw": 4,
        "quarantined_ingestion": 1,
        "accepted": 2,
        "quarantined_quality": 2,
        "duplicates": 1,
    }
    assert day.accounting == {
        "rows_read": 5,
        "rows_accepted": 2,
        "rows_quarantined": 2,
        "rows_duplicate": 1,
    }
    assert day.quarantine_share == pytest.approx(0.5)  # of the raw rows
    assert dict(zip(day.by_type["event_type"], day.by_type["n"], strict=True)) == {
        "view": 1,
        "click": 1,
    }
    with wh.begin() as conn:
        reasons = wh.query_df(
            conn, "SELECT reason FROM quarantine WHERE stage = 'quality' ORDER BY reason"
        )["reason"].tolist()
        assert event_counts(wh, conn, DAY) == day.counts
    assert reasons == ["duplicate_event_id", "unknown_item"]
    # Balanced both ways, and a re-run gives the same day.
    assert imbalance(day.counts, "landed", ("raw", "quarantined_ingestion")) is None
    assert imbalance(day.counts, "raw", ("accepted", "quarantined_quality")) is None
    again = accept_events(wh, DAY, NOW)
    assert (again.counts, again.accounting) == (day.counts, day.accounting)
    pd.testing.assert_frame_equal(again.by_type, day.by_type)


def test_an_imbalance_says_what_does_not_add_up() -> None:
    counts = {"rows_read": 10, "rows_accepted": 6, "rows_quarantined": 3, "rows_duplicate": 0}
    assert imbalance(counts, "rows_read", ("rows_accepted", "rows_quarantined")) == (
        "rows_read (10) != rows_accepted + rows_quarantined (6 + 3): rows were lost or "
        "doubled; re-materialise the day"
    )


def _trailing(*ns: int) -> pd.DataFrame:
    days = [DAY - dt.timedelta(days=len(ns) - k) for k in range(len(ns))]
    return pd.DataFrame({"dt": days, "n": list(ns)})


def test_volume_is_judged_only_with_enough_reference_days() -> None:
    params, note = volume_parameters(_trailing(100, 120), DAY, Q, NOW)
    assert params["volume_min"] == 0 and params["volume_max"] is None
    assert note == (
        f"volume not judged: 2 of the 3 reference days needed in the 7 days before {DAY}"
    )


def test_volume_bounds_come_from_the_median() -> None:
    params, note = volume_parameters(_trailing(100, 120, 90, 1000), DAY, Q, NOW)
    # median 110: blocking below floor(110 * 0.5), warning above ceil(110 * 4)
    assert (params["volume_min"], params["volume_max"]) == (55, 440)
    first, last = DAY - dt.timedelta(days=4), DAY - dt.timedelta(days=1)
    assert note == (
        f"median 110 rows/day over 4 days ({first}..{last}); blocking below 55 (-50%), "
        "warning above 440"
    )


def test_freshness_counts_from_the_days_end_or_now_if_earlier() -> None:
    end = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time())
    later, _ = volume_parameters(_trailing(), DAY, Q, end + dt.timedelta(days=3))
    assert later["freshness_min"] == end - dt.timedelta(hours=6)
    mid_day = dt.datetime.combine(DAY, dt.time(15))
    during, _ = volume_parameters(_trailing(), DAY, Q, mid_day)
    assert during["freshness_min"] == dt.datetime.combine(DAY, dt.time(9))


def test_raw_events_parameters_read_the_reference_days(wh: Warehouse, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    for k, n in enumerate((3, 5, 4), start=1):
        day = DAY - dt.timedelta(days=k)
        _land(landing, "catalog", "items.csv", "item_id,category,price\ni1,c,1.0\n", day)
        rows = [{"event_id": f"{day}-{i}", "event_time": f"{day}T08:00:00Z"} for i in range(n)]
        _land(landing, "events", "a.jsonl", _events(*rows), day)
        _ingest(wh, landing, day)
    with wh.begin() as conn:
        params, note = raw_events_parameters(wh, conn, DAY, Q, NOW)
    assert (params["volume_min"], params["volume_max"]) == (2, 16)  # median 4
    assert note.startswith("median 4 rows/day over 3 days")


REASONS = pd.DataFrame(
    {
        "stage": ["quality", "ingestion", "quality"],
        "reason": ["duplicate_event_id", "invalid_event_type", "unknown_item"],
        "n": [50, 3, 2],
    }
)
SAMPLE = pd.DataFrame(
    {
        "stage": ["ingestion"],
        "reason": ["invalid_event_type"],
        "source_file": ["/landing/events/dt=2026-05-04/a.jsonl"],
        "line_no": [7],
        "payload": ["x" * 500],
    }
)


def test_redeliveries_do_not_count_against_the_quarantine_share() -> None:
    ok = judge_quarantine_share(REASONS, SAMPLE, landed=1000, limit=0.01)
    assert ok.passed and (ok.faults, ok.share) == (5, 0.005)
    assert ok.description == ("5 of 1000 events read (0.50%) quarantined as faults, within 1.00%.")
    assert ok.reasons["counts_as_fault"].tolist() == [False, True, True]
    assert ok.reasons["share"].tolist() == [0.05, 0.003, 0.002]
    assert ok.sample["source_file"].tolist() == ["a.jsonl"]
    assert ok.sample["payload"].str.len().tolist() == [160]


def test_too_many_faults_block_and_say_what_to_do() -> None:
    bad = judge_quarantine_share(REASONS, SAMPLE, landed=200, limit=0.02)
    assert not bad.passed and bad.share == 0.025
    assert bad.description.startswith(
        "5 of 200 events read (2.50%) are quarantined as faults, above the 2.00% limit: "
        "invalid_event_type (ingestion): 3; unknown_item (quality): 2. Fix the producer"
    )
    assert bad.description.endswith("raise FLYWHEEL_MAX_QUARANTINE_SHARE.")
    nothing = judge_quarantine_share(REASONS.iloc[:0], SAMPLE.iloc[:0], landed=0, limit=0.02)
    assert nothing.passed and nothing.share == 0.0


def test_the_quarantine_share_of_a_day_from_the_warehouse(wh: Warehouse, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _land(landing, "catalog", "items.csv", "item_id,category,price\ni1,c,1.0\n")
    at = f"{DAY}T10:00:00Z"
    _land(
        landing,
        "events",
        "a.jsonl",
        _events(
            {"event_id": "e1", "event_time": at},
            {"event_id": "e1", "event_time": at},
            {"event_id": "e2", "event_time": at, "item_id": "nowhere"},
            {"event_id": "e3", "event_time": at},
        ),
    )
    _ingest(wh, landing)
    accept_events(wh, DAY, NOW)

    share = quarantine_share_of_day(wh, DAY, limit=0.1)
    assert (share.landed, share.faults, share.share) == (4, 1, 0.25)
    assert not share.passed
    assert sorted(share.sample["reason"]) == ["duplicate_event_id", "unknown_item"]


def test_the_raw_events_suite_blocks_a_day_below_the_volume_bound(
    wh: Warehouse, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    for k, n in enumerate((4, 4, 4, 1)):
        day = DAY - dt.timedelta(days=3 - k)
        _land(landing, "catalog", "items.csv", "item_id,category,price\ni1,c,1.0\n", day)
        rows = [{"event_id": f"{day}-{i}", "event_time": f"{day}T20:00:00Z"} for i in range(n)]
        _land(landing, "events", "a.jsonl", _events(*rows), day)
        _ingest(wh, landing, day)

    def parameters(w: Warehouse, conn: object, day: dt.date) -> tuple[dict[str, object], str]:
        return raw_events_parameters(w, conn, day, Q, NOW)  # type: ignore[arg-type]

    low = validate_partition(wh, DAY, "raw_events", "raw_events", parameters)
    assert low.outcome.severity == "error" and low.outcome.rows == 1
    assert [o.expectation for o in low.outcome.failed_errors] == [
        "expect_table_row_count_to_be_between"
    ]
    assert low.parameters["volume_min"] == 2 and low.note.startswith("median 4 rows/day")
    normal = validate_partition(
        wh, DAY - dt.timedelta(days=1), "raw_events", "raw_events", parameters
    )
    assert normal.outcome.severity is None, normal.outcome.summary()
