"""Ingesting one source's day: its landing files (and, for events, the topic's rows of the day)
into the warehouse, pseudonymised, every row accounted for.

``ingest_day`` replaces the day in one transaction: the source's partition, its ingestion
quarantine and its ``ingested_files`` log are deleted and written again, so re-running a day
gives the same tables and a run that dies half-way leaves the previous state. Plain functions
over the warehouse: the ingestion assets call them, tests and benchmarks can too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy.engine import Connection

from flywheel_assets.ingestion.accounting import record_accounting
from flywheel_assets.ingestion.contract import (
    ORDER_COLUMNS,
    FieldMap,
    NormalisedBatch,
    normalise_events,
    normalise_items,
    normalise_orders,
    normalise_users,
    scrub_bad_lines,
)
from flywheel_assets.ingestion.landing import (
    LINE_NO,
    list_landing_files,
    read_landing_file,
    storable_text,
)
from flywheel_assets.platform.clock import day_start, utcnow
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import Warehouse, load_sql

STAGE = "ingestion"


@dataclass(frozen=True)
class FileOutcome:
    """One landing file, read and normalised (nothing written yet)."""

    path: str
    sha256: str
    fmt: str
    rows_read: int
    accepted: pd.DataFrame
    accepted_line_nos: pd.Series
    rejected: pd.DataFrame  # line_no, payload, reason


def _unchanged(df: pd.DataFrame, _: FileOutcome) -> pd.DataFrame:
    return df


@dataclass(frozen=True)
class SourceSpec:
    """How one landing source becomes rows of its table."""

    name: str  # the landing folder, and the source in quarantine and ingested_files
    table: str
    normalise: Callable[[pd.DataFrame], NormalisedBatch]
    # Columns the table has besides the contract's (from the file and the day).
    extra_columns: Callable[[pd.DataFrame, FileOutcome], pd.DataFrame] = _unchanged
    # Set, personal values are scrubbed out of unparseable lines before they are stored.
    pseudonymiser: Pseudonymiser | None = None
    field_map: FieldMap | None = None
    # Events: also the topic's rows of the day, and quarantine releases rejoin the day.
    with_kafka: bool = False
    # Rules across the day's files (the contract's run within one file).
    across_files: Callable[[list[FileOutcome]], list[FileOutcome]] | None = None


def catalog_source(day: dt.date, field_map: FieldMap | None) -> SourceSpec:
    """Catalog rows delivered on ``day``; valid from the start of that day."""
    return SourceSpec(
        name="catalog",
        table="items",
        normalise=lambda records: normalise_items(records, field_map=field_map),
        extra_columns=lambda df, _: df.assign(valid_from=day_start(day)),
    )


def users_source(pseudonymiser: Pseudonymiser, field_map: FieldMap | None) -> SourceSpec:
    return SourceSpec(
        name="users",
        table="users",
        normalise=lambda records: normalise_users(
            records, pseudonymiser=pseudonymiser, field_map=field_map
        ),
        pseudonymiser=pseudonymiser,
        field_map=field_map,
    )


def _with_file_lines(df: pd.DataFrame, o: FileOutcome) -> pd.DataFrame:
    return df.assign(
        source_file=_constant(o.path, pa.string(), len(df), df.index),
        line_no=o.accepted_line_nos.to_numpy(dtype="int64"),
    )


def _constant(value: object, typ: pa.DataType, n: int, index: pd.Index) -> pd.Series:
    """One value for every row as a typed Arrow column: a broadcast Python object would be
    converted row by row again on insert (seconds for a day of millions of events)."""
    return pd.Series(
        pd.arrays.ArrowExtensionArray(pa.repeat(pa.scalar(value, typ), n)), index=index
    )


def _timed_source(
    name: str,
    table: str,
    normaliser: Callable[..., NormalisedBatch],
    day: dt.date,
    pseudonymiser: Pseudonymiser,
    field_map: FieldMap | None,
    *,
    now: dt.datetime,
    future_tolerance: dt.timedelta,
    max_lateness: dt.timedelta | None,
    **spec: object,
) -> SourceSpec:
    """A source whose rows carry a time checked against the delivery day (events, orders)."""
    start = day_start(day)
    end = start + dt.timedelta(days=1)

    def normalise(records: pd.DataFrame) -> NormalisedBatch:
        return normaliser(
            records,
            pseudonymiser=pseudonymiser,
            partition_start=start,
            partition_end=end,
            # Replaying simulated or backfilled days: "the future" starts at the end of the
            # delivery day even when that day is ahead of the wall clock.
            now=max(now, end),
            future_tolerance=future_tolerance,
            max_lateness=max_lateness,
            field_map=field_map,
        )

    return SourceSpec(
        name=name,
        table=table,
        normalise=normalise,
        extra_columns=_with_file_lines,
        pseudonymiser=pseudonymiser,
        field_map=field_map,
        **spec,  # type: ignore[arg-type]
    )


def events_source(
    day: dt.date,
    pseudonymiser: Pseudonymiser,
    field_map: FieldMap | None,
    *,
    now: dt.datetime,
    future_tolerance: dt.timedelta,
    max_lateness: dt.timedelta | None,
) -> SourceSpec:
    """Behaviour events delivered on ``day``; ``now`` is the wall clock (naive UTC)."""
    return _timed_source(
        "events",
        "raw_events",
        normalise_events,
        day,
        pseudonymiser,
        field_map,
        now=now,
        future_tolerance=future_tolerance,
        max_lateness=max_lateness,
        with_kafka=True,
    )


def orders_source(
    day: dt.date,
    pseudonymiser: Pseudonymiser,
    field_map: FieldMap | None,
    *,
    now: dt.datetime,
    future_tolerance: dt.timedelta,
    max_lateness: dt.timedelta | None,
) -> SourceSpec:
    """Order lines delivered on ``day`` (docs/orders.md); the events' time rules apply."""
    return _timed_source(
        "orders",
        "orders",
        normalise_orders,
        day,
        pseudonymiser,
        field_map,
        now=now,
        future_tolerance=future_tolerance,
        max_lateness=max_lateness,
        across_files=drop_repeated_order_lines,
    )


