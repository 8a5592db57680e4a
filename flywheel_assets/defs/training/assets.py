"""Training: the day's labelled examples and an XGBoost challenger registered with lineage.

The work is in ``flywheel_assets.training.daily``; the assets read the settings, call it and
report what it returns.
"""

import datetime as dt
import getpass

import dagster as dg
import pandas as pd

from flywheel_assets.defs.common import daily_asset, materialize_days, md_table
from flywheel_assets.defs.features.assets import FEATURE_ASSETS
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.resources import PathsConfig, TrainingConfig, WarehouseResource
from flywheel_assets.platform.plots import importance_markdown
from flywheel_assets.training.daily import (
    Challenger,
    NoChallenger,
    build_training_examples,
    train_and_register,
)

previous_day = dg.TimeWindowPartitionMapping(
    start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True
)


@dg.asset(
    **daily_asset("training", {"sql", "duckdb"}),
    deps=[
        accepted_events,
        *[dg.AssetDep(a, partition_mapping=previous_day) for a in FEATURE_ASSETS],
    ],
    description=(
        "One row per logged impression of the day, labelled with click and purchase, carrying "
        "the logging policy's propensity, model version and variant, and the feature snapshot "
        "(the day before) it may use."
    ),
)
def training_examples(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, training: TrainingConfig
) -> dg.MaterializeResult:
    hours = training.settings().label_window_hours

    def build(day: dt.date) -> dict[str, object]:
        s = build_training_examples(warehouse.get(), day, hours)
        return {
            "dagster/row_count": dg.MetadataValue.int(s.rows),
            "clicks": dg.MetadataValue.int(s.clicks),
            "purchases": dg.MetadataValue.int(s.purchases),
            "ctr": dg.MetadataValue.float(s.ctr),
        }

    return materialize_days(context, build)


@dg.asset(
    **daily_asset("training", {"xgboost", "python"}),
    deps=[training_examples],
    description=(
        "An XGBoost challenger trained on the training window ending this day (the day's last "
        "hours held out for evaluation), registered with parameters, metrics, features and the "
        "exact partitions it saw."
    ),
)
def challenger_model(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    paths: PathsConfig,
    training: TrainingConfig,
) -> dg.MaterializeResult:
    settings = training.settings()

    def build(day: dt.date) -> dict[str, object]:
        outcome = train_and_register(
            warehouse.get(),
            day,
            lambda base: settings.spec(day, base),
            paths.paths().models_dir,
            warm_start=settings.warm_start,
            scheduler=settings.dask_scheduler,
            created_by=f"dagster:{getpass.getuser()}",
        )
        if isinstance(outcome, NoChallenger):
            context.log.warning(outcome.message)
            return {"trained": False, "reason": outcome.reason}
        return challenger_metadata(outcome)

    return materialize_days(context, build)


def challenger_metadata(c: Challenger) -> dict[str, object]:
    """The registered challenger as UI metadata: version, lineage, importance, validation."""
    model, fitted = c.model, c.fitted
    gain = model.booster.get_score(importance_type="total_gain")
    rows = fitted.partition_rows
    lineage = pd.DataFrame({"partition": list(rows), "rows": rows.values()})
    meta: dict[str, object] = {
        "trained": True,
        "model_version": c.model_version,
        "newly_registered": c.newly_registered,
        "sha256": c.sha256,
        "artefact_uri": c.artefact_uri,
        "bias_correction": c.spec.bias_correction,
        "trained_on": fitted.trained_on,
        "warm_start_from": c.base_model_version or "none (full retrain)",
        "train_rows": dg.MetadataValue.int(model.n_train_rows),
        "valid_rows": dg.MetadataValue.int(model.n_valid_rows),
        "train_seconds": dg.MetadataValue.float(fitted.train_seconds),
        "training_partitions": dg.MetadataValue.md(md_table(lineage)),
        "best_iteration": dg.MetadataValue.int(model.best_iteration),
        "feature_importance": dg.MetadataValue.md(
            importance_markdown(gain, f"{c.model_version}: feature importance (total gain)")
        ),
    }
    if c.valid_metrics:
        meta.update(
            {
                f"valid_{k}": dg.MetadataValue.float(float(v))
                for k, v in c.valid_metrics.as_dict().items()
                if k != "n_rows"
            }
        )
    return meta
