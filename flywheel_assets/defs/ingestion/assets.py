"""Ingestion: a day's landing files into the warehouse, pseudonymised, every row accounted for.

Each asset replaces its partition in one transaction (DELETE + INSERT), so re-materialising a
day gives the same tables, and a run that dies half-way leaves the previous state. The work is
``flywheel_assets.ingestion.ingest.ingest_day``; the assets pick the source and report.
"""

import datetime as dt
from collections.abc import Callable

import dagster as dg

from flywheel_assets.defs.common import (
    accounting_metadata,
    daily_asset,
    materialize_days,
    md_table,
    utcnow,
)
from flywheel_assets.defs.ingestion.kafka import kafka_events
from flywheel_assets.defs.resources import (
    IngestionConfig,
    PathsConfig,
    PseudonymResource,
    WarehouseResource,
)
from flywheel_assets.ingestion.ingest import (
    SourceDayReport,
    SourceSpec,
    catalog_source,
    events_source,
    ingest_day,
    orders_source,
    users_source,
)
from flywheel_assets.ingestion.landing import LandingFileError


def ingest(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    paths: PathsConfig,
    spec: SourceSpec,
    day: dt.date,
    now: dt.datetime,
) -> dict[str, object]:
    """One source's day through ``ingest_day``, as UI metadata."""
    try:
        report = ingest_day(warehouse.get(), paths.paths().landing_dir, spec, day, now=now)
    except LandingFileError as exc:
        # Nothing of the day is written yet; retrying cannot fix a file.
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    for warning in report.warnings:
        context.log.warning(warning)
    return ingest_metadata(report)


def ingest_metadata(report: SourceDayReport) -> dict[str, object]:
    reasons = report.reasons.rename(columns={"n": "rows"})
    # A source whose day ends here (catalog, users) reports the full accounting; events go on
    # to the quality stage (accepted_events reports theirs), so this is only ingestion's part.
    counts = (
        accounting_metadata(report.accounting)
        if report.accounting
        else {
            "rows_read": dg.MetadataValue.int(report.rows_read),
            "rows_quarantined_at_ingestion": dg.MetadataValue.int(report.rows_quarantined),
        }
    )
    return {
        **counts,
        "dagster/row_count": dg.MetadataValue.int(report.rows_accepted),
        "files": dg.MetadataValue.int(report.files),
        "rows_released": dg.MetadataValue.int(report.released),
        "quarantine_share": dg.MetadataValue.float(report.quarantine_share),
        "quarantine_reasons": dg.MetadataValue.md(
            md_table(reasons) if len(reasons) else "_(none)_"
        ),
        "files_detail": dg.MetadataValue.md(md_table(report.files_detail())),
    }


_INGESTION = daily_asset("ingestion", {"python", "duckdb"})


def _ingest_timed(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    paths: PathsConfig,
    ingestion: IngestionConfig,
    pseudonyms: PseudonymResource,
    source: Callable[..., SourceSpec],
    name: str,
) -> dg.MaterializeResult:
    """The days of a source whose rows' times are checked against the delivery day."""
    pseudonymiser = pseudonyms.get()
    field_map = ingestion.field_maps()[name]
    settings = ingestion.settings()

    def build(day: dt.date) -> dict[str, object]:
        now = utcnow()
        spec = source(
            day,
            pseudonymiser,
            field_map,
            now=now,
            future_tolerance=settings.future_tolerance(),
            max_lateness=settings.max_lateness(),
        )
        return ingest(context, warehouse, paths, spec, day, now)

    return materialize_days(context, build)


@dg.asset(
    **_INGESTION,
    description="Catalog rows delivered on the day (new items and price changes), validated.",
)
def catalog_items(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    paths: PathsConfig,
    ingestion: IngestionConfig,
) -> dg.MaterializeResult:
    field_map = ingestion.field_maps()["catalog"]

    def build(day: dt.date) -> dict[str, object]:
        spec = catalog_source(day, field_map)
        return ingest(context, warehouse, paths, spec, day, utcnow())

    return materialize_days(context, build)


@dg.asset(
    **_INGESTION,
    description="Users delivered on the day; user ids pseudonymised, e-mail and IP never stored.",
)
def users(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    paths: PathsConfig,
    ingestion: IngestionConfig,
    pseudonyms: PseudonymResource,
) -> dg.MaterializeResult:
    spec = users_source(pseudonyms.get(), ingestion.field_maps()["users"])
    return materialize_days(
        context, lambda day: ingest(context, warehouse, paths, spec, day, utcnow())
    )


@dg.asset(
    **_INGESTION,
    deps=[kafka_events],
    description=(
        "Behaviour events from the day's landing files and the topic's rows of the day, typed by the event contract "
        "(docs/events.md) and pseudonymised; rows breaking the contract go to quarantine."
    ),
)
def raw_events(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    paths: PathsConfig,
    ingestion: IngestionConfig,
    pseudonyms: PseudonymResource,
) -> dg.MaterializeResult:
    return _ingest_timed(context, warehouse, paths, ingestion, pseudonyms, events_source, "events")


@dg.asset(
    **_INGESTION,
    description=(
        "Order lines delivered on the day (docs/orders.md): quantity and unit price per item, "
        "user ids pseudonymised; lines breaking the contract go to quarantine. The demand "
        "forecast's history; a shop's past orders come in with `flywheel import orders`."
    ),
)
def orders(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    paths: PathsConfig,
    ingestion: IngestionConfig,
    pseudonyms: PseudonymResource,
) -> dg.MaterializeResult:
    return _ingest_timed(context, warehouse, paths, ingestion, pseudonyms, orders_source, "orders")
