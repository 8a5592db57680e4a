"""Training's check: the labelled examples against their Great Expectations suite."""

import dagster as dg

from flywheel_assets.defs.common import WAREHOUSE_POOL
from flywheel_assets.defs.quality.checks import suite_check
from flywheel_assets.defs.resources import WarehouseResource
from flywheel_assets.defs.training.assets import training_examples


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=training_examples,
    blocking=True,
    description="Great Expectations suite training_examples.",
)
def training_examples_suite(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    return suite_check(context, warehouse, "training_examples", "training_examples")


TRAINING_CHECKS = [training_examples_suite]
