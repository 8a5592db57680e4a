"""Offline evaluations of a day's challenger and champion (offline_evaluations) and the score
samples the score-drift check reads (score_samples)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping

import pandas as pd
from sqlalchemy.engine import Connection

from flywheel_assets.platform.warehouse import Warehouse, load_sql

# The offline gate's metrics, as stored. offline_evaluations keeps its recall_at_10 column for
# the rows written before decision 78; nothing writes it now.
METRICS = ("auc", "log_loss", "ndcg_at_10", "ece")


def evaluations_for_day(conn: Connection, day: dt.date) -> pd.DataFrame:
    """The day's offline evaluations: model_version, role (challenger | champion), n_rows and
    the metrics."""
    return Warehouse.query_df(conn, load_sql("registry/evaluations_for_day"), dt=day)


def replace_evaluations(
    conn: Connection, day: dt.date, rows: Iterable[Mapping[str, object]], *, now: dt.datetime
) -> None:
    """The day's offline evaluations (one row per role), replacing earlier ones; metrics that
    are not finite are stored as NULL."""
    Warehouse.delete_partition(conn, "offline_evaluations", day)
    for r in rows:
        Warehouse.run(
            conn,
            "registry/insert_evaluation",
            dt=day,
            model_version=r["model_version"],
            role=r["role"],
            n_rows=r["n_rows"],
            **{k: finite(r[k]) for k in METRICS},
            snips_value=None,
            at=now,
        )


def replace_score_samples(
    wh: Warehouse, conn: Connection, day: dt.date, samples: Iterable[pd.DataFrame]
) -> None:
    """The day's score samples (dt, role, model_version, score), replacing earlier ones."""
    Warehouse.delete_partition(conn, "score_samples", day)
    for sample in samples:
        wh.insert_df(conn, "score_samples", sample)


def finite(x: object) -> float | None:
    """A metric as a float, or None when it is missing, NaN or infinite."""
    if x is None:
        return None
    x = float(x)  # type: ignore[arg-type]
    return x if math.isfinite(x) else None
