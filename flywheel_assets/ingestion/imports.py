"""A shop's history in one export: `flywheel import orders FILE` (docs/orders.md).

An export holds years of order lines. It is split by the day each line was ordered into the
landing folder, one file per day (``orders/dt=D/import-<sha12>.parquet``, the export's own
records, every producer column kept), so each line is ingested into its own day: the lateness
rule never sees a two-year-old order delivered today, and re-running any day from the UI
finds the same files. The file names derive from the export's content, so importing the same
export again rewrites identical files and changes nothing; the day's ingestion drops a line
another file of the day already delivered (``duplicate_order_line``), so an overlapping newer
export does not count a sale twice.

Lines that cannot be read at all, and lines without a readable order time, go to the import
day's folder, where ingestion quarantines them with their reasons: every line is accounted for.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flywheel_assets.ingestion.contract import FieldMap, order_times
from flywheel_assets.ingestion.landing import LINE_NO, partition_dir, read_landing_file
from flywheel_assets.ingestion.triggers import SELF_INGESTED_PREFIX
from flywheel_assets.platform.files import write_atomically

# Files this module writes start with it; the landing sensor leaves them to the import, which
# ingests its days itself (one run instead of a run per day).
IMPORT_PREFIX = SELF_INGESTED_PREFIX
# The export's line number, kept with each record for tracing a quarantined line back.
EXPORT_LINE = "export_line"


class ExportError(ValueError):
    """An export that cannot be imported as it is, with what to do (nothing was written)."""


@dataclass(frozen=True)
class ImportPlan:
    """What an export holds, per day, before anything is written."""

    export: Path
    sha256: str
    fmt: str
    rows_read: int
    days: dict[dt.date, pd.DataFrame]  # the records ordered on each day
    undated: pd.DataFrame  # records without a readable order time
    unreadable: pd.DataFrame  # line_no, payload, reason: lines that are not records

    @property
    def first_day(self) -> dt.date | None:
        return min(self.days) if self.days else None

    @property
    def last_day(self) -> dt.date | None:
        return max(self.days) if self.days else None


@dataclass(frozen=True)
class ImportResult:
    plan: ImportPlan
    files: list[Path]
    day_of_rest: dt.date  # where undated and unreadable lines went
    ingest_from: dt.date
    ingest_to: dt.date


def plan_import(export: Path, field_map: FieldMap | None = None) -> ImportPlan:
    """Read an export (CSV, JSONL or Parquet, gzip allowed) and group its records by the day
    of their order time; raises LandingFileError for a file that cannot be read at all."""
    parsed = read_landing_file(export)
    records = parsed.records
    times = order_times(records, field_map)
    days = times.astype("datetime64[D]")
    dated = ~np.isnat(times)
    out = records.drop(columns=[LINE_NO]).astype(object)
    out.insert(0, EXPORT_LINE, records[LINE_NO].astype(str).to_numpy())
    by_day: dict[dt.date, pd.DataFrame] = {}
    if dated.any():
        keyed = pd.Series(days[dated])
        for day, idx in keyed.groupby(keyed).groups.items():
            rows = np.flatnonzero(dated)[np.asarray(idx)]
            by_day[pd.Timestamp(day).date()] = out.iloc[rows].reset_index(drop=True)
    return ImportPlan(
        export=Path(export),
        sha256=parsed.sha256,
        fmt=parsed.fmt,
        rows_read=parsed.rows_read,
        days=dict(sorted(by_day.items())),
        undated=out[~dated].reset_index(drop=True),
        unreadable=parsed.bad_lines,
    )


def write_import(
    plan: ImportPlan,
    landing_dir: Path,
    *,
    today: dt.date,
    first_partition: dt.date,
) -> ImportResult:
    """Write the plan's landing files: one Parquet file per day; the undated records and the
    unreadable lines in ``today``'s folder. Refuses (before writing) days the partitions do
    not reach."""
    first = plan.first_day
    if first is not None and first < first_partition:
        raise ExportError(
            f"{plan.export} holds orders from {first}, before the first daily partition "
            f"({first_partition}); set FLYWHEEL_PARTITION_START={first.isoformat()} (or earlier) "
            "and import again"
        )
    if plan.last_day is not None and plan.last_day > today:
        raise ExportError(
            f"{plan.export} holds orders dated {plan.last_day}, after today ({today}): "
            "an export of history cannot hold future orders; check the file's time zone or dates"
        )
    stem = f"{IMPORT_PREFIX}{plan.sha256[:12]}"
    files: list[Path] = []
    for day, frame in plan.days.items():
        path = partition_dir(landing_dir, "orders", day) / f"{stem}.parquet"
        write_atomically(path, _parquet_bytes(frame))
        files.append(path)
    if len(plan.undated):
        path = partition_dir(landing_dir, "orders", today) / f"{stem}-undated.parquet"
        write_atomically(path, _parquet_bytes(plan.undated))
        files.append(path)
    if len(plan.unreadable):
        # The lines as they were, so ingestion finds them unreadable for the same reason.
        suffix = "csv" if plan.fmt == "csv" else "jsonl"
        path = partition_dir(landing_dir, "orders", today) / f"{stem}-unreadable.{suffix}"
        write_atomically(path, _unreadable_bytes(plan))
        files.append(path)
    days = list(plan.days)
    if len(plan.undated) or len(plan.unreadable):
        days.append(today)
    return ImportResult(
        plan=plan,
        files=files,
        day_of_rest=today,
        ingest_from=min(days) if days else today,
        ingest_to=max(days) if days else today,
    )


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    # Strings only, as the producer sent them: the contract types them on ingestion.
    frame.astype("string").to_parquet(buf, index=False)
    return buf.getvalue()


def _unreadable_bytes(plan: ImportPlan) -> bytes:
    lines = [str(p) for p in plan.unreadable["payload"]]
    if plan.fmt == "csv":
        # A CSV line only means something under its header: the export's first line.
        gzipped = plan.export.name.lower().endswith(".gz")
        with (gzip.open if gzipped else open)(plan.export, "rb") as fh:
            head = fh.readline()
        lines.insert(0, head.decode("utf-8", errors="replace").rstrip("\r\n"))
    return ("\n".join(lines) + "\n").encode("utf-8")
