"""The daily promotion decisions (promotion_decisions): reading a day's registry state,
applying a decision, and who was champion on a day."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
from sqlalchemy.engine import Connection

from flywheel_assets.evaluation.promotion import DecisionRecord, PromotionDecision, RegistryState
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.registry.aliases import CHAMPION, get_alias, move_alias, moved_by_hand_since
from flywheel_assets.registry.experiments import end_experiment, start_experiment
from flywheel_assets.registry.models import text

# Who moves the champion when a day is decided (manual_moves_after.sql names it too: every
# other mover is a person or a rollback).
DECIDER = "promotion_decision"


def get_decision(conn: Connection, day: dt.date) -> DecisionRecord | None:
    df = Warehouse.query_df(conn, load_sql("registry/get_decision"), dt=day)
    if df.empty:
        return None
    r = df.iloc[0]
    return DecisionRecord(
        decision=str(r["decision"]),
        reason=str(r["reason"]),
        challenger=text(r["challenger"]),
        champion_after=text(r["champion_after"]),
        experiment_id=text(r["experiment_id"]),
        decided_at=r["decided_at"],
        started_experiment=json.loads(text(r["evidence_json"]) or "{}").get("started_experiment"),
    )


def latest_decision_after(conn: Connection, day: dt.date) -> dt.date | None:
    """The most recent day after ``day`` that is decided, if any."""
    df = Warehouse.query_df(conn, load_sql("registry/latest_decision_after"), dt=day)
    return None if df.empty else pd.Timestamp(df.iloc[0]["dt"]).date()


def latest_decision_day(conn: Connection) -> dt.date | None:
    value = Warehouse.scalar(conn, load_sql("registry/latest_decision"))
    return None if value is None else pd.Timestamp(value).date()


def champion_for_day(conn: Connection, day: dt.date) -> str | None:
    """Who was champion when day ``day`` was decided: for the newest day the alias as it is now
    (rollbacks included); for a day already decided, or older, what the records say."""
    decided = Warehouse.query_df(conn, load_sql("registry/get_decision"), dt=day)
    if not decided.empty:
        before = decided.iloc[0]["champion_before"]
        return before if isinstance(before, str) else None
    if latest_decision_after(conn, day) is None:
        return get_alias(conn, CHAMPION)
    value = Warehouse.scalar(conn, load_sql("registry/champion_before"), dt=day)
    return None if value is None else str(value)


def decision_state(conn: Connection, day: dt.date) -> RegistryState:
    """The registry's side of deciding ``day`` (read before the day's replay is undone)."""
    previous = get_decision(conn, day)
    return RegistryState(
        champion_before=champion_for_day(conn, day),
        later_decided=latest_decision_after(conn, day),
        previous=previous,
        moved_by_hand=previous is not None and moved_by_hand_since(conn, previous.decided_at),
    )


def apply_decision(
    conn: Connection, day: dt.date, decision: PromotionDecision, *, now: dt.datetime
) -> None:
    """Carry the decision out: end and start experiments, move the champion alias (a no-op
    unless it changed), and replace the day's decision record."""
    if decision.end is not None:
        end = decision.end
        end_experiment(conn, end.experiment_id, status=end.status, end_dt=day, reason=end.reason)
    if decision.start is not None:
        start_experiment(conn, decision.start, now=now)
    if decision.move_champion:
        move_alias(conn, CHAMPION, decision.champion_after, actor=DECIDER,
                   reason=f"{day}: {decision.reason}", now=now, day=day)  # fmt: skip
    replace_decision(conn, day, decision, now=now)


def replace_decision(
    conn: Connection, day: dt.date, decision: PromotionDecision, *, now: dt.datetime
) -> None:
    """The day's decision record, with its evidence (replaces an earlier one)."""
    Warehouse.delete_partition(conn, "promotion_decisions", day)
    Warehouse.run(
        conn,
        "registry/insert_decision",
        dt=day,
        challenger=decision.challenger,
        champion_before=decision.champion_before,
        champion_after=decision.champion_after,
        decision=decision.decision,
        reason=decision.reason,
        at=now,
        experiment_id=decision.experiment_id,
        evidence_json=json.dumps(decision.evidence, default=str, sort_keys=True),
    )


def day_decisions(
    conn: Connection, from_dt: dt.date, to_dt: dt.date
) -> dict[dt.date, dict[str, str | None]]:
    """Each decided day in [from_dt, to_dt]: its decision named in full ("reject+experiment"
    when it also started the next experiment) and the challenger it was about."""
    df = Warehouse.query_df(conn, load_sql("registry/day_decisions"), from_dt=from_dt, to_dt=to_dt)
    return {
        pd.Timestamp(r["dt"]).date(): {
            "decision": text(r["decision"]),
            "challenger": text(r["challenger"]),
        }
        for _, r in df.iterrows()
    }
