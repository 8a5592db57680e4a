"""Evaluation: the offline gate's evidence and the daily look at the running experiment.

Day D: ``offline_evaluation`` compares D's challenger with the champion on D's holdout;
``online_evaluation`` takes the daily look at the experiment that served D.
"""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd

from flywheel_assets import registry
from flywheel_assets.defs.common import daily_asset, materialize_days, md_table, utcnow
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.resources import FlywheelConfig, WarehouseResource
from flywheel_assets.defs.serving.assets import served_requests
from flywheel_assets.defs.training.assets import challenger_model
from flywheel_assets.evaluation import (
    calibration,
    offline_metrics,
)
from flywheel_assets.evaluation.experiments import (
    VARIANTS,
    Analysis,
    Experiment,
    analyse,
    replay_latency,
)
from flywheel_assets.features.store import replay_frame, training_frame
from flywheel_assets.platform.plots import effect_over_looks_markdown, reliability_markdown
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.training.model import LABELS, predict


@dg.asset(
    **daily_asset("evaluation", {"python"}),
    deps=[challenger_model],
    description=(
        "The offline gate's evidence: the day's challenger and the champion on the same "
        "time-based holdout (AUC, log loss, NDCG@10, recall@10, calibration)."
    ),
)
def offline_evaluation(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    def build(day: dt.date) -> dg.MaterializeResult | dict[str, object]:
        wh = warehouse.get()
        with wh.begin() as conn:
            challenger_version = wh.scalar(conn, load_sql("registry/model_for_day"), dt=day)
            champion_version = registry.champion_for_day(conn, day)
            challenger = (
                registry.get_model(conn, str(challenger_version)) if challenger_version else None
            )
            champion = registry.get_model(conn, champion_version) if champion_version else None
        rows = []
        samples: list[pd.DataFrame] = []
        reliability: dict[str, pd.DataFrame] = {}
        if challenger is not None and challenger.metrics.get("holdout_cutoff"):
            frame = training_frame(wh, day, day)
            holdout = frame[
                frame["event_time"] >= pd.Timestamp(challenger.metrics["holdout_cutoff"])
            ]
            label_col = LABELS[challenger.label]
            for role, rec in (("challenger", challenger), ("champion", champion)):
                if rec is None:
                    continue
                scores = predict(rec.load(), rec.schema, holdout)
                m = offline_metrics(holdout, scores, label_col)
                rows.append({"role": role, "model_version": rec.model_version, **m.as_dict()})
                samples.append(_score_sample(day, role, rec.model_version, scores))
                reliability[f"{role} {rec.model_version[:12]}"] = calibration(
                    holdout[label_col].to_numpy(), scores
                )[1]
        now = utcnow()
        with wh.begin() as conn:
            wh.run(conn, "registry/delete_score_samples", dt=day)
            for sample in samples:
                wh.insert_df(conn, "score_samples", sample)
            wh.run(conn, "registry/delete_evaluations", dt=day)
            for r in rows:
                wh.run(
                    conn,
                    "registry/insert_evaluation",
                    dt=day,
                    model_version=r["model_version"],
                    role=r["role"],
                    n_rows=r["n_rows"],
                    auc=_finite(r["auc"]),
                    log_loss=_finite(r["log_loss"]),
                    ndcg_at_10=_finite(r["ndcg_at_10"]),
                    recall_at_10=_finite(r["recall_at_10"]),
                    ece=_finite(r["ece"]),
                    snips_value=None,
                    at=now,
                )
        table = pd.DataFrame(rows) if rows else pd.DataFrame()
        meta: dict[str, object] = {"comparison": dg.MetadataValue.md(md_table(table))}
        if reliability:
            meta["reliability"] = dg.MetadataValue.md(
                reliability_markdown(reliability, f"calibration on the {day} holdout")
            )
        for r in rows:
            for k in ("auc", "log_loss", "ndcg_at_10", "recall_at_10", "ece"):
                if _finite(r[k]) is not None:
                    meta[f"{r['role']}_{k}"] = dg.MetadataValue.float(float(r[k]))
        return dg.MaterializeResult(metadata=meta)

    return materialize_days(context, build)


# Scores kept per day and role for the score-drift check: enough for PSI deciles and KS.
SCORE_SAMPLE_SIZE = 20_000


def _score_sample(day: dt.date, role: str, version: str, scores: object) -> pd.DataFrame:
    values = np.asarray(scores, dtype=float)
    if len(values) > SCORE_SAMPLE_SIZE:
        # Seeded by the day: re-materialising keeps the same sample.
        rng = np.random.default_rng(day.toordinal())
        values = values[np.sort(rng.choice(len(values), SCORE_SAMPLE_SIZE, replace=False))]
    return pd.DataFrame({"dt": day, "role": role, "model_version": version, "score": values})


def _finite(x: object) -> float | None:
    if x is None:
        return None
    x = float(x)  # type: ignore[arg-type]
    return None if x != x or x in (float("inf"), float("-inf")) else x


def _latency(wh: Warehouse, exp: Experiment, day: dt.date, n: int) -> tuple | None:
    """Per-request latency of both arms on the day: as served (the ranking service's request
    log) when each arm served at least ``n`` requests, else the models replayed on ``n`` of the
    day's requests. Returns (champion ms, challenger ms, source) or None (cold-start champion:
    no model to compare with)."""
    if exp.champion is None:
        return None
    with wh.begin() as conn:
        served = wh.query_df(
            conn,
            load_sql("experiments/served_latency"),
            dt=day,
            experiment_id=exp.experiment_id,
            champion=exp.champion,
            challenger=exp.challenger,
            per_arm=100_000,
        )
    arms = [served.loc[served["variant"] == v, "latency_ms"].to_numpy(float) for v in VARIANTS]
    if all(len(a) >= n for a in arms):
        return arms[0], arms[1], "served"
    with wh.begin() as conn:
        champion = registry.get_model(conn, exp.champion)
        challenger = registry.get_model(conn, exp.challenger)
    if champion is None or challenger is None:
        return None
    frame = replay_frame(wh, day, n)
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


@dg.asset(
    **daily_asset("evaluation", {"python"}),
    deps=[accepted_events, offline_evaluation, served_requests],
    description=(
        "The daily look at the champion-vs-challenger experiment that served the day: per-user "
        "purchase rate (CUPED), CTR and revenue, sample-ratio check, guardrails, always-valid "
        "intervals, and the verdict."
    ),
)
def online_evaluation(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    policy = flywheel.experiment_policy()

    def build(day: dt.date) -> dg.MaterializeResult | dict[str, object]:
        wh = warehouse.get()
        with wh.begin() as conn:
            exp = registry.experiment_serving_on(conn, day)
            wh.run(conn, "experiments/delete_results", dt=day)
        if exp is None:
            return {"experiment": "none running", "verdict": "no_experiment"}
        with wh.begin() as conn:
            users = wh.query_df(
                conn,
                load_sql("experiments/user_metrics"),
                start_dt=exp.start_dt,
                end_dt=day,
                challenger=exp.challenger,
                champion=exp.champion_version,
                pre_start_dt=exp.start_dt - dt.timedelta(days=policy.pre_days),
            )
        latency = _latency(wh, exp, day, policy.latency_requests)
        analysis = analyse(exp, users, day, policy, latency)
        now = utcnow()
        with wh.begin() as conn:
            for r in analysis.results:
                wh.run(
                    conn,
                    "experiments/insert_result",
                    experiment_id=exp.experiment_id,
                    dt=day,
                    look=analysis.look,
                    **{k: v for k, v in r.__dict__.items()},
                    at=now,
                )
            wh.run(
                conn,
                "experiments/insert_result",
                experiment_id=exp.experiment_id,
                dt=day,
                look=analysis.look,
                metric="verdict",
                kind="verdict",
                outcome=analysis.verdict,
                note=analysis.reason,
                **dict.fromkeys(
                    ["control_mean", "treatment_mean", "effect", "ci_low", "ci_high", "p_value",
                     "p_adjusted", "n_control", "n_treatment", "margin"]
                ),
                at=now,
            )  # fmt: skip
            history = wh.query_df(
                conn, load_sql("experiments/results"), experiment_id=exp.experiment_id
            )
        return _online_metadata(exp, analysis, history)

    return materialize_days(context, build)


def _online_metadata(exp: Experiment, a: Analysis, history: pd.DataFrame) -> dict[str, object]:
    table = a.table()[
        ["metric", "kind", "outcome", "control_mean", "treatment_mean", "effect", "ci_low",
         "ci_high", "p_adjusted", "n_control", "n_treatment", "margin"]
    ]  # fmt: skip
    meta: dict[str, object] = {
        "experiment": exp.experiment_id,
        "challenger": exp.challenger,
        "champion": exp.champion_version,
        "look": a.look,
        "verdict": a.verdict,
        "reason": a.reason,
        "results": dg.MetadataValue.md(md_table(table)),
    }
    primary = next((r for r in a.results if r.metric == "purchase_rate"), None)
    if primary is not None and primary.effect is not None:
        meta["primary_effect"] = dg.MetadataValue.float(primary.effect)
        meta["users_champion"] = dg.MetadataValue.int(int(primary.n_control or 0))
        meta["users_challenger"] = dg.MetadataValue.int(int(primary.n_treatment or 0))
    looks = history[history["metric"] == "purchase_rate"].dropna(subset=["ci_low", "ci_high"])
    if not looks.empty:
        meta["effect_over_days"] = dg.MetadataValue.md(
            effect_over_looks_markdown(looks, f"purchase rate effect, {exp.experiment_id}")
        )
    return meta
