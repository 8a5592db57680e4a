"""The serving side: the feature bundle the ranking service loads (online_features.py), and
the request log it writes back (request_log.py).

The champion pointer is published by ``champion_model`` (promotion.py); ``online_features``
publishes the features, so ``flywheel serve`` never opens the warehouse.
"""

import datetime as dt

import dagster as dg

from flywheel_assets.defs.common import daily_asset, materialize_days, partition_days
from flywheel_assets.defs.features.assets import ACTIVITY_ASSETS, FEATURE_ASSETS
from flywheel_assets.defs.resources import PathsConfig, PseudonymResource, WarehouseResource
from flywheel_assets.serving.online_features import bundle_dir, export_snapshot
from flywheel_assets.serving.request_log import latency_by_variant, load_request_log


@dg.asset(
    **daily_asset("serving", {"python", "parquet"}),
    deps=[*FEATURE_ASSETS, *ACTIVITY_ASSETS],
    description=(
        "The feature snapshot of the day as Parquet files under "
        "FLYWHEEL_HOME/serving/features/dt=D/, which the ranking service loads for serving on "
        "D + 1 (the newest three are kept)."
    ),
)
def online_features(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, paths: PathsConfig
) -> dg.MaterializeResult:
    # Only the newest day of a backfill matters to serving: older bundles would be replaced.
    day = partition_days(context)[-1]
    serving_dir = paths.paths().home / "serving"
    counts = export_snapshot(warehouse.get(), day, serving_dir)
    table = "\n".join(f"| {name} | {n:,} |" for name, n in counts.items())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(sum(counts.values())),
            "feature_dt": day.isoformat(),
            "path": dg.MetadataValue.path(str(bundle_dir(serving_dir, day))),
            "tables": dg.MetadataValue.md("| table | rows |\n|---|---|\n" + table),
            **{f"rows_{name}": dg.MetadataValue.int(n) for name, n in counts.items()},
        }
    )


@dg.asset(
    **daily_asset("serving", {"python"}),
    description=(
        "The ranking service's request log of the day (FLYWHEEL_LANDING_DIR/requests/dt=D/): "
        "one row per ranking with its candidates and served latency, users pseudonymised. The "
        "latency guardrail of experiments reads it."
    ),
)
def served_requests(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    paths: PathsConfig,
    pseudonyms: PseudonymResource,
) -> dg.MaterializeResult:
    def build(day: dt.date) -> dict[str, object]:
        log = load_request_log(warehouse.get(), paths.paths().landing_dir, day, pseudonyms.get())
        if log.rejected:
            context.log.warning(f"{day}: request-log lines not loaded: {log.rejected}")
        table = "\n".join(
            f"| {r.variant} | {r.requests:,} | {r.p50_ms:.2f} | {r.p99_ms:.2f} |"
            for r in latency_by_variant(log.rows).itertuples()
        )
        return {
            "dagster/row_count": dg.MetadataValue.int(len(log.rows)),
            "files": dg.MetadataValue.int(log.files),
            "lines_rejected": dg.MetadataValue.int(sum(log.rejected.values())),
            "rejected_reasons": dg.MetadataValue.json(log.rejected),
            "served_latency": dg.MetadataValue.md(
                "| variant | requests | p50 ms | p99 ms |\n|---|---:|---:|---:|\n" + table
            ),
        }

    return materialize_days(context, build)
