"""What starts a day's ingestion by itself, as plain functions: new or changed landing files, and
Kafka rows that arrived for a day before today after its ingestion ran.

They only look at file names, sizes and contents' hashes, and at the days a Kafka ingest
reported; they never read Kafka or hold the warehouse (docs/decisions.md, "Ingestion
automation"). The sensors in ``defs/ingestion/sensors.py`` turn their requests into runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from flywheel_assets.ingestion.landing import file_sha256, list_landing_files

LANDING_SOURCES = ("events", "catalog", "users", "orders", "requests")
# `flywheel import orders` writes these and ingests their days itself, in one run: a run per
# day of a two-year export from the sensor would only repeat that work.
SELF_INGESTED_PREFIX = "import-"


@dataclass(frozen=True)
class DayRequest:
    """A request to ingest one day (a Dagster run request, without Dagster)."""

    partition_key: str
    run_key: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LandingTick:
    requests: list[DayRequest]
    cursor: str  # the next tick's cursor (JSON)
    warnings: list[str]


def _day_folder(folder: Path) -> dt.date | None:
    """The day of a ``dt=YYYY-MM-DD`` folder, or None for any other name."""
    if not folder.name.startswith("dt="):
        return None
    try:
        return dt.date.fromisoformat(folder.name.removeprefix("dt="))
    except ValueError:
        return None


def landing_day_digests(
    landing_dir: Path, cursor: dict[str, list]
) -> tuple[dict[str, str], dict[str, list], list[str]]:
    """Per day with landing files, a digest of (source, file name, SHA-256) of all its files;
    the new cursor (path -> [size, mtime_ns, sha256], so unchanged files are not re-hashed);
    and warnings for folders that are not ``dt=YYYY-MM-DD``."""
    entries: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    new_cursor: dict[str, list] = {}
    warnings: list[str] = []
    for source in LANDING_SOURCES:
        root = landing_dir / source
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if not folder.is_dir():
                continue
            day = _day_folder(folder)
            if day is None:
                warnings.append(f"{folder}: not a dt=YYYY-MM-DD folder, ignored")
                continue
            for path in list_landing_files(landing_dir, source, day):
                if path.name.startswith(SELF_INGESTED_PREFIX):
                    continue
                entry = _file_entry(path, cursor.get(str(path)))
                if entry is None:
                    continue  # moved away while we looked
                new_cursor[str(path)] = entry
                entries[day.isoformat()].append((source, path.name, entry[2]))
    digests = {
        day: hashlib.sha256(json.dumps(sorted(files)).encode()).hexdigest()[:16]
        for day, files in entries.items()
    }
    return dict(sorted(digests.items())), new_cursor, warnings


def _file_entry(path: Path, previous: list | None) -> list | None:
    """[size, mtime_ns, sha256] of a landing file, re-hashed only when its size or mtime
    moved; None when it is gone."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if previous and previous[:2] == [st.st_size, st.st_mtime_ns]:
        return [st.st_size, st.st_mtime_ns, previous[2]]
    return [st.st_size, st.st_mtime_ns, file_sha256(path)]


def landing_tick(
    landing_dir: Path, cursor: str | None, has_partition: Callable[[str], bool]
) -> LandingTick:
    """One look at the landing folder: a request per day whose files exist, keyed by their
    contents so the same files never run twice; days outside the partitions
    (``has_partition``) are warned about, not requested."""
    state = json.loads(cursor) if cursor else {}
    files, seen = state.get("files", {}), state.get("days", {})
    digests, new_files, warnings = landing_day_digests(landing_dir, files)
    requests: list[DayRequest] = []
    days: dict[str, list] = {}
    for day, digest in digests.items():
        # The run key counts the day's changes, so files put back as they were (A, A', A)
        # run again instead of matching the first run's key while the warehouse holds A'.
        last_digest, changes = seen.get(day, [None, 0])
        if digest != last_digest:
            changes += 1
        days[day] = [digest, changes]
        if not has_partition(day):
            warnings.append(
                f"landing files for {day} are outside the daily partitions (FLYWHEEL_PARTITION_START "
                "to FLYWHEEL_PARTITION_END, or tomorrow when that is unset): not ingested"
            )
            continue
        requests.append(
            DayRequest(
                partition_key=day,
                run_key=f"landing:{day}:{digest}:{changes}",
                tags={"flywheel/trigger": "landing_files", "flywheel/landing_digest": digest},
            )
        )
    return LandingTick(requests, json.dumps({"files": new_files, "days": days}), warnings)


def late_kafka_requests(
    observations: Iterable[tuple[int, list[str]]],
    today: dt.date,
    has_partition: Callable[[str], bool],
) -> list[DayRequest]:
    """Re-run requests for the days before ``today`` that a Kafka batch wrote rows to; one
    per (batch observation, day). ``observations`` are (storage id, ISO days) pairs."""
    return [
        DayRequest(
            partition_key=day,
            run_key=f"kafka-late:{day}:{storage_id}",
            tags={"flywheel/trigger": "kafka_late_rows"},
        )
        for storage_id, days in observations
        for day in days
        if day < today.isoformat() and has_partition(day)
    ]
