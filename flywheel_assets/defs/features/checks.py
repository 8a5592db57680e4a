"""Checks on the feature tables and model scores: GX suites per feature table, and drift.

Drift (flywheel_assets/quality/drift_day.py) compares a day's snapshot with the snapshots of the
reference days before it; model-score drift compares the day's challenger scores on the holdout
with the challengers' scores recorded on the reference days. Both are blocking at ERROR: a
feature table that shifted stops training and promotion for the day; a warning only reports.
"""

import datetime as dt

import dagster as dg

from flywheel_assets.defs.common import WAREHOUSE_POOL, check_days, md_table
from flywheel_assets.defs.features.assets import ACTIVITY_ASSETS, FEATURE_ASSETS
from flywheel_assets.defs.quality.checks import suite_check
from flywheel_assets.defs.resources import QualityConfig, WarehouseResource
from flywheel_assets.quality.drift_day import (
    DriftConfigError,
    DriftVerdict,
    drift_of_day,
    monitored_columns,
)
from flywheel_assets.quality.settings import DEFAULT_DRIFT_COLUMNS, QualitySettings


def _suite_for(asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    table = asset.key.path[-1]

    @dg.asset_check(
        name=f"{table}_suite",
        asset=asset,
        pool=WAREHOUSE_POOL,
        blocking=True,
        description=f"Great Expectations suite {table}: schema, unique keys, value ranges.",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        return suite_check(context, warehouse, table, table)

    return _check


def drift_result(verdict: DriftVerdict) -> dg.AssetCheckResult:
    """A drift verdict as a check result (metadata: the table and a plot of the most shifted
    column)."""
    meta: dict[str, object] = {}
    if verdict.reference_days is not None:
        meta["reference_days"] = dg.MetadataValue.int(verdict.reference_days)
    d = verdict.detail
    if d is not None:
        meta.update(
            {
                "rows_day": dg.MetadataValue.int(d.rows_day),
                "rows_reference": dg.MetadataValue.int(d.rows_reference),
                "max_psi": dg.MetadataValue.float(d.max_psi),
                "drift": dg.MetadataValue.md(md_table(d.table)),
                "plot": dg.MetadataValue.md(d.plot),
            }
        )
    return dg.AssetCheckResult(
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.WARN
        if verdict.severity == "warn"
        else dg.AssetCheckSeverity.ERROR,
        metadata=meta,
        description=verdict.description,
    )


def _feature_drift_for(asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    table = asset.key.path[-1]

    @dg.asset_check(
        name=f"{table}_drift",
        asset=asset,
        pool=WAREHOUSE_POOL,
        blocking=True,
        description=(
            f"PSI and KS of the monitored columns (default {', '.join(DEFAULT_DRIFT_COLUMNS[table])}) "
            "between the day's snapshot and the reference days before it."
        ),
    )
    def _check(
        context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource,
        quality: QualityConfig,
    ) -> dg.AssetCheckResult:
        return drift_check(
            context,
            warehouse,
            quality.settings(),
            table,
            table,
            table,
        )

    return _check


def drift_check(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    q: QualitySettings,
    what: str,
    monitored: str,
    table: str,
    **equal: object,
) -> dg.AssetCheckResult:
    """Each day's partition of ``table`` (its rows whose columns equal ``equal``) against the
    reference days' partitions, over the columns monitored for ``monitored``; nothing is read
    when none are."""
    columns = monitored_columns(q, monitored)
    if not columns:
        return dg.AssetCheckResult(passed=True, description=f"{what}: not monitored")

    def check(day: dt.date) -> dg.AssetCheckResult:
        try:
            verdict = drift_of_day(warehouse.get(), day, q, columns, what, table, **equal)
        except DriftConfigError as exc:  # a monitored column that does not exist
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        return drift_result(verdict)

    return check_days(context, check)


FEATURE_CHECKS = [
    *[_suite_for(a) for a in [*ACTIVITY_ASSETS, *FEATURE_ASSETS]],
    *[_feature_drift_for(a) for a in FEATURE_ASSETS if a.key.path[-1] in DEFAULT_DRIFT_COLUMNS],
]
