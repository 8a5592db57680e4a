"""Time-based backtest: each model fitted as of a past day, scored on that day's users against
what they did next, beside the RFM baseline on the same users and days.

For horizon h the held-out days are the newest days whose labels are all observed (the last
observed day minus h, then ``step`` days earlier, ``days`` of them). At each held-out day t a
model is fitted as of t (it sees only what had arrived by t, and trains and calibrates on
labels known by t), predicts the users active at t, and the predictions are scored against
their purchases on t + 1 .. t + h. Rows of all held-out days are pooled per horizon.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd

from flywheel_assets.likelihood.history import UserHistory, labels
from flywheel_assets.likelihood.metrics import auc, calibration, gains, lift_at, scores
from flywheel_assets.likelihood.model import LikelihoodModel, LikelihoodParams, Snapshots, as_of_day
from flywheel_assets.likelihood.rfm import rfm_score

RFM = "rfm"
SUMMARY_COLUMNS = [
    "horizon_days", "model", "days", "rows", "base_rate", "auc", "log_loss", "ece", "lift_top10",
    "reliability_json", "gains_json",
]  # fmt: skip


def held_out_days(last_day: dt.date, horizon: int, days: int = 4, step: int = 7) -> list[dt.date]:
    """The ``days`` newest days whose ``horizon``-day labels the history holds."""
    newest = last_day - dt.timedelta(days=horizon)
    return sorted(newest - dt.timedelta(days=step * k) for k in range(days))


def backtest(
    history: UserHistory,
    models: dict[str, LikelihoodParams],
    days: int = 4,
    step: int = 7,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, rows): the summary per horizon and model (``SUMMARY_COLUMNS``; the RFM
    baseline ranks only, so its log loss and ECE are empty); the rows are every held-out
    (horizon, day, user) with y, the RFM score and each model's probability."""
    cache = Snapshots(history)
    horizons = sorted({h for p in models.values() for h in p.horizons})
    rows = []
    for h in horizons:
        for t in held_out_days(history.last_day, h, days, step):
            first = next(iter(models.values()))
            features = cache.get(t, first.active_days)
            if features.empty:
                continue
            y = labels(history, t, features["user_id"].to_numpy(), (h,))[f"y_{h}d"].to_numpy()
            frame = pd.DataFrame(
                {
                    "horizon_days": h,
                    "day": t,
                    "user_id": features["user_id"].to_numpy(),
                    "y": y,
                    RFM: rfm_score(features),
                }
            )
            known = as_of_day(history, t)
            for name, params in models.items():
                if h not in params.horizons:
                    continue
                one = dataclasses.replace(params, horizons=(h,))
                model = LikelihoodModel(one).fit(known, t, snapshots=cache)
                frame[name] = model.predict(features)[f"p_{h}d"].to_numpy()
            rows.append(frame)
    if not rows:
        raise ValueError("no held-out day with active users: the history is too short")
    pooled = pd.concat(rows, ignore_index=True)
    return summarise(pooled, list(models)), pooled


def summarise(rows: pd.DataFrame, model_names: list[str]) -> pd.DataFrame:
    out = []
    for h, g in rows.groupby("horizon_days", sort=True):
        y = g["y"].to_numpy()
        base = {"horizon_days": int(h), "days": int(g["day"].nunique())}
        for name in model_names:
            if name in g and g[name].notna().all():
                p = g[name].to_numpy()
                out.append(
                    {
                        **base,
                        "model": name,
                        **scores(y, p),
                        "reliability_json": _json(calibration(y, p)[1]),
                        "gains_json": _json(gains(y, p)),
                    }
                )
        out.append(
            {
                **base,
                "model": RFM,
                "reliability_json": None,
                "gains_json": _json(gains(y, g[RFM].to_numpy())),
                "auc": auc(y, g[RFM].to_numpy()),
                "log_loss": np.nan,
                "ece": np.nan,
                "lift_top10": lift_at(y, g[RFM].to_numpy(), 0.1),
                "base_rate": float(np.mean(y)),
                "rows": int(len(y)),
            }
        )
    return pd.DataFrame(out)[SUMMARY_COLUMNS]


def _json(frame: pd.DataFrame) -> str:
    return json.dumps(frame.to_dict(orient="list"))
