"""Quality: relational rules into `events` + quarantine, and the blocking checks of the cycle.

The rules are ``flywheel_assets.quality.rules.accept_events``; the checks are in checks.py.
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
from flywheel_assets.quality.rules import accept_events


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
    def build(day: dt.date) -> dict[str, object]:
        r = accept_events(warehouse.get(), day, utcnow())
        return {
            **accounting_metadata(r.accounting),
            "dagster/row_count": dg.MetadataValue.int(r.counts["accepted"]),
            # this stage's own share of the day's quarantined rows and duplicates
            "rows_quarantined_by_quality": dg.MetadataValue.int(r.counts["quarantined_quality"]),
            "quarantine_share": dg.MetadataValue.float(r.quarantine_share),
            "events_by_type": dg.MetadataValue.md(md_table(r.by_type)),
        }

    return materialize_days(context, build)
