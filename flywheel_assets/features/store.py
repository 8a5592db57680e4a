"""Feature vectors for training and for serving, from one query (features.vector.vector_sql)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from flywheel_assets.features.vector import vector_sql
from flywheel_assets.platform.warehouse import Warehouse, load_sql


def training_frame(
    wh: Warehouse,
    start: dt.date,
    end: dt.date,
    realtime: bool = True,
    since: dt.datetime | None = None,
) -> pd.DataFrame:
    """Labelled examples of days [start, end], each joined to its own feature snapshot (and,
    with ``realtime``, to its session's last hour); with ``since``, only those whose
    ``event_time`` is at or after it (a holdout), filtered in the warehouse."""
    # The warehouse sorts (in parallel, by column), so pandas' sort below finds the rows in
    # order and moves none: a random gather of a day's 81 columns cost seconds. pandas' sort
    # stays the definition of the order (a PostgreSQL collation may order ids differently).
    query = vector_sql(load_sql("training/training_candidates"), realtime)
    where = "" if since is None else "WHERE event_time >= :since\n"
    ordered = f"SELECT * FROM (\n{query}\n) v\n{where}ORDER BY {', '.join(_ORDER)}"  # noqa: S608
    params: dict[str, object] = {"start_dt": start, "end_dt": end}
    if since is not None:
        params["since"] = since
    with wh.begin() as conn:
        df = wh.query_df(conn, ordered, **params)
    order = df[list(_ORDER)].sort_values(list(_ORDER), kind="stable").index.to_numpy()
    if np.array_equal(order, np.arange(len(df))):
        return df
    return df.take(order).reset_index(drop=True)


# The training rows' order: by time, a request's rows together in slot order.
_ORDER = ("event_time", "request_id", "position")


def replay_frame(
    wh: Warehouse, day: dt.date, n_requests: int, realtime: bool = True
) -> pd.DataFrame:
    """Feature vectors of ``n_requests`` of the day's served requests (not the whole day)."""
    with wh.begin() as conn:
        return wh.query_df(
            conn,
            vector_sql(load_sql("features/replay_candidates"), realtime),
            dt=day,
            n_requests=n_requests,
        )


def latest_snapshot(wh: Warehouse, day: dt.date) -> dt.date | None:
    with wh.begin() as conn:
        value = wh.scalar(conn, load_sql("features/latest_snapshot"), day=day)
    if value is None:
        return None
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def serving_frame(
    wh: Warehouse, candidates: pd.DataFrame, feature_dt: dt.date | None, realtime: bool = True
) -> pd.DataFrame:
    """Feature vectors for candidate rows (request_id, user_id, item_id, position, event_time,
    and session_id if known), in the candidates' row order."""
    cands = candidates[["request_id", "user_id", "item_id", "position", "event_time"]].copy()
    cands["session_id"] = (
        candidates["session_id"].astype(object) if "session_id" in candidates else None
    )
    cands["feature_dt"] = pd.Timestamp(feature_dt).date() if feature_dt is not None else None
    cands["_row"] = range(len(cands))
    with wh.begin() as conn:
        wh.register_temp(conn, "candidates", cands)
        try:
            df = wh.query_df(conn, vector_sql(None, realtime))
        finally:
            wh.unregister_temp(conn, "candidates")
    return df.sort_values("_row").reset_index(drop=True).drop(columns=["_row"])
