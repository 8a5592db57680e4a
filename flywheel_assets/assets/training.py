"""Training: the day's labelled examples and an XGBoost challenger registered with lineage."""

import datetime as dt
import getpass
import subprocess

import dagster as dg
import pandas as pd

from .. import registry
from ..evaluation import offline_metrics
from ..feature_store import training_frame
from ..resources import FlywheelConfig, WarehouseResource
from ..training import LABELS, model_bytes, predict, save_artefact, time_split, train_model
from ..warehouse import load_sql
from .common import WAREHOUSE_POOL, daily_asset, materialize_days, md_table, utcnow
from .features import FEATURE_ASSETS
from .quality import accepted_events, suite_check

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
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    def build(day: dt.date) -> dg.MaterializeResult | dict[str, object]:
        wh = warehouse.get()
        with wh.begin() as conn:
            wh.delete_partition(conn, "training_examples", day)
            wh.run(
                conn,
                "training/training_examples",
                dt=day,
                feature_dt=day - dt.timedelta(days=1),
                label_window_seconds=flywheel.label_window_hours * 3600.0,
            )
            summary = wh.query_df(
                conn, load_sql("training/training_examples_summary"), dt=day
            ).iloc[0]
        n, clicks, purchases = (int(summary[k]) for k in ("n_rows", "clicks", "purchases"))
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(n),
                "clicks": dg.MetadataValue.int(clicks),
                "purchases": dg.MetadataValue.int(purchases),
                "ctr": dg.MetadataValue.float(clicks / n if n else 0.0),
            }
        )

    return materialize_days(context, build)


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=training_examples,
    blocking=True,
    description="Great Expectations suite training_examples.",
)
def training_examples_suite(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    return suite_check(
        context, warehouse, "quality/training_examples_partition", "training_examples"
    )


def _code_version() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


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
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    def build(day: dt.date) -> dg.MaterializeResult | dict[str, object]:
        wh = warehouse.get()
        start = day - dt.timedelta(days=flywheel.training_window_days - 1)
        frame = training_frame(wh, start, day)
        today = frame[frame["dt"] == day]
        _, holdout = time_split(today, flywheel.holdout_fraction)
        holdout_cutoff = holdout["event_time"].min() if not holdout.empty else None
        learn = frame if holdout_cutoff is None else frame[~frame.index.isin(holdout.index)]
        train, valid = time_split(learn, 0.2)
        label_col = LABELS[flywheel.label]
        if train.empty or train[label_col].sum() == 0:
            context.log.warning(
                f"no positive {flywheel.label} labels in the window: no challenger for {day}"
            )
            return dg.MaterializeResult(
                metadata={"trained": False, "reason": f"no positive {flywheel.label} labels"}
            )
        model = train_model(train, valid, label=flywheel.label)
        data = model_bytes(model.booster)
        uri, sha = save_artefact(data, flywheel.paths().models_dir, f"model-{day:%Y%m%d}")
        version = f"m{day:%Y%m%d}-{sha[:8]}"
        valid_metrics = (
            offline_metrics(valid, predict(model.booster, model.schema, valid), label_col)
            if len(valid)
            else None
        )
        metrics = {
            "best_iteration": model.best_iteration,
            "holdout_cutoff": None if holdout_cutoff is None else str(holdout_cutoff),
            **(
                {f"valid_{k}": v for k, v in valid_metrics.as_dict().items()}
                if valid_metrics
                else {}
            ),
        }
        partitions = sorted({str(d) for d in learn["dt"]})
        with wh.begin() as conn:
            record = registry.ModelRecord(
                model_version=version,
                dt=day,
                artefact_uri=uri,
                sha256=sha,
                objective=str(model.params["objective"]),
                label=flywheel.label,
                params=model.params,
                metrics=metrics,
                schema=model.schema,
                training_partitions=partitions,
                n_train_rows=model.n_train_rows,
                n_valid_rows=model.n_valid_rows,
                code_version=_code_version(),
                champion_at_training=registry.get_alias(conn, registry.CHAMPION),
            )
            created = registry.register_model(
                conn, record, created_by=f"dagster:{getpass.getuser()}", now=utcnow()
            )
            # Re-training an old day must not move the challenger alias back in time.
            latest = wh.scalar(conn, load_sql("registry/latest_model_day"))
            if latest is None or str(latest) <= day.isoformat():
                registry.move_alias(
                    conn,
                    registry.CHALLENGER,
                    version,
                    actor="challenger_model",
                    reason=f"trained for {day}",
                    now=utcnow(),
                    day=day,
                )
        gain = model.booster.get_score(importance_type="gain")
        importance = (
            pd.DataFrame({"feature": list(gain), "gain": list(gain.values())})
            .sort_values("gain", ascending=False)
            .head(12)
        )
        meta: dict[str, object] = {
            "trained": True,
            "model_version": version,
            "newly_registered": created,
            "sha256": sha,
            "artefact_uri": uri,
            "train_rows": dg.MetadataValue.int(model.n_train_rows),
            "valid_rows": dg.MetadataValue.int(model.n_valid_rows),
            "training_partitions": ", ".join(partitions),
            "best_iteration": dg.MetadataValue.int(model.best_iteration),
            "feature_importance": dg.MetadataValue.md(md_table(importance)),
        }
        if valid_metrics:
            meta.update(
                {
                    f"valid_{k}": dg.MetadataValue.float(float(v))
                    for k, v in valid_metrics.as_dict().items()
                    if k != "n_rows"
                }
            )
        return dg.MaterializeResult(metadata=meta)

    return materialize_days(context, build)


TRAINING_CHECKS = [training_examples_suite]
