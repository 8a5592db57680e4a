"""Promotion: the day's decision and what serves next.

Day D: ``promotion_decision`` concludes the experiment that served D by its look (promote,
reject, or continue) and, when none is running, starts one for a challenger that passed the
offline gate, serving from D + 1. The decision is ``evaluation.promotion.decide``, a pure
function; the asset reads its inputs and applies it through the registry, in one transaction.
"""

import datetime as dt

import dagster as dg
import pandas as pd

from flywheel_assets import registry
from flywheel_assets.defs.common import daily_asset, materialize_days, md_table, utcnow
from flywheel_assets.defs.evaluation.assets import (
    ab_results_table,
    offline_evaluation,
    online_evaluation,
)
from flywheel_assets.defs.resources import (
    ExperimentsConfig,
    FeaturesConfig,
    IngestionConfig,
    PathsConfig,
    QualityConfig,
    TrainingConfig,
    WarehouseResource,
    recorded_settings,
)
from flywheel_assets.evaluation.promotion import (
    GateParameters,
    PromotionDecision,
    decide,
    frozen_reason,
    planning_window,
)
from flywheel_assets.platform.governance import record_configuration
from flywheel_assets.serving.pointer import publish_serving_pointer

DECIDER = registry.DECIDER


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
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    experiments: ExperimentsConfig,
    # Not used to decide: recorded in the audit trail, since they shape what is decided on.
    ingestion: IngestionConfig,
    quality: QualityConfig,
    features: FeaturesConfig,
    training: TrainingConfig,
) -> dg.MaterializeResult:
    settings = experiments.settings()
    policy = settings.policy()
    gate = GateParameters(settings.min_log_loss_gain, settings.max_ndcg_drop)
    recorded = recorded_settings(ingestion, quality, features, training, experiments)

    def build(day: dt.date) -> dict[str, object]:
        now = utcnow()
        # One transaction: the replay's undo, the inputs, and what the decision changes.
        with warehouse.get().begin() as conn:
            if record_configuration(conn, recorded, actor=DECIDER):
                context.log.info("the cycle's settings changed: recorded in the audit log")
            state = registry.decision_state(conn, day)
            frozen = frozen_reason(day, state)
            if frozen is not None:
                context.log.warning(frozen)
            else:
                # Replay the day: undo what its earlier decision did, then decide again.
                registry.undo_decided_on(conn, day)
            running = None if frozen else registry.open_experiment(conn)
            evals = registry.evaluations_for_day(conn, day)
            decision = decide(
                day,
                offline=evals.to_dict(orient="records"),
                running=running,
                look=registry.recorded_look(conn, running.experiment_id, day) if running else None,
                state=state,
                gate=gate,
                policy=policy,
                daily_users=registry.users_per_day(conn, *planning_window(day)),
            )
            registry.apply_decision(conn, day, decision, now=now)
        return _decision_metadata(decision, evals)

    return materialize_days(context, build)


def _offline_note(d: PromotionDecision, evals: pd.DataFrame) -> str:
    """Say whose offline evaluation the table is when it is not the decision's challenger: a
    day inside an experiment evaluates its own candidate, while the decision judges the
    experiment's challenger online."""
    if evals.empty or not d.challenger:
        return ""
    candidates = sorted(set(evals.loc[evals["role"] == "challenger", "model_version"]))
    if not candidates or d.challenger in candidates:
        return ""
    return (
        f"_The day's candidate {', '.join(candidates)}, evaluated offline. This decision is about "
        f"{d.challenger}, the experiment's challenger, judged online (`online`)._\n\n"
    )


def _decision_metadata(d: PromotionDecision, evals: pd.DataFrame) -> dict[str, object]:
    meta: dict[str, object] = {
        "decision": d.decision,
        "reason": d.reason,
        "challenger": str(d.challenger),
        "champion_before": str(d.champion_before),
        "champion_after": str(d.champion_after),
        "experiment": str(d.experiment_id),
        "offline": dg.MetadataValue.md(_offline_note(d, evals) + md_table(evals)),
    }
    if d.started_experiment:
        meta["started_experiment"] = d.started_experiment
    if "online" in d.evidence:
        online = pd.DataFrame(d.evidence["online"])  # type: ignore[arg-type]
        meta["online"] = dg.MetadataValue.md(md_table(ab_results_table(online)))
    return meta


@dg.asset(
    **daily_asset("promotion", {"python"}),
    deps=[promotion_decision],
    description=(
        "What serves the next day: the champion, and the experiment's challenger for its share "
        "of users, published to FLYWHEEL_HOME/serving/champion.json for the serving side."
    ),
)
def champion_model(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, paths: PathsConfig
) -> dg.MaterializeResult:
    pointer = publish_serving_pointer(warehouse.get(), paths.paths().home, context.partition_key)
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
