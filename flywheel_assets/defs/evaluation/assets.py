"""Evaluation: the offline gate's evidence and the daily look at the running experiment.

Day D: ``offline_evaluation`` compares D's challenger with the champion on D's holdout;
``online_evaluation`` takes the daily look at the experiment that served D. The work is in
``evaluation.holdout`` and ``evaluation.online``; the assets report it.
"""

import datetime as dt

import dagster as dg
import pandas as pd

from flywheel_assets.defs.common import daily_asset, materialize_days, md_table, utcnow
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.resources import ExperimentsConfig, WarehouseResource
from flywheel_assets.defs.serving.assets import served_requests
from flywheel_assets.defs.training.assets import challenger_model
from flywheel_assets.evaluation.holdout import OfflineComparison, evaluate_offline
from flywheel_assets.evaluation.online import DailyLook, look_at_experiment
from flywheel_assets.platform.plots import effect_over_looks_markdown, reliability_markdown
from flywheel_assets.registry.evaluations import METRICS, finite


@dg.asset(
    **daily_asset("evaluation", {"python"}),
    deps=[challenger_model],
    description=(
        "The offline gate's evidence: the day's challenger and the champion on the same "
        "time-based holdout (AUC, log loss, NDCG@10, calibration)."
    ),
)
def offline_evaluation(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    def build(day: dt.date) -> dict[str, object]:
        return _offline_metadata(day, evaluate_offline(warehouse.get(), day, now=utcnow()))

    return materialize_days(context, build)


def _offline_metadata(day: dt.date, result: OfflineComparison) -> dict[str, object]:
    table = pd.DataFrame(result.rows) if result.rows else pd.DataFrame()
    meta: dict[str, object] = {"comparison": dg.MetadataValue.md(md_table(table))}
    if result.reliability:
        meta["reliability"] = dg.MetadataValue.md(
            reliability_markdown(result.reliability, f"calibration on the {day} holdout")
        )
    for r in result.rows:
        for k in METRICS:
            value = finite(r[k])
            if value is not None:
                meta[f"{r['role']}_{k}"] = dg.MetadataValue.float(value)
    return meta


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
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, experiments: ExperimentsConfig
) -> dg.MaterializeResult:
    policy = experiments.settings().policy()

    def build(day: dt.date) -> dict[str, object]:
        look = look_at_experiment(warehouse.get(), day, policy, now=utcnow())
        if look is None:
            return {"experiment": "none running", "verdict": "no_experiment"}
        return _online_metadata(look)

    return materialize_days(context, build)


def ab_results_table(t: pd.DataFrame) -> pd.DataFrame:
    """The look's results as the UI shows them: six narrow columns, so the UI shows the table
    in place and nothing is cut off (the metric's prefix says its kind; a guardrail's margin is
    in its outcome; the effect carries its interval; the users per arm are the sample_ratio
    row's, and the users_champion and users_challenger metadata)."""

    def missing(*values: object) -> bool:
        return any(pd.isna(v) for v in values)  # type: ignore[arg-type]

    def outcome(o: object, margin: object) -> str:
        return str(o) if missing(margin) else f"{o} (margin {float(margin):.4g})"  # type: ignore[arg-type]

    def effect(e: object, low: object, high: object) -> str | None:
        if missing(e):
            return None
        text = f"{float(e):+.4f}"  # type: ignore[arg-type]
        if missing(low, high):
            return text
        return f"{text} [{float(low):+.3f}, {float(high):+.3f}]"  # type: ignore[arg-type]

    return pd.DataFrame(
        {
            "metric": t["metric"],
            "outcome": [outcome(o, m) for o, m in zip(t["outcome"], t["margin"], strict=True)],
            "champion": t["control_mean"],
            "challenger": t["treatment_mean"],
            "effect [always-valid 95% CI]": [
                effect(e, lo, hi)
                for e, lo, hi in zip(t["effect"], t["ci_low"], t["ci_high"], strict=True)
            ],
            "p (Holm)": t["p_adjusted"],
        }
    )


def _online_metadata(look: DailyLook) -> dict[str, object]:
    exp, a = look.experiment, look.analysis
    table = ab_results_table(a.table())
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
    history = look.history
    looks = history[history["metric"] == "purchase_rate"].dropna(subset=["ci_low", "ci_high"])
    if not looks.empty:
        meta["effect_over_days"] = dg.MetadataValue.md(
            effect_over_looks_markdown(looks, f"purchase rate effect, {exp.experiment_id}")
        )
    return meta
