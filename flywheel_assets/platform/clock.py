"""Time as the warehouse stores it: naive UTC."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """Naive UTC, as the warehouse stores timestamps."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())