def drop_repeated_order_lines(outcomes: list[FileOutcome]) -> list[FileOutcome]:
    """A line another file of the day already delivered (an export imported twice under two
    names, a daily file overlapping an import) is a ``duplicate_order_line``: the first file by
    name keeps it. The payload is the accepted row (its user id already a pseudonym)."""
    seen: set[tuple] = set()
    out: list[FileOutcome] = []
    for o in outcomes:
        keys = list(o.accepted[ORDER_COLUMNS].itertuples(index=False, name=None))
        repeated = np.array([k in seen for k in keys], dtype=bool)
        seen.update(keys)
        if not repeated.any():
            out.append(o)
            continue
        dropped = o.accepted[repeated]
        rejected = pd.DataFrame(
            {
                "line_no": o.accepted_line_nos[repeated].to_numpy(dtype="int64"),
                "payload": dropped.astype(str).to_json(orient="records", lines=True).splitlines(),
                "reason": "duplicate_order_line",
            }
        )
        out.append(
            replace(
                o,
                accepted=o.accepted[~repeated],
                accepted_line_nos=o.accepted_line_nos[~repeated],
                rejected=pd.concat([o.rejected, rejected], ignore_index=True),
            )
        )
    return out


@dataclass(frozen=True)
class SourceDayReport:
    """What ``ingest_day`` wrote for one source and day."""

    source: str
    day: dt.date
    files: int  # landing files read
    # One row per landing file and per topic partition, as logged in ingested_files.
    sources: pd.DataFrame
    # read = accepted + quarantined + duplicates, recounted from the tables; None for events,
    # which accepted_events accounts for once their day is finished.
    accounting: dict[str, int] | None
    released: int  # fixed rows released from quarantine that rejoined the day
    reasons: pd.DataFrame  # reason, n: why rows were quarantined on the way in
    warnings: tuple[str, ...] = field(default=())

    @property
    def rows_read(self) -> int:
        return int(self.sources["rows_read"].sum())

    @property
    def rows_accepted(self) -> int:
        return int(self.sources["rows_accepted"].sum())

    @property
    def rows_quarantined(self) -> int:
        return int(self.sources["rows_quarantined"].sum())

    @property
    def quarantine_share(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0

    def files_detail(self) -> pd.DataFrame:
        """Per file (by its name, SHA-256 shortened) and topic partition (whole, with its
        offsets): rows read, accepted and quarantined."""
        s = self.sources
        is_topic = s["fmt"] == "kafka"
        return pd.DataFrame(
            {
                "file": s["path"].where(
                    is_topic, s["path"].astype(str).str.rsplit("/", n=1).str[-1]
                ),
                "sha256": s["sha256"].where(is_topic, s["sha256"].astype(str).str[:12]),
                "read": s["rows_read"],
                "accepted": s["rows_accepted"],
                "quarantined": s["rows_quarantined"],
            }
        )


def read_source_files(files: list[Path], spec: SourceSpec) -> list[FileOutcome]:
    """Read and normalise every file; raises LandingFileError (nothing written) for a file
    that cannot be read at all."""
    outcomes: list[FileOutcome] = []
    for path in files:
        parsed = read_landing_file(path, typed_numbers=True)
        batch = spec.normalise(parsed.records)
        # An unparseable line is stored as text: scrub personal values out of it first.
        bad = (
            parsed.bad_lines
            if spec.pseudonymiser is None
            else scrub_bad_lines(
                parsed.bad_lines, pseudonymiser=spec.pseudonymiser, field_map=spec.field_map
            )
        )
        rejected = pd.concat(
            [
                bad[["line_no", "payload", "reason"]],
                batch.rejected[["line_no", "payload", "reason"]],
            ],
            ignore_index=True,
        )
        # normalise_* keep the records' index on accepted rows, which maps them to their lines.
        line_nos = parsed.records[LINE_NO].reindex(batch.accepted.index)
        outcomes.append(
            FileOutcome(
                path=str(path),
                sha256=parsed.sha256,
                fmt=parsed.fmt,
                rows_read=parsed.rows_read,
                accepted=batch.accepted,
                accepted_line_nos=line_nos,
                rejected=rejected,
            )
        )
    return outcomes


def ingest_day(
    wh: Warehouse,
    landing_dir: Path,
    spec: SourceSpec,
    day: dt.date,
    *,
    now: dt.datetime | None = None,
) -> SourceDayReport:
    """Replace ``day`` of ``spec``'s table, its ingestion quarantine and its ingested_files log
    with what the landing files (and the topic, for events) hold, in one transaction."""
    now = now or utcnow()
    files = list_landing_files(landing_dir, spec.name, day)
    outcomes = read_source_files(files, spec)
    if spec.across_files is not None:
        outcomes = spec.across_files(outcomes)
    with wh.begin() as conn:
        _delete_day(wh, conn, spec, day)
        _insert_accepted(wh, conn, spec, day, outcomes)
        for o in outcomes:
            _insert_quarantine(wh, conn, spec.name, day, o, now)
        log = _file_log(spec.name, day, outcomes, now)
        wh.insert_df(conn, "ingested_files", log)
        kafka = copy_kafka_rows(wh, conn, day) if spec.with_kafka else pd.DataFrame()
        # Rows fixed and released from quarantine (flywheel quarantine release) rejoin the day.
        released = wh.run(conn, "quality/apply_releases", dt=day) if spec.name == "events" else 0
        # Events are accounted for when accepted_events finishes their day.
        accounting = None if spec.with_kafka else record_accounting(wh, conn, day, spec.name, now)
    with wh.begin() as conn:
        reasons = wh.query_df(
            conn, load_sql("ingestion/quarantine_reasons"), dt=day, source=spec.name
        )
    warnings: tuple[str, ...] = ()
    if not files and kafka.empty:
        folder = Path(landing_dir) / spec.name
        warnings = (f"no landing files for {spec.name} on {day} under {folder}",)
    return SourceDayReport(
        source=spec.name,
        day=day,
        files=len(files),
        # Files and topic partitions alike, as logged in ingested_files.
        sources=pd.concat([log, kafka], ignore_index=True) if len(kafka) else log,
        accounting=accounting,
        released=released,
        reasons=reasons,
        warnings=warnings,
    )


def _delete_day(wh: Warehouse, conn: Connection, spec: SourceSpec, day: dt.date) -> None:
    wh.delete_partition(conn, spec.table, day)
    wh.delete_partition(conn, "quarantine", day, source=spec.name, stage=STAGE)
    wh.delete_partition(conn, "ingested_files", day, source=spec.name)


def _insert_accepted(
    wh: Warehouse, conn: Connection, spec: SourceSpec, day: dt.date, outcomes: list[FileOutcome]
) -> None:
    if not outcomes:
        return
    accepted = pd.concat([spec.extra_columns(o.accepted, o) for o in outcomes], ignore_index=True)
    if not accepted.empty:
        accepted.insert(0, "dt", _constant(day, pa.date32(), len(accepted), accepted.index))
        wh.insert_df(conn, spec.table, accepted)


def _insert_quarantine(
    wh: Warehouse, conn: Connection, source: str, day: dt.date, o: FileOutcome, now: dt.datetime
) -> None:
    if o.rejected.empty:
        return
    q = pd.DataFrame(
        {
            "dt": day,
            "source": source,
            "stage": STAGE,
            "source_file": o.path,
            "line_no": o.rejected["line_no"].astype("int64"),
            # storable already (the contract's promise); checked at the door too
            "reason": [storable_text(str(r)) for r in o.rejected["reason"]],
            "payload": [storable_text(str(p)) for p in o.rejected["payload"]],
            "quarantined_at": now,
        }
    )
    wh.insert_df(conn, "quarantine", q)


def _file_log(
    source: str, day: dt.date, outcomes: list[FileOutcome], now: dt.datetime
) -> pd.DataFrame:
    """The ingested_files rows of the day's landing files."""
    return pd.DataFrame(
        {
            "dt": [day] * len(outcomes),
            "source": source,
            "path": [o.path for o in outcomes],
            "sha256": [o.sha256 for o in outcomes],
            "fmt": [o.fmt for o in outcomes],
            "rows_read": [o.rows_read for o in outcomes],
            "rows_accepted": [len(o.accepted) for o in outcomes],
            "rows_quarantined": [len(o.rejected) for o in outcomes],
            "ingested_at": now,
        }
    )


def copy_kafka_rows(wh: Warehouse, conn: Connection, day: dt.date) -> pd.DataFrame:
    """Copy the day's Kafka events, up to the newest committed batch, into raw_events and log
    each topic partition as an ``ingested_files`` row (fmt ``kafka``); returns those rows."""
    watermark = wh.scalar(conn, load_sql("ingestion/kafka/day_watermark"), dt=day)
    if watermark is None:
        return pd.DataFrame()
    wh.run(conn, "ingestion/kafka/copy_to_raw_events", dt=day, watermark=watermark)
    parts = wh.query_df(conn, load_sql("ingestion/kafka/day_sources"), dt=day, watermark=watermark)
    log = pd.DataFrame(
        {
            "dt": day,
            "source": "events",
            "path": "kafka://" + parts["topic"] + "/" + parts["kafka_partition"].astype(str),
            "sha256": "offsets "
            + parts["first_offset"].astype(str)
            + "-"
            + parts["last_offset"].astype(str),
            "fmt": "kafka",
            "rows_read": parts["rows_read"].astype("int64"),
            "rows_accepted": parts["rows_accepted"].astype("int64"),
            "rows_quarantined": parts["rows_quarantined"].astype("int64"),
            "ingested_at": pd.Timestamp(watermark).to_pydatetime(),
        }
    )
    wh.insert_df(conn, "ingested_files", log)
    return log
