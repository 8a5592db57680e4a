"""Shared pieces of the asset layer: partitions, the warehouse pool, partition bounds."""

import datetime as dt

import dagster as dg
import pandas as pd

from ..config import partition_start

daily = dg.DailyPartitionsDefinition(start_date=partition_start(), end_offset=1)

# DuckDB allows one writing process per file: every warehouse-touching step takes this pool,
# whose limit dagster.yaml sets to 1.
WAREHOUSE_POOL = "flywheel_warehouse"


def partition_day(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def utcnow() -> dt.datetime:
    """Naive UTC, as the warehouse stores timestamps."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def md_table(df: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """A small DataFrame as a markdown table for the UI (no tabulate dependency)."""
    if df.empty:
        return "_(no rows)_"
    cols = [str(c) for c in df.columns]

    def fmt(v: object) -> str:
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
