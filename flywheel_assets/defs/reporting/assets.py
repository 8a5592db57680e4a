"""Is the flywheel getting better? One row per day in ``flywheel_health`` and a plot of the
recent days: purchase rate, CTR, the champion serving, and the oracle share when the shop
simulator reported it (``flywheel demo``)."""

import datetime as dt

import dagster as dg
import pandas as pd

from flywheel_assets.defs.common import daily_asset, materialize_days, md_table
from flywheel_assets.defs.promotion.assets import champion_model
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.resources import WarehouseResource
from flywheel_assets.platform.plots import health_markdown
from flywheel_assets.platform.warehouse import load_sql

HISTORY_DAYS = 60


@dg.asset(
    **daily_asset("reporting", {"python"}),
    deps=[accepted_events, champion_model],
    description=(
        "How the flywheel did each day: requests, CTR, purchases per request, the champion that "
        "served, the decision; a plot of the last 60 days (with the simulator's oracle share "
        "in the demo)."
    ),
)
def flywheel_health(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    def build(day: dt.date) -> dg.MaterializeResult:
        wh = warehouse.get()
        with wh.begin() as conn:
            r = wh.query_df(conn, load_sql("reporting/health_day"), dt=day).iloc[0]
            requests, impressions = int(r["requests"] or 0), int(r["impressions"] or 0)
            clicks, purchases = int(r["clicks"] or 0), int(r["purchases"] or 0)
            row = pd.DataFrame(
                [
                    {
                        "dt": day,
                        "requests": requests,
                        "impressions": impressions,
                        "clicks": clicks,
                        "purchases": purchases,
                        "ctr": clicks / impressions if impressions else None,
                        "purchase_rate": purchases / requests if requests else None,
                        "champion": None if pd.isna(r["champion"]) else r["champion"],
                        "decision": None if pd.isna(r["decision"]) else r["decision"],
                    }
                ]
            )
            wh.delete_partition(conn, "flywheel_health", day)
            wh.insert_df(conn, "flywheel_health", row)
            history = wh.query_df(
                conn, load_sql("reporting/health_history"), dt=day, n=HISTORY_DAYS
            )
        today = history[history["dt"] == day]
        oracle = today["oracle_share"].iloc[0] if len(today) else None
        meta: dict[str, object] = {
            "dagster/row_count": dg.MetadataValue.int(1),
            "requests": dg.MetadataValue.int(requests),
            "plot": dg.MetadataValue.md(
                health_markdown(history, f"the flywheel, last {HISTORY_DAYS} days to {day}")
            ),
            "days": dg.MetadataValue.md(
                md_table(history.drop(columns=["baseline_share"]).tail(14))
            ),
        }
        # numbers, so the UI charts them across materialisations
        if impressions:
            meta["ctr"] = dg.MetadataValue.float(clicks / impressions)
        if requests:
            meta["purchase_rate"] = dg.MetadataValue.float(purchases / requests)
        if oracle is not None and not pd.isna(oracle):
            meta["oracle_share"] = dg.MetadataValue.float(float(oracle))
        return dg.MaterializeResult(metadata=meta)

    return materialize_days(context, build)
