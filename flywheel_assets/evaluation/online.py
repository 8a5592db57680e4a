"""The daily look at the running experiment, on the warehouse: per-user outcomes and latency
in, the analysis (experiments.analyse) out and recorded."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flywheel_assets import registry
from flywheel_assets.evaluation.experiments import (
    VARIANTS,
    Analysis,
    Experiment,
    ExperimentPolicy,
    analyse,
    replay_latency,
)
from flywheel_assets.features.store import replay_frame
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.training.model import predict

# Served requests read per arm for the latency guardrail (a sample: request ids are random).
SERVED_LATENCY_PER_ARM = 100_000


@dataclass(frozen=True)
class DailyLook:
    experiment: Experiment
    analysis: Analysis
    history: pd.DataFrame  # every look at the experiment so far, this one included


def look_at_experiment(
    wh: Warehouse, day: dt.date, policy: ExperimentPolicy, *, now: dt.datetime
) -> DailyLook | None:
    """Look at the experiment that served ``day`` and record the look, replacing the day's
    earlier looks; None when no experiment served the day."""
    with wh.begin() as conn:
        exp = registry.experiment_serving_on(conn, day)
        registry.delete_looks(conn, day)
    if exp is None:
        return None
    with wh.begin() as conn:
        users = registry.user_metrics(conn, exp, day, pre_days=policy.pre_days)
    latency = measure_latency(wh, exp, day, policy.latency_requests)
    analysis = analyse(exp, users, day, policy, latency)
    with wh.begin() as conn:
        registry.record_look(conn, analysis, now=now)
        history = registry.experiment_results(conn, exp.experiment_id)
    return DailyLook(exp, analysis, history)


def measure_latency(
    wh: Warehouse, exp: Experiment, day: dt.date, n: int
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Per-request latency of both arms on the day: as served (the ranking service's request
    log) when each arm served at least ``n`` requests, else the models replayed on ``n`` of the
    day's requests. Returns (champion ms, challenger ms, source) or None (cold-start champion:
    no model to compare with)."""
    if exp.champion is None:
        return None
    with wh.begin() as conn:
        served = registry.served_latency(conn, exp, day, per_arm=SERVED_LATENCY_PER_ARM)
    arms = [served.loc[served["variant"] == v, "latency_ms"].to_numpy(float) for v in VARIANTS]
    if all(len(a) >= n for a in arms):
        return arms[0], arms[1], "served"
    return _replayed_latency(wh, exp, day, n)


def _replayed_latency(
    wh: Warehouse, exp: Experiment, day: dt.date, n: int
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Both arms' models timed on the same ``n`` requests of the day (None: a model or the
    requests are missing)."""
    with wh.begin() as conn:
        champion = registry.get_model(conn, str(exp.champion))
        challenger = registry.get_model(conn, exp.challenger)
    if champion is None or challenger is None:
        return None
    frame = replay_frame(wh, day, n, realtime=champion.uses_realtime or challenger.uses_realtime)
    if frame.empty:
        return None
    groups = [g for _, g in frame.groupby("request_id")]
    b_champion, b_challenger = champion.load(), challenger.load()
    return (
        *replay_latency(
            lambda f: predict(b_champion, champion.schema, f, at_top=True),
            lambda f: predict(b_challenger, challenger.schema, f, at_top=True),
            groups,
        ),
        "replayed",
    )
