"""The day's quality rules as plain functions: the relational rules that turn raw events into
events, row accounting, the volume and freshness bounds of the raw events suite, and the
quarantine share.

The quality assets and checks (``defs/quality``) read the warehouse through these and only turn
their answers into Dagster results; the judgements are testable on frames and warehouses alone.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pandas as pd
from sqlalchemy.engine import Connection

from flywheel_assets.ingestion.accounting import event_counts, record_accounting
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.quality.settings import QualitySettings

# Reasons that are not data faults: exact redeliveries of an event already accepted.
REDELIVERY_REASONS = ("duplicate_event_id", "duplicate_event_id_other_day")


# ----- the relational rules -------------------------------------------------------------------


@dataclass(frozen=True)
class AcceptedDay:
    accounting: dict[str, int]  # read = accepted + quarantined + duplicates
    counts: dict[str, int]  # the columns of sql/quality/event_accounting.sql
    by_type: pd.DataFrame  # events of the day by type

    @property
    def quarantine_share(self) -> float:
        raw = self.counts["raw"]
        return 1 - self.counts["accepted"] / raw if raw else 0.0


def accept_events(wh: Warehouse, day: dt.date, now: dt.datetime) -> AcceptedDay:
    """Replace ``day``'s events with the raw events that pass the relational rules (not a
    redelivery of another day's event, item known to the catalog), the rest quarantined with
    the reason, and record the day's accounting: one transaction."""
    with wh.begin() as conn:
        wh.delete_partition(conn, "events", day)
        wh.delete_partition(conn, "quarantine", day, source="events", stage="quality")
        wh.run(conn, "quality/accept_events", dt=day)
        wh.run(conn, "quality/quarantine_events", dt=day, now=now)
        accounting = record_accounting(wh, conn, day, "events", now)
        counts = event_counts(wh, conn, day)
        by_type = wh.query_df(conn, load_sql("quality/events_by_type"), dt=day)
    return AcceptedDay(accounting, counts, by_type)


# ----- accounting -----------------------------------------------------------------------------


def imbalance(counts: dict[str, int], total: str, parts: tuple[str, ...]) -> str | None:
    """None when ``counts[total]`` is the sum of ``parts``; else what does not add up."""
    if counts[total] == sum(counts[p] for p in parts):
        return None
    return (
        f"{total} ({counts[total]}) != {' + '.join(parts)} "
        f"({' + '.join(str(counts[p]) for p in parts)}): rows were lost or doubled; "
        "re-materialise the day"
    )


# ----- volume and freshness -------------------------------------------------------------------


def volume_parameters(
    counts: pd.DataFrame, day: dt.date, q: QualitySettings, now: dt.datetime
) -> tuple[dict[str, object], str]:
    """The raw events suite's parameters for ``day`` and how they were found: volume bounds
    from the median of the trailing days' counts (``dt``, ``n``), judged only with enough of
    them, and the freshness bound (the day's end, or now if earlier, minus freshness_hours)."""
    day_end = dt.datetime.combine(day, dt.time()) + dt.timedelta(days=1)
    freshness_min = min(day_end, now) - dt.timedelta(hours=q.freshness_hours)
    if len(counts) < q.volume_min_reference_days:
        note = (
            f"volume not judged: {len(counts)} of the {q.volume_min_reference_days} "
            f"reference days needed in the {q.volume_reference_days} days before {day}"
        )
        return {"volume_min": 0, "volume_max": None, "freshness_min": freshness_min}, note
    median = float(counts["n"].median())
    vmin = math.floor(median * (1 - q.volume_max_drop))
    vmax = math.ceil(median * (1 + q.volume_max_rise))
    note = (
        f"median {median:.0f} rows/day over {len(counts)} days "
        f"({counts['dt'].min()}..{counts['dt'].max()}); blocking below {vmin} "
        f"(-{q.volume_max_drop:.0%}), warning above {vmax}"
    )
    return {"volume_min": vmin, "volume_max": vmax, "freshness_min": freshness_min}, note


def raw_events_parameters(
    wh: Warehouse, conn: Connection, day: dt.date, q: QualitySettings, now: dt.datetime
) -> tuple[dict[str, object], str]:
    """``volume_parameters`` over the raw event counts of the reference days before ``day``."""
    counts = wh.query_df(
        conn,
        load_sql("quality/trailing_volume"),
        start_dt=day - dt.timedelta(days=q.volume_reference_days),
        end_dt=day - dt.timedelta(days=1),
    )
    return volume_parameters(counts, day, q, now)


# ----- quarantine share -----------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantineShare:
    landed: int
    faults: int  # quarantined rows that are data faults (not redeliveries)
    share: float
    limit: float
    reasons: pd.DataFrame  # stage, reason, n, share, counts_as_fault
    sample: pd.DataFrame  # the first rows of each reason (file name, shortened payload)
    description: str

    @property
    def passed(self) -> bool:
        return self.share <= self.limit


def judge_quarantine_share(
    reasons: pd.DataFrame, sample: pd.DataFrame, landed: int, limit: float
) -> QuarantineShare:
    """The day's open quarantine (``reasons``: stage, reason, n) against ``limit`` as a share
    of the ``landed`` events; exact redeliveries are not faults."""
    is_fault = ~reasons["reason"].isin(REDELIVERY_REASONS)
    faults = reasons[is_fault]
    n_faults = int(faults["n"].sum())
    share = n_faults / landed if landed else 0.0
    listed = "; ".join(f"{r.reason} ({r.stage}): {r.n}" for r in faults.itertuples())
    return QuarantineShare(
        landed=landed,
        faults=n_faults,
        share=share,
        limit=limit,
        reasons=reasons.assign(
            share=reasons["n"] / landed if landed else 0.0, counts_as_fault=is_fault
        ),
        sample=sample.assign(
            source_file=sample["source_file"].astype(str).str.rsplit("/", n=1).str[-1],
            payload=sample["payload"].astype(str).str.slice(0, 160),
        ),
        description=(
            f"{n_faults} of {landed} events read ({share:.2%}) quarantined as faults, "
            f"within {limit:.2%}."
            if share <= limit
            else f"{n_faults} of {landed} events read ({share:.2%}) are quarantined as "
            f"faults, above the {limit:.2%} limit: {listed}. Fix the producer or the "
            "reference data (a missing catalog item), re-deliver and re-materialise the "
            "day, or fix and release rows (flywheel quarantine release, docs/quality.md); "
            "if this share is normal for the shop, raise FLYWHEEL_MAX_QUARANTINE_SHARE."
        ),
    )


def quarantine_share_of_day(wh: Warehouse, day: dt.date, limit: float) -> QuarantineShare:
    """``judge_quarantine_share`` over the day's open quarantine of events."""
    with wh.begin() as conn:
        reasons = wh.query_df(conn, load_sql("quality/quarantine_reasons"), dt=day)
        sample = wh.query_df(conn, load_sql("quality/quarantine_sample"), dt=day, per_reason=2)
        landed = int(event_counts(wh, conn, day)["landed"])
    return judge_quarantine_share(reasons, sample, landed, limit)
