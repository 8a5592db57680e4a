"""Evaluation and promotion: the offline gate, the online experiment, the decision, serving.

Day D: ``offline_evaluation`` compares D's challenger with the champion on D's holdout;
``online_evaluation`` takes the daily look at the experiment that served D; the
``promotion_decision`` concludes that experiment (promote, reject, or continue) and, when none
is running, starts one for a challenger that passed the offline gate, serving from D + 1.
"""

import datetime as dt
import json

import dagster as dg
import pandas as pd

from flywheel_assets import registry
from flywheel_assets.defs.common import daily_asset, materialize_days, md_table, utcnow
from flywheel_assets.defs.evaluation.assets import offline_evaluation, online_evaluation
from flywheel_assets.defs.resources import FlywheelConfig, WarehouseResource
from flywheel_assets.evaluation import (
    OfflineMetrics,
    promotion_rule,
)
from flywheel_assets.evaluation.experiments import (
    Experiment,
    planned_n,
)
from flywheel_assets.platform.governance import record_configuration
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.serving.pointer import publish_serving_pointer

DECIDER = "promotion_decision"


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
            before = registry.champion_for_day(conn, day)
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
