"""The model registry on warehouse tables: versions with lineage, aliases with full history,
experiments, and rollback."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import pandas as pd
import xgboost as xgb
from sqlalchemy.engine import Connection

from flywheel_assets.evaluation.experiments import Experiment
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.serving.policy import COLD_START_VERSION
from flywheel_assets.training.model import FeatureSchema, load_artefact

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class ModelRecord:
    model_version: str
    dt: dt.date
    artefact_uri: str
    sha256: str
    objective: str
    label: str
    params: dict
    metrics: dict
    schema: FeatureSchema
    training_partitions: list[str]
    n_train_rows: int
    n_valid_rows: int
    code_version: str | None
    champion_at_training: str | None
    partition_rows: dict[str, int] = field(default_factory=dict)
    training_spec_json: str | None = None
    base_model_version: str | None = None

    def load(self) -> xgb.Booster:
        return load_artefact(self.artefact_uri, self.sha256)


def register_model(
    conn: Connection, record: ModelRecord, *, created_by: str, now: dt.datetime
) -> bool:
    """Insert a version; registering the same version again (a rerun) changes nothing.

    Versions are content-addressed, so an existing version with the same SHA-256 is the same
    model; with another SHA-256 it is a conflict and fails loudly."""
    existing = get_model(conn, record.model_version)
    if existing is not None:
        if existing.sha256 != record.sha256:
            raise RuntimeError(
                f"model version {record.model_version} already registered with other content"
            )
        return False
    Warehouse.run(
        conn,
        "registry/insert_model",
        model_version=record.model_version,
        dt=record.dt,
        artefact_uri=record.artefact_uri,
        sha256=record.sha256,
        objective=record.objective,
        label=record.label,
        params_json=json.dumps(record.params, sort_keys=True, default=str),
        metrics_json=json.dumps(record.metrics, sort_keys=True, default=float),
        features_json=record.schema.to_json(),
        training_partitions_json=json.dumps(record.training_partitions),
        n_train_rows=record.n_train_rows,
        n_valid_rows=record.n_valid_rows,
        code_version=record.code_version,
        champion_at_training=record.champion_at_training,
        partition_rows_json=json.dumps(record.partition_rows, sort_keys=True),
        training_spec_json=record.training_spec_json,
        base_model_version=record.base_model_version,
        created_at=now,
        created_by=created_by,
    )
    return True


def get_model(conn: Connection, model_version: str) -> ModelRecord | None:
    df = Warehouse.query_df(conn, load_sql("registry/get_model"), model_version=model_version)
    if df.empty:
        return None
    r = df.iloc[0]
    return ModelRecord(
        model_version=r["model_version"],
        dt=r["dt"],
        artefact_uri=r["artefact_uri"],
        sha256=r["sha256"],
        objective=r["objective"],
        label=r["label"],
        params=json.loads(r["params_json"]),
        metrics=json.loads(r["metrics_json"]),
        schema=FeatureSchema.from_json(r["features_json"]),
        training_partitions=json.loads(r["training_partitions_json"]),
        n_train_rows=int(r["n_train_rows"]),
        n_valid_rows=int(r["n_valid_rows"]),
        code_version=_text(r["code_version"]),
        champion_at_training=_text(r["champion_at_training"]),
        partition_rows=json.loads(_text(r["partition_rows_json"]) or "{}"),
        training_spec_json=_text(r["training_spec_json"]),
        base_model_version=_text(r["base_model_version"]),
    )


def _text(value: object) -> str | None:
    """A nullable text column as str or None (a frame may hold NULL as NaN)."""
    return value if isinstance(value, str) else None


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
        "quality/insert_audit",
        logged_at=now,
        actor=actor,
        action=f"move_{alias}",
        subject=f"{alias} {current or COLD_START_VERSION} -> {to_version or COLD_START_VERSION}",
        details=json.dumps({"from": current, "to": to_version, "day": str(day) if day else None}),
        why=reason,
    )
    return True


# ----- experiments ------------------------------------------------------------------------


def experiment_serving_on(conn: Connection, day: dt.date) -> Experiment | None:
    """The experiment that served (or serves) day ``day``."""
    df = Warehouse.query_df(conn, load_sql("experiments/serving_on"), dt=day)
    return None if df.empty else Experiment.from_row(df.iloc[0])


def open_experiment(conn: Connection) -> Experiment | None:
    """The running experiment, whether or not its first serving day has come."""
    df = Warehouse.query_df(conn, load_sql("experiments/open_experiment"))
    return None if df.empty else Experiment.from_row(df.iloc[0])


def start_experiment(conn: Connection, exp: Experiment, *, now: dt.datetime) -> None:
    if open_experiment(conn) is not None:
        raise RuntimeError("an experiment is already running: one at a time")
    Warehouse.run(
        conn,
        "experiments/insert_experiment",
        experiment_id=exp.experiment_id,
        challenger=exp.challenger,
        champion=exp.champion,
        traffic_share=exp.traffic_share,
        created_dt=exp.created_dt,
        start_dt=exp.start_dt,
        max_days=exp.max_days,
        planned_n=exp.planned_n,
        alpha=exp.alpha,
        at=now,
    )


def end_experiment(
    conn: Connection, experiment_id: str, *, status: str, end_dt: dt.date, reason: str
) -> None:
    Warehouse.run(
        conn,
        "experiments/end_experiment",
        experiment_id=experiment_id,
        status=status,
        end_dt=end_dt,
        reason=reason,
    )


class RollbackError(RuntimeError):
    pass


def previous_champion(conn: Connection) -> str | None:
    """The champion before the current one (None: the cold-start policy), from alias history."""
    history = Warehouse.query_df(conn, load_sql("registry/alias_history"), alias=CHAMPION)
    current = get_alias(conn, CHAMPION)
    moves = history[history["to_version"].where(history["to_version"].notna(), None) == current]
    if moves.empty:
        raise RollbackError("the champion has no earlier version to roll back to")
    before = moves.iloc[-1]["from_version"]
    return before if isinstance(before, str) else None


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
    last_day = Warehouse.scalar(conn, load_sql("registry/latest_decision"))
    running = open_experiment(conn)
    if running is not None:
        end_experiment(
            conn,
            running.experiment_id,
            status="stopped",
            end_dt=pd.Timestamp(last_day).date() if last_day is not None else now.date(),
            reason=f"rollback by {actor}: {reason}",
        )
    move_alias(conn, CHAMPION, target, actor=actor, reason=f"rollback: {reason}", now=now)
    Warehouse.run(
        conn,
        "quality/insert_audit",
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


def champion_for_day(conn: Connection, day: dt.date) -> str | None:
    """Who was champion when day ``day`` was decided: for the newest day the alias as it is now
    (rollbacks included); for a day already decided, or older, what the records say."""
    decided = Warehouse.query_df(conn, load_sql("registry/get_decision"), dt=day)
    if not decided.empty:
        before = decided.iloc[0]["champion_before"]
        return before if isinstance(before, str) else None
    later = Warehouse.query_df(conn, load_sql("registry/latest_decision_after"), dt=day)
    if later.empty:
        return get_alias(conn, CHAMPION)
    value = Warehouse.scalar(conn, load_sql("registry/champion_before"), dt=day)
    return None if value is None else str(value)
