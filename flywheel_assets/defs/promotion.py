"""Evaluation and promotion: the offline gate, the online experiment, the decision, serving.

Day D: ``offline_evaluation`` compares D's challenger with the champion on D's holdout;
``online_evaluation`` takes the daily look at the experiment that served D; the
``promotion_decision`` concludes that experiment (promote, reject, or continue) and, when none
is running, starts one for a challenger that passed the offline gate, serving from D + 1.
"""

import datetime as dt
import json
import os
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from flywheel_assets import registry
from flywheel_assets.defs.common import daily_asset, materialize_days, md_table, utcnow
from flywheel_assets.defs.quality import accepted_events
from flywheel_assets.defs.resources import FlywheelConfig, WarehouseResource
from flywheel_assets.defs.serving import served_requests
from flywheel_assets.defs.training import challenger_model
from flywheel_assets.evaluation.experiments import (
    VARIANTS,
    Analysis,
    Experiment,
    analyse,
    planned_n,
    replay_latency,
)
from flywheel_assets.evaluation.offline import (
    OfflineMetrics,
    calibration,
    offline_metrics,
    promotion_rule,
)
from flywheel_assets.features.store import replay_frame, training_frame
from flywheel_assets.platform.governance import record_configuration
from flywheel_assets.platform.plots import effect_over_looks_markdown, reliability_markdown
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.training.model import LABELS, predict

DECIDER = "promotion_decision"


def champion_for_day(wh: Warehouse, conn: object, day: dt.date) -> str | None:
    """Who was champion when day ``day`` was decided: for the newest day the alias as it is now
    (rollbacks included); for a day already decided, or older, what the records say."""
    decided = wh.query_df(conn, load_sql("registry/get_decision"), dt=day)
    if not decided.empty:
        before = decided.iloc[0]["champion_before"]
        return before if isinstance(before, str) else None
    later = wh.query_df(conn, load_sql("registry/latest_decision_after"), dt=day)
    if later.empty:
        return registry.get_alias(conn, registry.CHAMPION)
    value = wh.scalar(conn, load_sql("registry/champion_before"), dt=day)
    return None if value is None else str(value)


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
            champion_version = champion_for_day(wh, conn, day)
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


def _metrics(df: pd.DataFrame, role: str) -> OfflineMetrics | None:
    sub = df[df["role"] == role]
    if sub.empty:
        return None
    r = sub.iloc[0]

    def num(v: object) -> float:
        return float("nan") if v is None or pd.isna(v) else float(v)  # type: ignore[arg-type]

    return OfflineMetrics(
        int(r["n_rows"]),
        num(r["auc"]),
        num(r["log_loss"]),
        num(r["ndcg_at_10"]),
        num(r.get("recall_at_10")),
        num(r.get("ece")),
    )


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


