"""The serving side's inputs: the feature bundle the ranking service loads (online_features.py).

The champion pointer is published by ``champion_model`` (promotion.py); this asset publishes the
features, so ``flywheel serve`` never opens the warehouse.
"""

import dagster as dg

from ..online_features import bundle_dir, export_snapshot
from ..resources import FlywheelConfig, WarehouseResource
from .common import daily_asset, partition_days
from .features import ACTIVITY_ASSETS, FEATURE_ASSETS


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
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    # Only the newest day of a backfill matters to serving: older bundles would be replaced.
    day = partition_days(context)[-1]
    serving_dir = flywheel.paths().home / "serving"
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
