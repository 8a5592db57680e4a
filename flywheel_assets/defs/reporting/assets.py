"""Is the flywheel getting better? One row per day in ``flywheel_health`` and a plot of the
recent days: purchase rate, CTR, the champion serving, and the oracle share when the shop
simulator reported it (``flywheel demo``)."""

import datetime as dt

import dagster as dg

from flywheel_assets.defs.common import daily_asset, materialize_days, md_table
from flywheel_assets.defs.promotion.assets import champion_model
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.resources import WarehouseResource
from flywheel_assets.platform.plots import health_markdown
from flywheel_assets.quality.health import HISTORY_DAYS, record_health


@dg.asset(
    **daily_asset("reporting", {"python"}),
    deps=[accepted_events, champion_model],
    description=(
        "How the flywheel did each day: requests, CTR, purchases per request, the champion that "
        "served, the decision; a plot of the days so far, up to the last 60 (with the "
        "simulator's oracle share in the demo)."
    ),
)
def flywheel_health(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    def build(day: dt.date) -> dict[str, object]:
        report = record_health(warehouse.get(), day, HISTORY_DAYS)
        health, history = report.day, report.history
        meta: dict[str, object] = {
            "dagster/row_count": dg.MetadataValue.int(1),
            "requests": dg.MetadataValue.int(health.requests),
            "plot": dg.MetadataValue.md(
                health_markdown(
                    history,
                    # the days it shows (up to HISTORY_DAYS), not the window it could show
                    f"the flywheel, {len(history)} day(s) to {day}",
                )
            ),
            "days": dg.MetadataValue.md(
                md_table(history.drop(columns=["baseline_share"]).tail(14))
            ),
        }
        # numbers, so the UI charts them across materialisations
        if health.ctr is not None:
            meta["ctr"] = dg.MetadataValue.float(health.ctr)
        if health.purchase_rate is not None:
            meta["purchase_rate"] = dg.MetadataValue.float(health.purchase_rate)
        if report.oracle_share is not None:
            meta["oracle_share"] = dg.MetadataValue.float(report.oracle_share)
        return meta

    return materialize_days(context, build)