@dg.asset(
    **daily_asset("promotion", {"python"}),
    deps=[offline_evaluation, online_evaluation],
    description=(
        "The day's decision. The running experiment is concluded by its verdict (promote, "
        "reject, or continue); with none running, a challenger that passes the offline gate "
        "starts one from the next day. Every decision and its evidence are recorded; every "
        "alias move is kept in alias_history."
    ),
)
def promotion_decision(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    policy = flywheel.experiment_policy()

    def build(day: dt.date) -> dg.MaterializeResult | dict[str, object]:
        wh = warehouse.get()
        now = utcnow()
        with wh.begin() as conn:
            if record_configuration(conn, flywheel.effective_settings(), actor=DECIDER):
                context.log.info("the cycle's settings changed: recorded in the audit log")
            before = champion_for_day(wh, conn, day)
            later = wh.query_df(conn, load_sql("registry/latest_decision_after"), dt=day)
            previous = wh.query_df(conn, load_sql("registry/get_decision"), dt=day)
            frozen = not later.empty
            if frozen:
                # A later day has decided already: re-deciding an old day must not move the
                # champion or the experiments backwards in time; the record is refreshed only.
                context.log.warning(f"a decision for {later.iloc[0]['dt']} exists: left as is")
            elif not previous.empty and wh.scalar(
                conn, load_sql("registry/manual_moves_after"), at=previous.iloc[0]["decided_at"]
            ):
                frozen = True
                context.log.warning(f"the champion was moved by hand after {day} was decided")
            if not frozen:
                # Replay the day: undo what its earlier decision did, then decide again.
                wh.run(conn, "experiments/delete_created_on", dt=day)
                wh.run(conn, "experiments/reopen_ended_on", dt=day)
            evals = wh.query_df(conn, load_sql("registry/evaluations_for_day"), dt=day)
            verdict = wh.query_df(conn, load_sql("experiments/results_for_day"), dt=day)
            verdict = verdict[verdict["kind"] == "verdict"]
            running = registry.open_experiment(conn) if not frozen else None
            decision, reason, after = "continue", "", before
            challenger_version: str | None = None
            experiment_id: str | None = None
            evidence: dict[str, object] = {"offline": evals.to_dict(orient="records")}
            if running is not None:
                verdict = verdict[verdict["experiment_id"] == running.experiment_id]
            if running is not None and running.start_dt <= day and not verdict.empty:
                v = verdict.iloc[0]
                experiment_id, challenger_version = running.experiment_id, running.challenger
                evidence["online"] = json.loads(_results_json(wh, conn, running.experiment_id, day))
                reason = str(v["note"])
                if v["outcome"] == "promote":
                    decision, after = "promote", running.challenger
                    status = "promoted"
                elif v["outcome"] in ("reject", "invalid"):
                    decision, status = (
                        "reject",
                        ("invalid" if v["outcome"] == "invalid" else "rejected"),
                    )
                else:
                    status = None
                if status is not None:
                    registry.end_experiment(
                        conn, running.experiment_id, status=status, end_dt=day, reason=reason
                    )
                    running = None
            elif running is not None:
                experiment_id, challenger_version = running.experiment_id, running.challenger
                reason = (
                    f"experiment {running.experiment_id} starts serving on {running.start_dt}"
                    if running.start_dt > day
                    else f"experiment {running.experiment_id} has no look recorded for {day}"
                )
            # With no experiment running, the day's challenger may start one.
            day_challenger = evals.loc[evals["role"] == "challenger", "model_version"]
            gate = promotion_rule(
                _metrics(evals, "challenger"),
                _metrics(evals, "champion"),
                min_log_loss_gain=flywheel.min_log_loss_gain,
                max_ndcg_drop=flywheel.max_ndcg_drop,
            )
            evidence["offline_gate"] = {"decision": gate.decision, "reason": gate.reason}
            gated_against = evals.loc[evals["role"] == "champion", "model_version"]
            gated_against = None if gated_against.empty else str(gated_against.iloc[0])
            new_id = None
            if frozen or running is not None:
                pass
            elif day_challenger.empty or gate.decision == "no_challenger":
                if decision == "continue":
                    decision, reason = "no_challenger", gate.reason
            elif gate.decision != "promote":
                if decision == "continue":
                    decision, challenger_version = "offline_reject", str(day_challenger.iloc[0])
                    reason = f"offline gate: {gate.reason}"
            elif gated_against != after:
                reason += (
                    f"{'; ' if reason else ''}challenger {day_challenger.iloc[0]} was gated "
                    f"against {gated_against or 'the cold-start policy'}, not the new champion: "
                    "the next day's challenger will be"
                )
            else:
                exp = _new_experiment(wh, conn, str(day_challenger.iloc[0]), after, day, policy)
                registry.start_experiment(conn, exp, now=now)
                new_id = exp.experiment_id
                evidence["started_experiment"] = exp.experiment_id
                started = (
                    f"experiment {exp.experiment_id} starts on {exp.start_dt}: "
                    f"{exp.traffic_share:.0%} of users to {exp.challenger} ({gate.reason})"
                )
                if decision == "continue":
                    decision, challenger_version, experiment_id = (
                        "experiment",
                        exp.challenger,
                        exp.experiment_id,
                    )
                    reason = started
                else:
                    reason = f"{reason}; {started}"
            if not frozen:
                # The alias follows the decision; a no-op unless it changed (or a replay of the
                # day decided otherwise than its first run).
                _move(conn, registry.CHAMPION, after, f"{day}: {reason}", now, day)
            if frozen and not previous.empty:
                p = previous.iloc[0]
                decision, reason = str(p["decision"]), str(p["reason"])
                after = p["champion_after"] if isinstance(p["champion_after"], str) else None
                challenger_version = p["challenger"] if isinstance(p["challenger"], str) else None
                experiment_id = p["experiment_id"] if isinstance(p["experiment_id"], str) else None
            wh.run(conn, "registry/delete_decision", dt=day)
            wh.run(
                conn,
                "registry/insert_decision",
                dt=day,
                challenger=challenger_version,
                champion_before=before,
                champion_after=after,
                decision=decision,
                reason=reason,
                at=now,
                experiment_id=experiment_id,
                evidence_json=json.dumps(evidence, default=str, sort_keys=True),
            )
        meta: dict[str, object] = {
            "decision": decision,
            "reason": reason,
            "challenger": str(challenger_version),
            "champion_before": str(before),
            "champion_after": str(after),
            "experiment": str(experiment_id),
            "offline": dg.MetadataValue.md(md_table(evals)),
        }
        if new_id:
            meta["started_experiment"] = new_id
        if "online" in evidence:
            online = pd.DataFrame(evidence["online"])  # type: ignore[arg-type]
            meta["online"] = dg.MetadataValue.md(md_table(online))
        return dg.MaterializeResult(metadata=meta)

    return materialize_days(context, build)


def _results_json(wh: Warehouse, conn: object, experiment_id: str, day: dt.date) -> str:
    df = wh.query_df(conn, load_sql("experiments/results_for_day"), dt=day)
    df = df[(df["experiment_id"] == experiment_id) & (df["kind"] != "verdict")]
    cols = ["metric", "kind", "outcome", "control_mean", "treatment_mean", "effect", "ci_low",
            "ci_high", "p_value", "p_adjusted", "n_control", "n_treatment", "margin"]  # fmt: skip
    return df[cols].to_json(orient="records")


def _move(conn: object, alias: str, to: str | None, reason: str, now: dt.datetime, day: dt.date):
    registry.move_alias(conn, alias, to, actor=DECIDER, reason=reason, now=now, day=day)


def _new_experiment(
    wh: Warehouse, conn: object, challenger: str, champion: str | None, day: dt.date, policy
) -> Experiment:
    users = wh.query_df(
        conn,
        load_sql("experiments/daily_users"),
        start_dt=day - dt.timedelta(days=6),
        end_dt=day,
    )
    return Experiment(
        # One experiment can start per decision day; replaying the day replaces it.
        experiment_id=f"exp-{day:%Y%m%d}",
        challenger=challenger,
        champion=champion,
        traffic_share=policy.traffic_share,
        created_dt=day,
        start_dt=day + dt.timedelta(days=1),
        max_days=policy.max_days,
        planned_n=planned_n([int(u) for u in users["users"]], policy),
        alpha=policy.alpha,
    )


def publish_serving_pointer(wh: Warehouse, home: Path, published_for: str) -> dict[str, object]:
    """Write FLYWHEEL_HOME/serving/champion.json: the champion, and the running experiment's
    challenger with its share, for the serving side. Write-then-rename: a reader never sees a
    half-written pointer."""
    with wh.begin() as conn:
        version = registry.get_alias(conn, registry.CHAMPION)
        record = registry.get_model(conn, version) if version else None
        exp = registry.open_experiment(conn)
        challenger = registry.get_model(conn, exp.challenger) if exp else None
    pointer = {
        "model_version": version,
        "artefact_uri": record.artefact_uri if record else None,
        "sha256": record.sha256 if record else None,
        "training_partitions": record.training_partitions if record else [],
        # what the ranking service needs to build the model's input (flywheel serve)
        "feature_schema": json.loads(record.schema.to_json()) if record else None,
        "experiment": None
        if exp is None or challenger is None
        else {
            "experiment_id": exp.experiment_id,
            "start_dt": exp.start_dt.isoformat(),
            "traffic_share": exp.traffic_share,
            "model_version": challenger.model_version,
            "artefact_uri": challenger.artefact_uri,
            "sha256": challenger.sha256,
            "feature_schema": json.loads(challenger.schema.to_json()),
        },
        "published_for": published_for,
    }
    serving_dir = home / "serving"
    serving_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=serving_dir, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(pointer, fh, indent=2)
    os.replace(tmp, serving_dir / "champion.json")
    return pointer


@dg.asset(
    **daily_asset("promotion", {"python"}),
    deps=[promotion_decision],
    description=(
        "What serves the next day: the champion, and the experiment's challenger for its share "
        "of users, published to FLYWHEEL_HOME/serving/champion.json for the serving side."
    ),
)
def champion_model(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    pointer = publish_serving_pointer(warehouse.get(), flywheel.paths().home, context.partition_key)
    exp = pointer["experiment"]
    return dg.MaterializeResult(
        metadata={
            "model_version": str(pointer["model_version"]),
            "artefact_uri": str(pointer["artefact_uri"]),
            "training_partitions": ", ".join(pointer["training_partitions"]),  # type: ignore[arg-type]
            "challenger": "none" if exp is None else str(exp["model_version"]),  # type: ignore[index]
            "challenger_share": 0.0 if exp is None else float(exp["traffic_share"]),  # type: ignore[index]
        }
    )


class RollbackConfig(dg.Config):
    reason: str
    to_version: str | None = None
    to_cold_start: bool = False
    actor: str | None = None


@dg.op(
    description="Restore an earlier champion (config: to_version or the previous one; reason).",
    required_resource_keys={"warehouse", "flywheel"},
)
def rollback_op(context: dg.OpExecutionContext, config: RollbackConfig) -> None:
    wh = context.resources.warehouse.get()
    with wh.begin() as conn:
        before, after = registry.rollback(
            conn,
            to_version=config.to_version,
            to_cold_start=config.to_cold_start,
            reason=config.reason,
            actor=config.actor or f"dagster run {context.run_id}",
            now=utcnow(),
        )
    pointer = publish_serving_pointer(wh, context.resources.flywheel.paths().home, "rollback")
    context.log.info(
        f"champion rolled back: {before} -> {after}; serving: {pointer['model_version']}"
    )


@dg.job(description="Roll the champion back to an earlier version (recorded with who and why).")
def rollback_job() -> None:
    rollback_op()
