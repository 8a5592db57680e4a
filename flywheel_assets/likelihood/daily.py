"""A day of purchase likelihood over the warehouse: the work of the likelihood assets.

Each function reads what it needs, calls the plain likelihood functions and writes its table,
one transaction per day, so a re-run day replaces its rows. The decision rule
(docs/likelihood.md, "Promotion"):

- every day the challenger's specification (the defaults with FLYWHEEL_LIKELIHOOD_PARAMS) and
  the champion's are backtested on the same held-out days beside the RFM baseline;
- the challenger's specification replaces the champion's only when it wins: a lower log loss
  at every horizon, and an ECE within the bound at every horizon; the first champion is the
  first challenger;
- the winning specification is fitted as of the day and serves; the alias moves with the
  reason, in alias_history and the audit trail;
- a serving specification whose ECE on the held-out days exceeds FLYWHEEL_LIKELIHOOD_MAX_ECE
  is refused by a blocking check: nothing is published that day.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flywheel_assets.likelihood.backtest import RFM, backtest
from flywheel_assets.likelihood.history import ACTIVITY_COLUMNS, UserHistory, snapshot
from flywheel_assets.likelihood.model import LikelihoodModel, LikelihoodParams
from flywheel_assets.likelihood.settings import LikelihoodSettings
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.registry.aliases import (
    decided_against,
    register_and_point,
    serving_for_day,
)

ALIAS = "purchase_likelihood_champion"
CHALLENGER, CHAMPION = "challenger", "champion"


class NotEnoughHistory(Exception):
    """Too few days of activity for the held-out days' labels and the training before them."""


def challenger_params(settings: LikelihoodSettings) -> LikelihoodParams:
    """The configured specification: the defaults with FLYWHEEL_LIKELIHOOD_PARAMS over them."""
    overrides = settings.param_overrides()
    base = LikelihoodParams().to_dict()
    if "xgb_params" in overrides:
        overrides = {**overrides, "xgb_params": {**base["xgb_params"], **overrides["xgb_params"]}}
    return LikelihoodParams.from_dict({**base, **overrides})


def required_days(params: LikelihoodParams, backtest_days: int) -> int:
    """Days of history a day's backtest and fit read: from the oldest training snapshot of the
    oldest held-out day, a year of features before it. Fewer would give the training
    snapshots shorter 365-day windows than the day that is scored."""
    h, step = max(params.horizons), params.step
    held_out = h + step * (backtest_days - 1)
    calibration = h + step * (params.calibration_days - 1)
    training = h + step * (params.training_days - 1)
    return held_out + calibration + training + 365


def load_history(wh: Warehouse, day: dt.date, settings: LikelihoodSettings) -> UserHistory:
    """Every user's activity that arrived in the partitions up to ``day`` (at least
    ``history_days``, and as many as ``required_days`` asks), purchases from order lines or
    purchase events (``source``), and the signup dates."""
    days = max(
        settings.history_days,
        required_days(challenger_params(settings), settings.backtest_days),
    )
    bounds = {"from_dt": day - dt.timedelta(days=days - 1), "to_dt": day}
    with wh.begin() as conn:
        source = settings.source
        if source == "auto":
            has_orders = wh.scalar(
                conn,
                load_sql("forecasting/has_orders"),
                from_day=dt.datetime.combine(bounds["from_dt"], dt.time()),
                until=dt.datetime.combine(day + dt.timedelta(days=1), dt.time()),
            )
            source = "orders" if has_orders else "events"
        activity = wh.query_df(conn, load_sql("likelihood/activity_from_events"), **bounds)
        if source == "orders":
            bought = wh.query_df(conn, load_sql("likelihood/purchases_from_orders"), **bounds)
        users = wh.query_df(conn, load_sql("likelihood/user_signups"), to_dt=day)
    if source == "orders":
        keys = ["user_id", "dt", "day"]
        browsing = activity.drop(columns=["purchases", "revenue"])
        activity = browsing.merge(bought, on=keys, how="outer")
    activity = activity.fillna(
        {c: 0 for c in ACTIVITY_COLUMNS if c not in ("user_id", "dt", "day")}
    )
    for col in ("dt", "day"):
        activity[col] = pd.to_datetime(activity[col]).dt.date
    if len(users):
        users["dt"] = pd.to_datetime(users["dt"]).dt.date
        users["signup_date"] = pd.to_datetime(users["signup_date"]).dt.date
    return UserHistory(activity[ACTIVITY_COLUMNS], users, through=day)


