"""Training: the day's labelled examples and an XGBoost challenger registered with lineage."""

import datetime as dt
import getpass
import importlib.metadata
import os
import subprocess
import time
from pathlib import Path

import dagster as dg
import pandas as pd

from flywheel_assets import registry
from flywheel_assets.defs.common import (
    daily_asset,
    materialize_days,
    md_table,
    utcnow,
)
from flywheel_assets.defs.features.assets import FEATURE_ASSETS
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.resources import FlywheelConfig, WarehouseResource
from flywheel_assets.evaluation import offline_metrics
from flywheel_assets.platform.plots import importance_markdown
from flywheel_assets.platform.warehouse import load_sql
from flywheel_assets.training import challenger
from flywheel_assets.training.distributed import scheduler_address
from flywheel_assets.training.model import LABELS, model_bytes, predict, save_artefact

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


def _code_version() -> str | None:
    """The code that trained a model: FLYWHEEL_CODE_VERSION (a deployment sets it, e.g. to the
    image's git SHA), else the checkout's git SHA, else the installed package version."""
    if os.environ.get("FLYWHEEL_CODE_VERSION"):
        return os.environ["FLYWHEEL_CODE_VERSION"]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).resolve().parent,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"flywheel=={importlib.metadata.version('flywheel')}"
    except importlib.metadata.PackageNotFoundError:
        return None


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
        with wh.begin() as conn:
            champion_version = registry.get_alias(conn, registry.CHAMPION)
            champion = registry.get_model(conn, champion_version) if champion_version else None
        base = champion if flywheel.warm_start_enabled() and champion is not None else None
        spec = flywheel.training_spec(day, base.model_version if base else None)
        after = challenger.last_partition(base.training_partitions) if base else None
        if after is not None and after >= spec.day:
            base, after = None, None  # the champion already saw this day: retrain in full
            spec = flywheel.training_spec(day)
        label_col = LABELS[spec.label]
        address = scheduler_address()
        base_model = (base.load(), base.schema) if base else None
        valid = None
        t0 = time.perf_counter()
        if address is not None and spec.bias_correction != "unbiased_lambdarank":
            try:
                fitted = challenger.fit_distributed(wh, spec, address, after=after, base=base_model)
            except ValueError as exc:
                if "no positive" not in str(exc):
                    raise
                context.log.warning(f"{exc}: no challenger for {day}")
                return dg.MaterializeResult(metadata={"trained": False, "reason": str(exc)})
            model, holdout_cutoff, partition_rows = (
                fitted.model,
                fitted.holdout_cutoff,
                fitted.partition_rows,
            )
            trained_on = f"dask ({address})"
        else:
            data = challenger.split(challenger.load_window(wh, spec), spec, after=after)
            if data.train.empty or data.train[label_col].sum() == 0:
                context.log.warning(
                    f"no positive {spec.label} labels in the window: no challenger for {day}"
                )
                return dg.MaterializeResult(
                    metadata={"trained": False, "reason": f"no positive {spec.label} labels"}
                )
            model = challenger.fit(spec, data, base_model)
            holdout_cutoff, partition_rows, valid = (
                data.holdout_cutoff,
                data.partition_rows,
                data.valid,
            )
            trained_on = "one process"
        train_seconds = time.perf_counter() - t0
        data_bytes = model_bytes(model.booster)
        uri, sha = save_artefact(data_bytes, flywheel.paths().models_dir, f"model-{day:%Y%m%d}")
        version = f"m{day:%Y%m%d}-{sha[:8]}"
        valid_metrics = (
            offline_metrics(valid, predict(model.booster, model.schema, valid), label_col)
            if valid is not None and len(valid)
            else None  # on a cluster the validation rows stay on the workers
        )
        metrics = {
            "best_iteration": model.best_iteration,
            "holdout_cutoff": None if holdout_cutoff is None else str(holdout_cutoff),
            "train_seconds": round(train_seconds, 3),
            "trained_on": trained_on,
            **(
                {f"valid_{k}": v for k, v in valid_metrics.as_dict().items()}
                if valid_metrics
                else {}
            ),
        }
        with wh.begin() as conn:
            record = registry.ModelRecord(
                model_version=version,
                dt=day,
                artefact_uri=uri,
                sha256=sha,
                objective=str(model.params["objective"]),
                label=spec.label,
                params=model.params,
                metrics=metrics,
                schema=model.schema,
                training_partitions=list(partition_rows),
                n_train_rows=model.n_train_rows,
                n_valid_rows=model.n_valid_rows,
                code_version=_code_version(),
                champion_at_training=champion_version,
                partition_rows=partition_rows,
                training_spec_json=spec.to_json(),
                base_model_version=base.model_version if base else None,
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
        gain = model.booster.get_score(importance_type="total_gain")
        lineage = pd.DataFrame({"partition": list(partition_rows), "rows": partition_rows.values()})
        meta: dict[str, object] = {
            "trained": True,
            "model_version": version,
            "newly_registered": created,
            "sha256": sha,
            "artefact_uri": uri,
            "bias_correction": spec.bias_correction,
            "trained_on": trained_on,
            "warm_start_from": base.model_version if base else "none (full retrain)",
            "train_rows": dg.MetadataValue.int(model.n_train_rows),
            "valid_rows": dg.MetadataValue.int(model.n_valid_rows),
            "train_seconds": dg.MetadataValue.float(train_seconds),
            "training_partitions": dg.MetadataValue.md(md_table(lineage)),
            "best_iteration": dg.MetadataValue.int(model.best_iteration),
            "feature_importance": dg.MetadataValue.md(
                importance_markdown(gain, f"{version}: feature importance (total gain)")
            ),
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
