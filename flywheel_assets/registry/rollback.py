"""Rolling the champion back to an earlier version, with who and why."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy.engine import Connection

from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.registry.aliases import CHAMPION, alias_history, get_alias, move_alias
from flywheel_assets.registry.decisions import latest_decision_day
from flywheel_assets.registry.experiments import end_experiment, open_experiment
from flywheel_assets.registry.models import get_model
from flywheel_assets.serving.policy import COLD_START_VERSION


class RollbackError(RuntimeError):
    pass


def previous_champion(conn: Connection) -> str | None:
    """The champion before the current one (None: the cold-start policy), from alias history."""
    history = alias_history(conn, CHAMPION)
    current = get_alias(conn, CHAMPION)
    moves = history[history["to_version"] == current]
    if moves.empty:
        raise RollbackError("the champion has no earlier version to roll back to")
    return moves.iloc[-1]["from_version"]


def _target(
    conn: Connection, to_version: str | None, to_cold_start: bool, current: str | None
) -> str | None:
    if to_cold_start:
        target = None
    elif to_version is not None:
        if get_model(conn, to_version) is None:
            raise RollbackError(f"model version {to_version!r} is not in the registry")
        target = to_version
    else:
        target = previous_champion(conn)
        if target is None:
            raise RollbackError(
                "the previous champion was the cold-start policy (random rankings): "
                "say so explicitly with --to cold-start, or name a version with --to"
            )
    if target == current:
        raise RollbackError(f"{current or 'the cold-start policy'} is already the champion")
    return target


def rollback(
    conn: Connection,
    *,
    to_version: str | None,
    reason: str,
    actor: str,
    now: dt.datetime,
    to_cold_start: bool = False,
) -> tuple[str | None, str | None]:
    """Restore an earlier champion: ``to_version``, or the previous one in the alias history.
    Stops the running experiment (its challenger stops serving too), keeps every move in
    alias_history and writes the audit trail. Returns (from, to)."""
    if not reason or not reason.strip():
        raise RollbackError("a rollback needs a reason (--reason): it goes to the audit trail")
    if "\x00" in reason + actor:
        # PostgreSQL cannot store NUL (DuckDB can): refused the same way on both backends.
        raise RollbackError("who and why cannot contain a NUL character (U+0000)")
    current = get_alias(conn, CHAMPION)
    target = _target(conn, to_version, to_cold_start, current)
    running = open_experiment(conn)
    if running is not None:
        last_day = latest_decision_day(conn)
        end_experiment(
            conn,
            running.experiment_id,
            status="stopped",
            end_dt=last_day if last_day is not None else now.date(),
            reason=f"rollback by {actor}: {reason}",
        )
    move_alias(conn, CHAMPION, target, actor=actor, reason=f"rollback: {reason}", now=now)
    Warehouse.run(
        conn,
        "platform/audit/insert_audit",
        logged_at=now,
        actor=actor,
        action="rollback",
        subject=f"champion {current or COLD_START_VERSION} -> {target or COLD_START_VERSION}",
        details=json.dumps(
            {
                "from": current,
                "to": target,
                "stopped_experiment": running.experiment_id if running else None,
            }
        ),
        why=reason,
    )
    return current, target