@dataclass(frozen=True)
class BacktestOutcome:
    summary: pd.DataFrame  # horizon_days, model, model_version, days, rows, base_rate, ...
    rows: pd.DataFrame  # every held-out (horizon, day, user): y, rfm, each model's p
    champion_version: str | None
    winner: str
    reason: str


def run_backtest(wh: Warehouse, day: dt.date, settings: LikelihoodSettings) -> BacktestOutcome:
    """Backtest the challenger's and the champion's specifications beside RFM on the same
    held-out days ending on ``day``; decide which specification serves next."""
    history = load_history(wh, day, settings)
    params = challenger_params(settings)
    champion_version, champion_params = _champion(wh, day)
    models = {CHALLENGER: params}
    if champion_params is not None and champion_params.to_dict() != params.to_dict():
        models[CHAMPION] = champion_params
    try:
        summary, rows = backtest(history, models, days=settings.backtest_days, step=params.step)
    except ValueError as exc:
        raise NotEnoughHistory(f"{day}: {exc}") from None
    if champion_version is not None and CHAMPION not in models:
        # One specification: its scores are the champion's too.
        summary = pd.concat(
            [summary, summary[summary["model"] == CHALLENGER].assign(model=CHAMPION)],
            ignore_index=True,
        )
    summary["model_version"] = summary["model"].map({CHAMPION: champion_version})
    winner, reason = decide(summary, champion_version, settings.max_ece)
    return BacktestOutcome(summary, rows, champion_version, winner, reason)


def decide(summary: pd.DataFrame, champion_version: str | None, max_ece: float) -> tuple[str, str]:
    """Which specification serves next, and why (a pure function of the backtest)."""
    by = summary.set_index(["model", "horizon_days"])
    horizons = sorted(summary["horizon_days"].unique())

    def figures(model: str) -> str:
        return ", ".join(
            f"{h} d: log loss {by.loc[(model, h), 'log_loss']:.4f}, ECE {by.loc[(model, h), 'ece']:.4f}"
            for h in horizons
        )

    if champion_version is None:
        return CHALLENGER, f"first purchase-likelihood model ({figures(CHALLENGER)})"
    if set(summary.loc[summary["model"] == CHALLENGER, "horizon_days"]) != set(horizons):
        return CHAMPION, "the challenger does not cover every horizon"
    better = all(
        by.loc[(CHALLENGER, h), "log_loss"] < by.loc[(CHAMPION, h), "log_loss"] for h in horizons
    )
    calibrated = all(by.loc[(CHALLENGER, h), "ece"] <= max_ece for h in horizons)
    if better and calibrated:
        return CHALLENGER, f"the challenger's specification wins ({figures(CHALLENGER)})"
    return CHAMPION, (
        f"the challenger's specification does not win ({figures(CHALLENGER)} against "
        f"{figures(CHAMPION)}): the champion's refitted"
    )


def write_backtest(wh: Warehouse, day: dt.date, outcome: BacktestOutcome) -> None:
    rows = outcome.summary.assign(dt=day)[
        ["dt", "horizon_days", "model", "model_version", "days", "rows", "base_rate", "auc",
         "log_loss", "ece", "lift_top10", "reliability_json", "gains_json"]
    ]  # fmt: skip
    with wh.begin() as conn:
        wh.delete_partition(conn, "likelihood_backtest", day)
        wh.insert_df(conn, "likelihood_backtest", rows)


def read_backtest(wh: Warehouse, day: dt.date) -> pd.DataFrame:
    with wh.begin() as conn:
        return wh.read_partition(conn, "likelihood_backtest", day)


def decide_from_table(summary: pd.DataFrame, max_ece: float) -> tuple[str, str]:
    """``decide`` from a stored backtest (likelihood_backtest rows of a day): the champion's
    version is on its rows."""
    champ = summary[summary["model"] == CHAMPION]
    version = None if champ.empty else str(champ["model_version"].iloc[0])
    return decide(summary, version, max_ece)


