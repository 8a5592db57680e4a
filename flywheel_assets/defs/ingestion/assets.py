"""Ingestion: a day's landing files into the warehouse, pseudonymised, every row accounted for.

Each asset replaces its partition in one transaction (DELETE + INSERT), so re-materialising a
day gives the same tables, and a run that dies half-way leaves the previous state.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import pandas as pd
from sqlalchemy.engine import Connection

from flywheel_assets.defs.common import (
    accounting_metadata,
    daily_asset,
    day_start,
    materialize_days,
    md_table,
    utcnow,
)
from flywheel_assets.defs.ingestion.kafka import kafka_events
from flywheel_assets.defs.resources import FlywheelConfig, PseudonymResource, WarehouseResource
from flywheel_assets.ingestion.accounting import record_accounting
from flywheel_assets.ingestion.contract import (
    FieldMap,
    NormalisedBatch,
    normalise_events,
    normalise_items,
    normalise_users,
    scrub_bad_lines,
)
from flywheel_assets.ingestion.landing import (
    LINE_NO,
    LandingFileError,
    list_landing_files,
    read_landing_file,
    storable_text,
)
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import Warehouse, load_sql


@dataclass
class FileOutcome:
    path: str
    sha256: str
    fmt: str
    rows_read: int
    accepted: pd.DataFrame
    accepted_line_nos: pd.Series
    rejected: pd.DataFrame  # line_no, payload, reason


def _ingest_source(
    context: dg.AssetExecutionContext,
    day: dt.date,
    *,
    source: str,
    table: str,
    warehouse: WarehouseResource,
    config: FlywheelConfig,
    normalise: Callable[[pd.DataFrame], NormalisedBatch],
    extra_columns: Callable[[pd.DataFrame, FileOutcome], pd.DataFrame],
    pseudonymiser: Pseudonymiser | None = None,
    field_map: FieldMap | None = None,
    with_kafka: bool = False,
) -> dict[str, object]:
    paths = config.paths()
    files = list_landing_files(paths.landing_dir, source, day)
    now = utcnow()
    outcomes: list[FileOutcome] = []
    for path in files:
        try:
            parsed = read_landing_file(path)
        except LandingFileError as exc:
            # Nothing of the day is written yet; retrying cannot fix a file.
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        batch = normalise(parsed.records)
        # An unparseable line is stored as text: scrub personal values out of it first.
        bad = (
            parsed.bad_lines
            if pseudonymiser is None
            else scrub_bad_lines(parsed.bad_lines, pseudonymiser=pseudonymiser, field_map=field_map)
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
                str(path),
                parsed.sha256,
                parsed.fmt,
                parsed.rows_read,
                batch.accepted,
                line_nos,
                rejected,
            )
        )

    accepted = (
        pd.concat([extra_columns(o.accepted, o) for o in outcomes], ignore_index=True)
        if outcomes
        else None
    )
    wh = warehouse.get()
    with wh.begin() as conn:
        wh.delete_partition(conn, table, day)
        wh.delete_partition(conn, "quarantine", day, source=source, stage="ingestion")
        wh.delete_partition(conn, "ingested_files", day, source=source)
        if accepted is not None and not accepted.empty:
            accepted.insert(0, "dt", day)
            wh.insert_df(conn, table, accepted)
        for o in outcomes:
            if not o.rejected.empty:
                q = pd.DataFrame(
                    {
                        "dt": day,
                        "source": source,
                        "stage": "ingestion",
                        "source_file": o.path,
                        "line_no": o.rejected["line_no"].astype("int64"),
                        # storable already (the contract's promise); checked at the door too
                        "reason": [storable_text(str(r)) for r in o.rejected["reason"]],
                        "payload": [storable_text(str(p)) for p in o.rejected["payload"]],
                        "quarantined_at": now,
                    }
                )
                wh.insert_df(conn, "quarantine", q)
        log = pd.DataFrame(
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
        wh.insert_df(conn, "ingested_files", log)
        kafka = _copy_kafka_rows(wh, conn, day, table) if with_kafka else pd.DataFrame()
        # Rows fixed and released from quarantine (flywheel quarantine release) rejoin the day.
        released = wh.run(conn, "quality/apply_releases", dt=day) if source == "events" else 0
        # Events are accounted for when accepted_events finishes their day.
        accounting = None if with_kafka else record_accounting(wh, conn, day, source, now)

    # Files and topic partitions alike, as logged in ingested_files.
    sources = pd.concat([log, kafka], ignore_index=True) if len(kafka) else log
    n_read = int(sources["rows_read"].sum())
    n_ok = int(sources["rows_accepted"].sum())
    n_bad = int(sources["rows_quarantined"].sum())
    is_topic = sources["fmt"] == "kafka"
    with wh.begin() as conn:
        reasons = wh.query_df(conn, load_sql("ingestion/quarantine_reasons"), dt=day, source=source)
    if not files and kafka.empty:
        context.log.warning(
            f"no landing files for {source} on {day} under {paths.landing_dir / source}"
        )
    return {
        **(accounting_metadata(accounting) if accounting else {}),
        "dagster/row_count": dg.MetadataValue.int(n_ok),
        "files": dg.MetadataValue.int(len(files)),
        "rows_read": dg.MetadataValue.int(n_read),
        "rows_quarantined": dg.MetadataValue.int(n_bad),
        "rows_released": dg.MetadataValue.int(released),
        "quarantine_share": dg.MetadataValue.float(n_bad / n_read if n_read else 0.0),
        "quarantine_reasons": dg.MetadataValue.md(
            md_table(reasons.rename(columns={"n": "rows"})) if len(reasons) else "_(none)_"
        ),
        "files_detail": dg.MetadataValue.md(
            md_table(
                pd.DataFrame(
                    {
                        # a file by its name; a topic partition whole, with its offsets
                        "file": sources["path"].where(
                            is_topic, sources["path"].astype(str).str.rsplit("/", n=1).str[-1]
                        ),
                        "sha256": sources["sha256"].where(
                            is_topic, sources["sha256"].astype(str).str[:12]
                        ),
                        "read": sources["rows_read"],
                        "accepted": sources["rows_accepted"],
                        "quarantined": sources["rows_quarantined"],
                    }
                )
            )
        ),
    }


def _copy_kafka_rows(wh: Warehouse, conn: Connection, day: dt.date, table: str) -> pd.DataFrame:
    """Copy the day's Kafka events, up to the newest committed batch, into ``table`` and log
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


