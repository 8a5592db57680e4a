"""Aliases (champion, challenger) with the full history of their moves (alias_history)."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
from sqlalchemy.engine import Connection

from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.serving.policy import COLD_START_VERSION

CHAMPION = "champion"
CHALLENGER = "challenger"


def get_alias(conn: Connection, alias: str) -> str | None:
    value = Warehouse.scalar(conn, load_sql("registry/get_alias"), alias=alias)
    return None if value is None else str(value)


def move_alias(
    conn: Connection,
    alias: str,
    to_version: str | None,
    *,
    actor: str,
    reason: str,
    now: dt.datetime,
    day: dt.date | None = None,
) -> bool:
    """Point ``alias`` at ``to_version`` (None removes it), recording the move in
    alias_history. Moving to where it already points records nothing and returns False."""
    current = get_alias(conn, alias)
    if current == to_version:
        return False
    Warehouse.run(conn, "registry/delete_alias", alias=alias)
    if to_version is not None:
        Warehouse.run(conn, "registry/insert_alias", alias=alias, model_version=to_version, at=now)
    Warehouse.run(
        conn,
        "registry/insert_alias_history",
        alias=alias,
        from_version=current,
        to_version=to_version,
        at=now,
        actor=actor,
        reason=reason,
        dt=day,
    )
    # Every move of what serves is also in the audit trail, with everything else people and
    # jobs changed (quarantine releases, rollbacks, grants, migrations, configuration).
    Warehouse.run(
        conn,
        "platform/audit/insert_audit",
        logged_at=now,
        actor=actor,
        action=f"move_{alias}",
        subject=f"{alias} {current or COLD_START_VERSION} -> {to_version or COLD_START_VERSION}",
        details=json.dumps({"from": current, "to": to_version, "day": str(day) if day else None}),
        why=reason,
    )
    return True


def register_and_point(
    wh: Warehouse,
    registry: str,
    alias: str,
    row: dict[str, object],
    *,
    actor: str,
    reason: str,
    now: dt.datetime,
    day: dt.date,
) -> bool:
    """In one transaction: register a model (``row`` through ``<registry>/insert_model``,
    once: a model with its version registered already is kept as it is), then point
    ``alias`` at it, unless the alias was already moved for a later day (re-running an old
    day must not send the live alias back in time; that day's model stays registered).
    Returns whether the alias moved. ``registry`` names the SQL folder of a model family with
    its own table (forecasting, likelihood)."""
    version = row["model_version"]
    with wh.begin() as conn:
        if wh.query_df(conn, load_sql(f"{registry}/get_model"), model_version=version).empty:
            wh.run(conn, f"{registry}/insert_model", **row)
        last = Warehouse.scalar(conn, load_sql("registry/alias_last_day"), alias=alias)
        if last is not None and pd.Timestamp(last).date() > day:
            return False
        return move_alias(conn, alias, str(version), actor=actor, reason=reason, now=now, day=day)


def alias_as_of(conn: Connection, alias: str, day: dt.date) -> str | None:
    """The version ``alias`` pointed at for ``day``: its latest move made for a day up to it."""
    value = Warehouse.scalar(conn, load_sql("registry/alias_as_of"), alias=alias, dt=day)
    return None if value is None else str(value)


def decided_against(
    wh: Warehouse, registry: str, alias: str, day: dt.date
) -> tuple[str | None, pd.Series | None]:
    """The registered model (version, its ``<registry>/get_model`` row) that day ``day`` is
    decided against: where ``alias`` pointed for the day before, so a re-run of the day, or of
    an old day, decides as its first run did. (None, None) before the first model."""
    with wh.begin() as conn:
        version = alias_as_of(conn, alias, day - dt.timedelta(days=1))
        if version is None:
            return None, None
        row = wh.query_df(conn, load_sql(f"{registry}/get_model"), model_version=version)
    if row.empty:
        raise RuntimeError(f"{alias} points at {version}, which the {registry} registry lacks")
    return version, row.iloc[0]


def serving_for_day(
    wh: Warehouse, registry: str, alias: str, day: dt.date, asset: str
) -> tuple[str, pd.Series]:
    """The registered model that serves ``day``: the one fitted for that day, else where
    ``alias`` pointed once the day was decided. A backfill serves each day with its own day's
    model, never one trained on later days, and a re-run old day with the model it refitted.
    Raises LookupError, naming ``asset``, before any model was fitted."""
    with wh.begin() as conn:
        version = wh.scalar(conn, load_sql(f"{registry}/model_for_day"), dt=day)
        version = str(version) if version is not None else alias_as_of(conn, alias, day)
        if version is None:
            raise LookupError(f"no {alias} for {day} yet: the {asset} asset has not run")
        row = wh.query_df(conn, load_sql(f"{registry}/get_model"), model_version=version)
    return version, row.iloc[0]


def alias_history(conn: Connection, alias: str) -> pd.DataFrame:
    """Every move of ``alias``, oldest first: from_version, to_version, moved_at, moved_by,
    reason, dt (the decision day, for moves a decision made). A missing value (the cold-start
    policy, a move no decision made) is None, never NaN: NaN is truthy, so ``from_version or
    'cold-start'`` printed ``nan``."""
    moves = Warehouse.query_df(conn, load_sql("registry/alias_history"), alias=alias)
    return moves.astype(object).where(moves.notna(), None)


def moved_by_hand_since(conn: Connection, at: dt.datetime) -> bool:
    """Whether anyone but the daily decision (a rollback) moved the champion after ``at``."""
    return bool(Warehouse.scalar(conn, load_sql("registry/manual_moves_after"), at=at))
