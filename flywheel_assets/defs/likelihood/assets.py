"""Purchase likelihood: the backtest that decides, the champion model, and the day's
probabilities per user (docs/likelihood.md).

The work is in ``flywheel_assets.likelihood.daily``; the assets read the settings, call it and
report. They run in their own job, ``likelihood_cycle``, after the flywheel's day.
"""

import datetime as dt
import getpass
import json

import dagster as dg
import pandas as pd

from flywheel_assets.defs.common import (
    check_days,
    daily_asset,
    materialize_days,
    md_table,
    utcnow,
)
from flywheel_assets.defs.ingestion.assets import orders, users
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.resources import LikelihoodConfig, PathsConfig, WarehouseResource
from flywheel_assets.likelihood import daily
from flywheel_assets.likelihood.backtest import RFM
from flywheel_assets.platform.plots import gains_markdown, reliability_markdown

_LIKELIHOOD = daily_asset("likelihood", {"xgboost", "python"})
_SCORES = ["horizon_days", "model", "days", "rows", "base_rate", "auc", "log_loss", "ece",
           "lift_top10"]  # fmt: skip


def model_page(summary: pd.DataFrame, model: str, day: dt.date) -> dict[str, object]:
    """The serving model's figures beside RFM's on the held-out days: a table, the
    reliability plot and the cumulative gains chart of each horizon."""
    rows = summary[summary["model"].isin([model, RFM])].sort_values(["horizon_days", "model"])
    out: dict[str, object] = {"scores": dg.MetadataValue.md(md_table(rows[_SCORES]))}
    for h, g in rows.groupby("horizon_days"):
        mine = g[g["model"] == model].iloc[0]
        reliability = pd.DataFrame(json.loads(mine["reliability_json"]))
        curves = {
            str(r["model"]): pd.DataFrame(json.loads(r["gains_json"]))
            for _, r in g.iterrows()
            if r["gains_json"]
        }
        out[f"reliability_{h}d"] = dg.MetadataValue.md(
            reliability_markdown({model: reliability}, f"{day}: {h}-day reliability")
        )
        out[f"gains_{h}d"] = dg.MetadataValue.md(
            gains_markdown(curves, f"{day}: {h}-day cumulative gains")
        )
        out[f"ece_{h}d"] = dg.MetadataValue.float(float(mine["ece"]))
        rfm = g[g["model"] == RFM].iloc[0]
        out[f"lift_top10_{h}d_vs_rfm"] = dg.MetadataValue.float(
            float(mine["lift_top10"] / rfm["lift_top10"])
        )
    return out


@dg.asset(
    **_LIKELIHOOD,
    deps=[accepted_events, orders, users],
    description=(
        "The challenger's and the champion's purchase-likelihood specifications, each fitted "
        "as of each held-out day and scored on what its users then did (AUC, log loss, ECE, "
        "lift at the top 10%), beside the RFM baseline on the same users and days. Decides "
        "which specification serves next."
    ),
)
def likelihood_backtest(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, likelihood: LikelihoodConfig
) -> dg.MaterializeResult:
    settings = likelihood.settings()

    def build(day: dt.date) -> dict[str, object]:
        wh = warehouse.get()
        try:
            outcome = daily.run_backtest(wh, day, settings)
        except daily.NotEnoughHistory as exc:
            context.log.warning(str(exc))
            with wh.begin() as conn:
                wh.delete_partition(conn, "likelihood_backtest", day)
            return {"backtested": False, "reason": str(exc)}
        daily.write_backtest(wh, day, outcome)
        return {
            "backtested": True,
            "dagster/row_count": dg.MetadataValue.int(len(outcome.summary)),
            "held_out_users": dg.MetadataValue.int(len(outcome.rows)),
            "winner": outcome.winner,
            "reason": outcome.reason,
            **model_page(outcome.summary, outcome.winner, day),
        }

    return materialize_days(context, build)


