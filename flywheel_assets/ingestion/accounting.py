"""Row accounting per source and day: read = accepted + quarantined + duplicates.

The counts come from the tables themselves (files' and batches' read counts against the rows
present), so a check recounting them proves nothing was lost or counted twice.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy.engine import Connection

from flywheel_assets.platform.warehouse import Warehouse, load_sql

SOURCES = ("events", "catalog", "users", "orders")
# The table each other source's accepted rows go to (sql/ingestion/reference_accounting).
ACCEPTED_TABLE = {"catalog": "items", "users": "users", "orders": "orders"}
COLUMNS = ("rows_read", "rows_accepted", "rows_quarantined", "rows_duplicate")
# What reports call them (the demo's table, `flywheel status`, asset metadata, docs).
COUNT_NAMES = ("read", "accepted", "quarantined", "duplicates")


def event_counts(wh: Warehouse, conn: Connection, day: dt.date) -> dict[str, int]:
    """Where every event row of the day went: the columns of sql/quality/event_accounting.sql
    (landed, raw, quarantined_ingestion, accepted, quarantined_quality, duplicates)."""
    row = wh.query_df(conn, load_sql("ingestion/event_accounting"), dt=day).iloc[0]
    return {k: int(v) for k, v in row.items()}


def source_accounting(wh: Warehouse, conn: Connection, day: dt.date, source: str) -> dict[str, int]:
    """The day's counts for ``source`` (one of SOURCES), recounted from the tables."""
    if source == "events":
        c = event_counts(wh, conn, day)
        quarantined = int(c["quarantined_ingestion"]) + int(c["quarantined_quality"])
        return {
            "rows_read": int(c["landed"]),
            "rows_accepted": int(c["accepted"]),
            "rows_quarantined": quarantined - int(c["duplicates"]),
            "rows_duplicate": int(c["duplicates"]),
        }
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; use one of {SOURCES}")
    sql = load_sql("ingestion/reference_accounting", accepted=ACCEPTED_TABLE[source])
    row = wh.query_df(conn, sql, dt=day, source=source).iloc[0]
    return {k: int(row[k]) for k in COLUMNS}


def record_accounting(
    wh: Warehouse, conn: Connection, day: dt.date, source: str, now: dt.datetime
) -> dict[str, int]:
    """Recount and store the day's row of ``ingestion_accounting`` (replacing an older one)."""
    counts = source_accounting(wh, conn, day, source)
    wh.delete_partition(conn, "ingestion_accounting", day, source=source)
    wh.run(conn, "ingestion/insert_accounting", dt=day, source=source, now=now, **counts)
    return counts


def day_counts(
    wh: Warehouse, conn: Connection, from_dt: dt.date, to_dt: dt.date
) -> dict[dt.date, dict[str, int | bool | None]]:
    """Event rows of each day in [from_dt, to_dt] under the names every report uses: read,
    accepted, quarantined, duplicates (read = accepted + quarantined + duplicates). A day read
    but not yet through the quality stage has None for the other three; ``accounted`` is False
    for it, and for a day ingested again since its accounting (the counts are older)."""
    df = wh.query_df(conn, load_sql("ingestion/day_counts"), from_dt=from_dt, to_dt=to_dt)

    def count(v: object) -> int | None:
        return None if pd.isna(v) else int(v)  # type: ignore[call-overload]

    out: dict[dt.date, dict[str, int | bool | None]] = {}
    for _, r in df.iterrows():
        counts = {k: count(r[k]) for k in COUNT_NAMES}
        landed = count(r["landed"])
        accounted = counts["accepted"] is not None and (landed is None or landed == counts["read"])
        out[pd.Timestamp(r["dt"]).date()] = {**counts, "accounted": accounted}
    return out