def _champion(wh: Warehouse, day: dt.date) -> tuple[str | None, LikelihoodParams | None]:
    """The champion that day ``day`` is decided against, and its specification."""
    version, row = decided_against(wh, "likelihood", ALIAS, day)
    if row is None:
        return None, None
    return version, LikelihoodParams.from_dict(json.loads(row["params_json"]))


def fit_champion(
    wh: Warehouse,
    day: dt.date,
    settings: LikelihoodSettings,
    *,
    winner: str,
    reason: str,
    metrics: dict[str, object],
    models_dir: object,
    code_version: str | None,
    actor: str,
    now: dt.datetime,
) -> tuple[str, bool, dict]:
    """Fit the winning specification as of ``day``, register it and point the alias at it.
    Re-running the day registers the same bytes (a no-op). Returns (version, moved, lineage)."""
    from flywheel_assets.training.model import save_artefact

    history = load_history(wh, day, settings)
    _, champion_params = _champion(wh, day)
    params = (
        champion_params
        if winner == CHAMPION and champion_params is not None
        else challenger_params(settings)
    )
    model = LikelihoodModel(params).fit(history, day)
    data = model.to_bytes()
    version = model.model_version
    uri, sha = save_artefact(data, models_dir, version)  # type: ignore[arg-type]
    lineage = model.lineage()
    moved = register_and_point(
        wh,
        "likelihood",
        ALIAS,
        {
            "model_version": version,
            "dt": day,
            "artefact_uri": uri,
            "sha256": sha,
            "params_json": json.dumps(params.to_dict(), sort_keys=True),
            "lineage_json": json.dumps(lineage, sort_keys=True, default=str),
            "metrics_json": json.dumps(metrics, sort_keys=True, default=str),
            "code_version": code_version,
            "created_at": now,
            "created_by": actor,
        },
        actor=actor,
        reason=reason,
        now=now,
        day=day,
    )
    return version, moved, lineage


def load_champion(wh: Warehouse, day: dt.date) -> tuple[str, LikelihoodModel]:
    """The model that serves ``day`` (``registry.aliases.serving_for_day``), loaded."""
    from flywheel_assets.training.model import read_artefact

    version, row = serving_for_day(wh, "likelihood", ALIAS, day, "purchase_likelihood_model")
    return version, LikelihoodModel.from_bytes(read_artefact(row["artefact_uri"], row["sha256"]))


def score_day(wh: Warehouse, day: dt.date, settings: LikelihoodSettings) -> pd.DataFrame:
    """The champion's probabilities for every user active in the window up to ``day``,
    written to purchase_likelihood (the day's rows replaced)."""
    version, model = load_champion(wh, day)
    history = load_history(wh, day, settings)
    features = snapshot(history, day, model.params.active_days)
    p = model.predict(features)
    if "p_7d" not in p or "p_30d" not in p:
        raise ValueError(f"{version} does not predict both 7 and 30 days")
    rows = pd.DataFrame(
        {
            "dt": day,
            "user_id": p["user_id"],
            "p_7d": p["p_7d"],
            "p_30d": p["p_30d"],
            "decile": deciles(p["p_30d"].to_numpy()),
            "model_version": version,
        }
    )
    with wh.begin() as conn:
        wh.delete_partition(conn, "purchase_likelihood", day)
        wh.insert_df(conn, "purchase_likelihood", rows)
    return rows


def deciles(p: np.ndarray) -> np.ndarray:
    """1 for the most likely tenth of the users, 10 for the least (ties by order given)."""
    n = len(p)
    if n == 0:
        return np.array([], dtype="int64")
    order = np.argsort(-p, kind="stable")
    rank = np.empty(n, dtype="int64")
    rank[order] = np.arange(n)
    return (rank * 10 // n + 1).astype("int64")


def held_out_metrics(summary: pd.DataFrame, model: str) -> dict[str, object]:
    """``model``'s figures on the held-out days, and RFM's beside them."""
    out: dict[str, object] = {"model": model}
    for _, r in summary[summary["model"].isin([model, RFM])].iterrows():
        for m in ("auc", "log_loss", "ece", "lift_top10", "base_rate"):
            out[f"{r['model']}_{int(r['horizon_days'])}d_{m}"] = (
                None if pd.isna(r[m]) else float(r[m])
            )
    return out