@dg.asset_check(
    asset=likelihood_backtest,
    blocking=True,
    pool=_LIKELIHOOD["pool"],
    description=(
        "The specification that would serve next is calibrated on the held-out days: its "
        "expected calibration error is within FLYWHEEL_LIKELIHOOD_MAX_ECE at every horizon; "
        "otherwise nothing is fitted or published for the day."
    ),
)
def likelihood_calibrated(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    likelihood: LikelihoodConfig,
) -> dg.AssetCheckResult:
    bound = likelihood.settings().max_ece

    def check(day: dt.date) -> dg.AssetCheckResult:
        summary = daily.read_backtest(warehouse.get(), day)
        if summary.empty:
            return dg.AssetCheckResult(
                passed=True, description=f"{day}: no backtest (not enough history yet)"
            )
        winner, reason = daily.decide_from_table(summary, bound)
        ece = summary[summary["model"] == winner].set_index("horizon_days")["ece"]
        worst = float(ece.max())
        return dg.AssetCheckResult(
            passed=bool(worst <= bound),
            description=(
                f"{winner}: ECE {', '.join(f'{h} d {v:.4f}' for h, v in ece.items())} "
                f"(bound {bound})" + ("" if worst <= bound else ": not published")
            ),
            metadata={"winner": winner, "reason": reason, "worst_ece": worst},
        )

    return check_days(context, check)


@dg.asset(
    **_LIKELIHOOD,
    deps=[likelihood_backtest],
    description=(
        "The winning purchase-likelihood specification fitted as of the day, registered with "
        "its lineage and held-out figures (likelihood_models) and made the "
        "purchase_likelihood_champion (every move in alias_history and the audit trail). Its "
        "page shows the reliability plot and the cumulative gains beside RFM."
    ),
)
def purchase_likelihood_model(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    paths: PathsConfig,
    likelihood: LikelihoodConfig,
) -> dg.MaterializeResult:
    from flywheel_assets.training.daily import code_version

    settings = likelihood.settings()

    def build(day: dt.date) -> dict[str, object]:
        wh = warehouse.get()
        summary = daily.read_backtest(wh, day)
        if summary.empty:
            return {"fitted": False, "reason": "no backtest for the day (not enough history)"}
        winner, reason = daily.decide_from_table(summary, settings.max_ece)
        version, moved, lineage = daily.fit_champion(
            wh,
            day,
            settings,
            winner=winner,
            reason=reason,
            metrics=daily.held_out_metrics(summary, winner),
            models_dir=paths.paths().models_dir,
            code_version=code_version(),
            actor=f"dagster:{getpass.getuser()}",
            now=utcnow(),
        )
        return {
            "fitted": True,
            "model_version": version,
            "alias_moved": moved,
            "reason": reason,
            "lineage": dg.MetadataValue.json(lineage.get("horizons", {})),
            **model_page(summary, winner, day),
        }

    return materialize_days(context, build)


@dg.asset(
    **_LIKELIHOOD,
    deps=[purchase_likelihood_model],
    description=(
        "The champion's probability that each user active in the last 90 days buys anything "
        "in the next 7 and the next 30 days, with the decile of p_30d (purchase_likelihood)."
    ),
)
def purchase_likelihood(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, likelihood: LikelihoodConfig
) -> dg.MaterializeResult:
    settings = likelihood.settings()

    def build(day: dt.date) -> dict[str, object]:
        try:
            rows = daily.score_day(warehouse.get(), day, settings)
        except LookupError as exc:
            context.log.warning(str(exc))
            return {"scored": False, "reason": str(exc)}
        by_decile = rows.groupby("decile", as_index=False).agg(
            users=("user_id", "size"), p_7d=("p_7d", "mean"), p_30d=("p_30d", "mean")
        )
        return {
            "scored": True,
            "dagster/row_count": dg.MetadataValue.int(len(rows)),
            "model_version": str(rows["model_version"].iloc[0]) if len(rows) else "",
            "expected_buyers_7d": dg.MetadataValue.float(float(rows["p_7d"].sum())),
            "expected_buyers_30d": dg.MetadataValue.float(float(rows["p_30d"].sum())),
            "by_decile": dg.MetadataValue.md(md_table(by_decile.round(4))),
        }

    return materialize_days(context, build)


LIKELIHOOD_ASSETS = [likelihood_backtest, purchase_likelihood_model, purchase_likelihood]
