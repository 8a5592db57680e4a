"""The offline gate's evidence for one day: the day's challenger and the champion scored on the
same time-based holdout (the challenger's), stored with score samples for the drift check."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flywheel_assets import registry
from flywheel_assets.evaluation.offline import calibration, offline_metrics
from flywheel_assets.features.store import training_frame
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.training.model import LABELS, predict

# Scores kept per day and role for the score-drift check: enough for PSI deciles and KS.
SCORE_SAMPLE_SIZE = 20_000


@dataclass
class OfflineComparison:
    """One row per role (role, model_version, n_rows and the metrics), and each model's
    reliability curve on the holdout (for the UI)."""

    rows: list[dict[str, object]] = field(default_factory=list)
    reliability: dict[str, pd.DataFrame] = field(default_factory=dict)


def evaluate_offline(wh: Warehouse, day: dt.date, *, now: dt.datetime) -> OfflineComparison:
    """Score day ``day``'s challenger and the champion of that day on the challenger's holdout
    and replace the day's offline evaluations and score samples (none without a challenger
    that kept a holdout)."""
    with wh.begin() as conn:
        challenger_version = registry.model_for_day(conn, day)
        champion_version = registry.champion_for_day(conn, day)
        challenger = registry.get_model(conn, challenger_version) if challenger_version else None
        champion = registry.get_model(conn, champion_version) if champion_version else None
    result, samples = OfflineComparison(), []
    if challenger is not None and challenger.metrics.get("holdout_cutoff"):
        realtime = any(r is not None and r.uses_realtime for r in (challenger, champion))
        cutoff = pd.Timestamp(challenger.metrics["holdout_cutoff"]).to_pydatetime()
        holdout = training_frame(wh, day, day, realtime=realtime, since=cutoff)
        # Both models are judged on the challenger's label.
        label_col = LABELS[challenger.label]
        for role, rec in (("challenger", challenger), ("champion", champion)):
            if rec is not None:
                samples.append(_score(result, day, role, rec, holdout, label_col))
    with wh.begin() as conn:
        registry.replace_score_samples(wh, conn, day, samples)
        registry.replace_evaluations(conn, day, result.rows, now=now)
    return result


def _score(
    result: OfflineComparison,
    day: dt.date,
    role: str,
    rec: registry.ModelRecord,
    holdout: pd.DataFrame,
    label_col: str,
) -> pd.DataFrame:
    """Score ``holdout`` with one model: its metrics and reliability go into ``result``; returns
    its score sample."""
    scores = predict(rec.load(), rec.schema, holdout)
    m = offline_metrics(holdout, scores, label_col)
    result.rows.append({"role": role, "model_version": rec.model_version, **m.as_dict()})
    result.reliability[f"{role} {rec.model_version[:12]}"] = calibration(
        holdout[label_col].to_numpy(), scores
    )[1]
    return score_sample(day, role, rec.model_version, scores)


def score_sample(day: dt.date, role: str, version: str, scores: object) -> pd.DataFrame:
    values = np.asarray(scores, dtype=float)
    if len(values) > SCORE_SAMPLE_SIZE:
        # Seeded by the day: re-materialising keeps the same sample.
        rng = np.random.default_rng(day.toordinal())
        values = values[np.sort(rng.choice(len(values), SCORE_SAMPLE_SIZE, replace=False))]
    return pd.DataFrame({"dt": day, "role": role, "model_version": version, "score": values})
