"""Building the feature tables: the reviewed SQL files in sql/features, one partition at a time.

Daily activity aggregates (``*_activity_daily``) read one partition of events each, so a range
of days is built in one statement; snapshots (``*_features``) sum the aggregates over windows
ending with their day (``window_params``). Every build replaces its partitions in one
transaction. The feature assets call these; so do benchmarks.
"""

from __future__ import annotations

import datetime as dt

from flywheel_assets.features.snapshots import build_sql
from flywheel_assets.platform.warehouse import Warehouse, named_params


def window_params(day: dt.date, prior_strength: float) -> dict[str, object]:
    """The bound parameters of every feature SQL file for snapshot ``day``: windows are whole
    event days ending with ``day``; ``cutoff`` (the end of ``day``) is what ages count to."""
    return {
        "dt": day,
        "cutoff": dt.datetime.combine(day, dt.time()) + dt.timedelta(days=1),
        "end_day": day + dt.timedelta(days=1),
        "start_28d": day - dt.timedelta(days=27),
        "start_7d": day - dt.timedelta(days=6),
        "start_1d": day,
        "week_ago": day - dt.timedelta(days=7),
        "prior_strength": prior_strength,
    }


def is_aggregate(table: str) -> bool:
    return table.endswith("_activity_daily")


def build_snapshot(wh: Warehouse, table: str, day: dt.date, prior_strength: float) -> int:
    """Replace ``day``'s snapshot of ``table`` (its reviewed SQL: ``snapshots.build_sql``);
    its row count."""
    sql = build_sql(table)
    with wh.begin() as conn:
        wh.delete_partition(conn, table, day)
        wh.execute(conn, sql, **named_params(sql, window_params(day, prior_strength)))
        return wh.count_partition(conn, table, day)


def build_aggregates(wh: Warehouse, table: str, days: list[dt.date]) -> dict[dt.date, int]:
    """A daily aggregate for every day of ``days`` in one statement and one transaction: a
    partition's rows depend only on its own events, so a range gives the days' values, and a
    backfill reads its events once instead of once per day. Rows per day."""
    with wh.begin() as conn:
        for day in days:
            wh.delete_partition(conn, table, day)
        wh.execute(conn, build_sql(table), start_dt=min(days), end_dt=max(days))
        return {day: wh.count_partition(conn, table, day) for day in days}
