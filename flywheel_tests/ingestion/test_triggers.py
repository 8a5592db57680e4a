"""What starts a day's ingestion (flywheel_assets.ingestion.triggers), without Dagster: the
landing folder's day digests and run keys, and the late-Kafka re-runs."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from flywheel_assets.ingestion.triggers import (
    DayRequest,
    landing_day_digests,
    landing_tick,
    late_kafka_requests,
)

DAY = dt.date(2026, 4, 7)


def _always(_: str) -> bool:
    return True


def _file(landing: Path, source: str, day: dt.date | str, name: str, text: str) -> Path:
    folder = landing / source / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def test_digests_cover_every_source_and_ignore_other_folders(tmp_path: Path) -> None:
    _file(tmp_path, "events", DAY, "a.jsonl", "{}\n")
    _file(tmp_path, "events", DAY, "_partial.jsonl.tmp", "being written")
    _file(tmp_path, "requests", DAY + dt.timedelta(days=1), "r.jsonl", "{}\n")
    (tmp_path / "catalog" / "2026-04-07").mkdir(parents=True)  # no dt= prefix
    (tmp_path / "users" / "dt=yesterday").mkdir(parents=True)

    digests, cursor, warnings = landing_day_digests(tmp_path, {})

    assert list(digests) == [DAY.isoformat(), (DAY + dt.timedelta(days=1)).isoformat()]
    assert all(len(d) == 16 for d in digests.values())
    assert list(cursor) == [str(tmp_path / "events" / f"dt={DAY}" / "a.jsonl")] + [
        str(tmp_path / "requests" / f"dt={DAY + dt.timedelta(days=1)}" / "r.jsonl")
    ]
    assert (
        sorted(w.split(": ", 1)[1] for w in warnings) == ["not a dt=YYYY-MM-DD folder, ignored"] * 2
    )


def test_an_unchanged_file_is_not_hashed_again(tmp_path: Path) -> None:
    path = _file(tmp_path, "events", DAY, "a.jsonl", '{"event_id": "1"}\n')
    first, cursor, _ = landing_day_digests(tmp_path, {})
    stat = path.stat()
    # Same size and mtime, other bytes: taken from the cursor, as designed (cheap ticks).
    path.write_text('{"event_id": "2"}\n')
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert landing_day_digests(tmp_path, cursor)[0] == first
    # Without the cursor the new bytes are seen.
    assert landing_day_digests(tmp_path, {})[0] != first


def test_a_day_runs_once_per_content_and_again_when_put_back(tmp_path: Path) -> None:
    path = _file(tmp_path, "events", DAY, "a.jsonl", '{"event_id": "1"}\n')
    first = landing_tick(tmp_path, None, _always)
    assert first.requests == [
        DayRequest(
            partition_key=DAY.isoformat(),
            run_key=first.requests[0].run_key,
            tags={
                "flywheel/trigger": "landing_files",
                "flywheel/landing_digest": first.requests[0].run_key.split(":")[2],
            },
        )
    ]
    assert first.requests[0].run_key.startswith(f"landing:{DAY}:") and first.warnings == []
    key = first.requests[0].run_key
    # Nothing changed: the same key (Dagster never launches a run key twice).
    assert landing_tick(tmp_path, first.cursor, _always).requests[0].run_key == key

    path.write_text('{"event_id": "2"}\n')
    os.utime(path, ns=(1, 1))
    changed = landing_tick(tmp_path, first.cursor, _always)
    path.write_text('{"event_id": "1"}\n')
    reverted = landing_tick(tmp_path, changed.cursor, _always)
    keys = [key, changed.requests[0].run_key, reverted.requests[0].run_key]
    assert len(set(keys)) == 3  # A, A', A: the third run is not the first one's key
    assert [k.rsplit(":", 1)[1] for k in keys] == ["1", "2", "3"]
    assert json.loads(reverted.cursor)["days"][DAY.isoformat()][1] == 3


def test_days_outside_the_partitions_are_warned_about_not_requested(tmp_path: Path) -> None:
    _file(tmp_path, "events", "1999-01-01", "a.jsonl", "{}\n")
    _file(tmp_path, "events", DAY, "a.jsonl", "{}\n")
    tick = landing_tick(tmp_path, None, lambda day: day >= "2000-01-01")
    assert [r.partition_key for r in tick.requests] == [DAY.isoformat()]
    assert tick.warnings == [
        "landing files for 1999-01-01 are outside the daily partitions "
        "(FLYWHEEL_PARTITION_START to FLYWHEEL_PARTITION_END, or tomorrow when that is unset): "
        "not ingested"
    ]
    # Remembered all the same, so the day is not counted as a change on every tick.
    assert "1999-01-01" in json.loads(tick.cursor)["days"]


def test_late_kafka_rows_rerun_past_days_once_per_batch() -> None:
    today = dt.date(2026, 4, 9)
    requests = late_kafka_requests(
        [(11, ["2026-04-08", "2026-04-09"]), (12, []), (13, ["2026-04-08", "1999-01-01"])],
        today,
        lambda day: day >= "2000-01-01",
    )
    assert requests == [
        DayRequest(
            "2026-04-08", "kafka-late:2026-04-08:11", {"flywheel/trigger": "kafka_late_rows"}
        ),
        DayRequest(
            "2026-04-08", "kafka-late:2026-04-08:13", {"flywheel/trigger": "kafka_late_rows"}
        ),
    ]