_INGESTION = daily_asset("ingestion", {"python", "duckdb"})


@dg.asset(
    **_INGESTION,
    description="Catalog rows delivered on the day (new items and price changes), validated.",
)
def catalog_items(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    field_map = flywheel.field_maps()["catalog"]

    def build(day: dt.date) -> dict[str, object]:
        return _ingest_source(
            context,
            day,
            source="catalog",
            table="items",
            warehouse=warehouse,
            config=flywheel,
            normalise=lambda records: normalise_items(records, field_map=field_map),
            extra_columns=lambda df, o: df.assign(valid_from=day_start(day)),
        )

    return materialize_days(context, build)


@dg.asset(
    **_INGESTION,
    description="Users delivered on the day; user ids pseudonymised, e-mail and IP never stored.",
)
def users(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    flywheel: FlywheelConfig,
    pseudonyms: PseudonymResource,
) -> dg.MaterializeResult:
    pseudonymiser = pseudonyms.get()
    field_map = flywheel.field_maps()["users"]

    def build(day: dt.date) -> dict[str, object]:
        return _ingest_source(
            context,
            day,
            source="users",
            table="users",
            warehouse=warehouse,
            config=flywheel,
            normalise=lambda records: normalise_users(
                records, pseudonymiser=pseudonymiser, field_map=field_map
            ),
            extra_columns=lambda df, o: df,
            pseudonymiser=pseudonymiser,
            field_map=field_map,
        )

    return materialize_days(context, build)


@dg.asset(
    **_INGESTION,
    deps=[kafka_events],
    description=(
        "Behaviour events from the day's landing files and the topic's rows of the day, typed by the event contract "
        "(docs/events.md) and pseudonymised; rows breaking the contract go to quarantine."
    ),
)
def raw_events(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    flywheel: FlywheelConfig,
    pseudonyms: PseudonymResource,
) -> dg.MaterializeResult:
    pseudonymiser = pseudonyms.get()
    field_map = flywheel.field_maps()["events"]
    max_lateness = flywheel.max_lateness()

    def build(day: dt.date) -> dict[str, object]:
        start = day_start(day)
        end = start + dt.timedelta(days=1)
        now = utcnow()

        def normalise(records: pd.DataFrame) -> NormalisedBatch:
            return normalise_events(
                records,
                pseudonymiser=pseudonymiser,
                partition_start=start,
                partition_end=end,
                # Replaying simulated or backfilled days: "the future" starts at the end of
                # the delivery day even when that day is ahead of the wall clock.
                now=max(now, end),
                future_tolerance=flywheel.future_tolerance(),
                max_lateness=max_lateness,
                field_map=field_map,
            )

        def extra(df: pd.DataFrame, o: FileOutcome) -> pd.DataFrame:
            return df.assign(
                source_file=o.path, line_no=o.accepted_line_nos.to_numpy(dtype="int64")
            )

        return _ingest_source(
            context,
            day,
            source="events",
            table="raw_events",
            warehouse=warehouse,
            config=flywheel,
            normalise=normalise,
            extra_columns=extra,
            pseudonymiser=pseudonymiser,
            field_map=field_map,
            with_kafka=True,
        )

    return materialize_days(context, build)
