"""Experiments and their daily looks (experiments, experiment_results), and the reads that
feed a look: per-user outcomes, served latency, users per day."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
from sqlalchemy.engine import Connection

from flywheel_assets.evaluation.experiments import Analysis, Experiment
from flywheel_assets.evaluation.promotion import RecordedLook
from flywheel_assets.platform.warehouse import Warehouse, load_sql

# The per-metric columns of a look, as the decision's evidence keeps them.
RESULT_COLUMNS = ["metric", "kind", "outcome", "control_mean", "treatment_mean", "effect",
                  "ci_low", "ci_high", "p_value", "p_adjusted", "n_control", "n_treatment",
                  "margin"]  # fmt: skip


def experiment_serving_on(conn: Connection, day: dt.date) -> Experiment | None:
    """The experiment that served (or serves) day ``day``."""
    df = Warehouse.query_df(conn, load_sql("registry/experiments/serving_on"), dt=day)
    return None if df.empty else Experiment.from_row(df.iloc[0])


def open_experiment(conn: Connection) -> Experiment | None:
    """The running experiment, whether or not its first serving day has come."""
    df = Warehouse.query_df(conn, load_sql("registry/experiments/open_experiment"))
    return None if df.empty else Experiment.from_row(df.iloc[0])


def start_experiment(conn: Connection, exp: Experiment, *, now: dt.datetime) -> None:
    if open_experiment(conn) is not None:
        raise RuntimeError("an experiment is already running: one at a time")
    Warehouse.run(
        conn,
        "registry/experiments/insert_experiment",
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
        "registry/experiments/end_experiment",
        experiment_id=experiment_id,
        status=status,
        end_dt=end_dt,
        reason=reason,
    )


def undo_decided_on(conn: Connection, day: dt.date) -> None:
    """Undo what day ``day``'s decision did to the experiments, before it is decided again:
    the experiment it started is removed, the one it ended runs again."""
    Warehouse.run(conn, "registry/experiments/delete_created_on", dt=day)
    Warehouse.run(conn, "registry/experiments/reopen_ended_on", dt=day)


# ----- looks --------------------------------------------------------------------------------


def delete_looks(conn: Connection, day: dt.date) -> None:
    """Remove day ``day``'s looks (every experiment's), before the day is looked at again."""
    Warehouse.delete_partition(conn, "experiment_results", day)


def record_look(conn: Connection, analysis: Analysis, *, now: dt.datetime) -> None:
    """Write a look: one row per metric, and the verdict as the row of metric 'verdict'."""
    keys = {"experiment_id": analysis.experiment.experiment_id, "dt": analysis.day}
    for r in analysis.results:
        Warehouse.run(
            conn,
            "registry/experiments/insert_result",
            **keys,
            look=analysis.look,
            **r.__dict__,
            at=now,
        )
    Warehouse.run(
        conn,
        "registry/experiments/insert_result",
        **keys,
        look=analysis.look,
        metric="verdict",
        kind="verdict",
        outcome=analysis.verdict,
        note=analysis.reason,
        **dict.fromkeys(RESULT_COLUMNS[3:]),
        at=now,
    )


def experiment_results(conn: Connection, experiment_id: str) -> pd.DataFrame:
    """Every look at an experiment, by day and metric (verdicts included)."""
    return Warehouse.query_df(
        conn, load_sql("registry/experiments/results"), experiment_id=experiment_id
    )


def recorded_look(conn: Connection, experiment_id: str, day: dt.date) -> RecordedLook | None:
    """The verdict of the experiment's look on ``day`` with its per-metric rows (None: no look
    was recorded)."""
    df = Warehouse.query_df(conn, load_sql("registry/experiments/results_for_day"), dt=day)
    df = df[df["experiment_id"] == experiment_id]
    verdict = df[df["kind"] == "verdict"]
    if verdict.empty:
        return None
    v = verdict.iloc[0]
    # Through JSON as the decision's evidence stores them (NaN as null, numbers as JSON has).
    results = json.loads(df.loc[df["kind"] != "verdict", RESULT_COLUMNS].to_json(orient="records"))
    return RecordedLook(experiment_id, str(v["outcome"]), str(v["note"]), results)


# ----- what a look reads --------------------------------------------------------------------


def user_metrics(conn: Connection, exp: Experiment, day: dt.date, *, pre_days: int) -> pd.DataFrame:
    """Per-user outcomes by arm from the experiment's first day to ``day``, with the
    ``pre_days`` before it as the CUPED covariate (see user_metrics.sql)."""
    return Warehouse.query_df(
        conn,
        load_sql("registry/experiments/user_metrics"),
        start_dt=exp.start_dt,
        end_dt=day,
        challenger=exp.challenger,
        champion=exp.champion_version,
        pre_start_dt=exp.start_dt - dt.timedelta(days=pre_days),
    )


def served_latency(
    conn: Connection, exp: Experiment, day: dt.date, *, per_arm: int
) -> pd.DataFrame:
    """Per-request latency (variant, latency_ms) of the experiment's arms on ``day``, as the
    ranking service logged it: at most ``per_arm`` requests per arm."""
    return Warehouse.query_df(
        conn,
        load_sql("registry/experiments/served_latency"),
        dt=day,
        experiment_id=exp.experiment_id,
        champion=exp.champion,
        challenger=exp.challenger,
        per_arm=per_arm,
    )


def users_per_day(conn: Connection, first: dt.date, last: dt.date) -> list[int]:
    """Distinct users served on each day of [first, last] that had traffic."""
    df = Warehouse.query_df(
        conn, load_sql("registry/experiments/daily_users"), start_dt=first, end_dt=last
    )
    return [int(u) for u in df["users"]]
