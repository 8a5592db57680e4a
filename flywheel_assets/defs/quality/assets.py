"""Quality: relational rules into `events` + quarantine, and the blocking checks of the cycle.

Great Expectations 1.x suites (flywheel_assets/gx_suites) run inside our own asset checks:
dagster-ge only supports GX < 1.0. ERROR-level checks are blocking, so a failing day stops
before anything downstream of it materialises.
"""

import datetime as dt

import dagster as dg

from flywheel_assets.defs.common import (
    accounting_metadata,
    daily_asset,
    materialize_days,
    md_table,
    utcnow,
)
from flywheel_assets.defs.ingestion.assets import catalog_items, raw_events
from flywheel_assets.defs.resources import WarehouseResource
from flywheel_assets.ingestion.accounting import record_accounting
from flywheel_assets.platform.warehouse import load_sql


@dg.asset(
    **daily_asset("quality", {"sql", "duckdb"}),
    deps=[raw_events, catalog_items],
    description=(
        "Events that pass the relational rules (not a redelivery of another day's event, item "
        "known to the catalog); the rest go to quarantine with the reason."
    ),
)
def accepted_events(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    def build(day: dt.date) -> dg.MaterializeResult | dict[str, object]:
        wh = warehouse.get()
        with wh.begin() as conn:
            wh.delete_partition(conn, "events", day)
            wh.delete_partition(conn, "quarantine", day, source="events", stage="quality")
            wh.run(conn, "quality/accept_events", dt=day)
            wh.run(conn, "quality/quarantine_events", dt=day, now=utcnow())
            accounting = record_accounting(wh, conn, day, "events", utcnow())
            counts = wh.query_df(conn, load_sql("ingestion/event_accounting"), dt=day).iloc[0]
            by_type = wh.query_df(conn, load_sql("quality/events_by_type"), dt=day)
        accepted = int(counts["accepted"])
        raw = int(counts["raw"])
        return dg.MaterializeResult(
            metadata={
                **accounting_metadata(accounting),
                "dagster/row_count": dg.MetadataValue.int(accepted),
                "rows_quarantined": dg.MetadataValue.int(int(counts["quarantined_quality"])),
                "quarantine_share": dg.MetadataValue.float(1 - accepted / raw if raw else 0.0),
                "events_by_type": dg.MetadataValue.md(md_table(by_type)),
            }
        )

    return materialize_days(context, build)
