"""Checks on the feature tables and model scores: GX suites per feature table, and drift.

Drift (flywheel_assets/drift.py) compares a day's snapshot with the snapshots of the reference
days before it; model-score drift compares the day's challenger scores on the holdout with the
challengers' scores recorded on the reference days. Both are blocking at ERROR: a feature
table that shifted stops training and promotion for the day; a warning only reports.
"""

import datetime as dt
import json
import os

import dagster as dg
import pandas as pd
from sqlalchemy.engine import Connection

from flywheel_assets.defs.common import WAREHOUSE_POOL, check_days, md_table
from flywheel_assets.defs.features.assets import ACTIVITY_ASSETS, FEATURE_ASSETS
from flywheel_assets.defs.quality.checks import suite_check
from flywheel_assets.defs.resources import FlywheelConfig, WarehouseResource
from flywheel_assets.platform.settings import QualityThresholds
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.quality.drift import (
    DriftThresholds,
    drift_report,
    histogram_markdown,
    report_frame,
    worst,
)

# The monitored columns: stationary once a shop has history (rates, prices, recency), so a
# shift means the data changed. Raw 28-day counts and ages are left out: they grow by
# definition. FLYWHEEL_DRIFT_COLUMNS (JSON, same shape) replaces this mapping; a table left
# out is not monitored. "score_samples" is the challenger's holdout scores.
DEFAULT_DRIFT_COLUMNS: dict[str, list[str]] = {
    "user_features": [
        "u_ctr_28d",
        "u_conversion_28d",
        "u_avg_click_price_28d",
        "u_days_since_last_event",
    ],
    "item_features": ["i_price", "i_price_change_7d", "i_ctr_28d", "i_conversion_28d"],
    "score_samples": ["score"],
}


def drift_columns(table: str) -> list[str]:
    """The monitored columns of ``table`` (empty: not monitored), from FLYWHEEL_DRIFT_COLUMNS
    if set."""
    text = os.environ.get("FLYWHEEL_DRIFT_COLUMNS")
    if not text:
        return DEFAULT_DRIFT_COLUMNS.get(table, [])
    try:
        mapping = json.loads(text)
        if not isinstance(mapping, dict) or not all(
            isinstance(v, list) and all(isinstance(c, str) for c in v) for v in mapping.values()
        ):
            raise ValueError("must map table names to lists of column names")
        unknown = set(mapping) - set(DEFAULT_DRIFT_COLUMNS)
        if unknown:
            raise ValueError(
                f"unknown tables {sorted(unknown)}; use {sorted(DEFAULT_DRIFT_COLUMNS)}"
            )
    except ValueError as exc:
        raise dg.Failure(
            description=f"FLYWHEEL_DRIFT_COLUMNS is invalid: {exc}", allow_retries=False
        ) from exc
    return list(mapping.get(table, []))


def _thresholds(q: QualityThresholds) -> DriftThresholds:
    return DriftThresholds(
        psi_warn=q.drift_psi_warn, psi_error=q.drift_psi_error, ks_alpha=q.drift_ks_alpha
    )


def _warming_up(wh: Warehouse, conn: Connection, day: dt.date, q: QualityThresholds) -> str | None:
    """Why drift is not judged yet for ``day``, or None once the shop is past its warm-up."""
    first = wh.scalar(conn, load_sql("quality/first_event_day"))
    if first is None:
        return "no events yet"
    first_day = first if isinstance(first, dt.date) else dt.date.fromisoformat(str(first)[:10])
    reference_start = day - dt.timedelta(days=q.drift_reference_days)
    judged_from = first_day + dt.timedelta(days=q.drift_warmup_days)
    if reference_start < judged_from:
        return (
            f"warm-up: the reference window starts {reference_start}, before {judged_from} "
            f"({q.drift_warmup_days} days after the first events, FLYWHEEL_DRIFT_WARMUP_DAYS)"
        )
    return None


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


def drift_result(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    q: QualityThresholds,
    reference_days: int,
    what: str,
    warming_up: str | None = None,
) -> dg.AssetCheckResult:
    """One day's drift verdict over ``columns`` as a check result (metadata: table and plot).
    ``warming_up`` (a reason) reports the figures without judging them."""
    missing = [c for c in columns if c not in current.columns]
    if missing:
        raise dg.Failure(
            description=f"{what}: drift columns {missing} do not exist; "
            f"columns are {sorted(current.columns)}",
            allow_retries=False,
        )
    if reference_days < q.drift_min_reference_days:
        return dg.AssetCheckResult(
            passed=True,
            metadata={"reference_days": dg.MetadataValue.int(reference_days)},
            description=(
                f"{what}: drift not judged: {reference_days} of the "
                f"{q.drift_min_reference_days} reference days needed"
            ),
        )
    report = drift_report(reference, current, columns, _thresholds(q))
    verdict = None if warming_up else worst(report)
    table = report_frame(report)
    top = max(report, key=lambda d: -1.0 if d.psi != d.psi else d.psi)
    flagged = [d for d in report if d.severity in ("error", "warn")]
    text = "; ".join(d.describe() for d in flagged)
    return dg.AssetCheckResult(
        passed=verdict is None,
        severity=dg.AssetCheckSeverity.WARN if verdict == "warn" else dg.AssetCheckSeverity.ERROR,
        metadata={
            "reference_days": dg.MetadataValue.int(reference_days),
            "rows_day": dg.MetadataValue.int(len(current)),
            "rows_reference": dg.MetadataValue.int(len(reference)),
            "max_psi": dg.MetadataValue.float(0.0 if top.psi != top.psi else top.psi),
            "drift": dg.MetadataValue.md(md_table(table)),
            "plot": dg.MetadataValue.md(
                histogram_markdown(reference[top.column], current[top.column], top.column)
            ),
        },
        description=(
            f"{what}: drift not judged ({warming_up}); max PSI {top.psi:.3f} on {top.column}"
            if warming_up
            else f"{what}: no drift (max PSI {top.psi:.3f} on {top.column})"
            if verdict is None
            else f"{what}: {verdict}: {text}. If the change is real (a price change, a new "
            "audience), re-run once it is part of the reference window or raise the "
            "FLYWHEEL_DRIFT_PSI_* thresholds; if not, find what broke the data upstream."
        ),
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
        flywheel: FlywheelConfig,
    ) -> dg.AssetCheckResult:
        return drift_check(
            context,
            warehouse,
            flywheel.quality(),
            table,
            table,
            table,
        )

    return _check


def drift_check(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    q: QualityThresholds,
    what: str,
    monitored: str,
    table: str,
    **equal: object,
) -> dg.AssetCheckResult:
    """Each day's partition of ``table`` (its rows whose columns equal ``equal``) against the
    reference days' partitions, over the columns monitored for ``monitored``; nothing is read
    when none are."""
    columns = drift_columns(monitored)
    if not columns:
        return dg.AssetCheckResult(passed=True, description=f"{what}: not monitored")

    def check(day: dt.date) -> dg.AssetCheckResult:
        wh = warehouse.get()
        with wh.begin() as conn:
            warming = _warming_up(wh, conn, day, q)
            current = wh.read_partition(conn, table, day, **equal)
            reference = wh.read_partitions(
                conn,
                table,
                day - dt.timedelta(days=q.drift_reference_days),
                day - dt.timedelta(days=1),
                **equal,
            )
        if current.empty:
            return dg.AssetCheckResult(passed=True, description=f"{what}: no rows for {day}")
        n_days = reference["dt"].nunique() if len(reference) else 0
        return drift_result(reference, current, columns, q, n_days, what, warming)

    return check_days(context, check)


FEATURE_CHECKS = [
    *[_suite_for(a) for a in [*ACTIVITY_ASSETS, *FEATURE_ASSETS]],
    *[_feature_drift_for(a) for a in FEATURE_ASSETS if a.key.path[-1] in DEFAULT_DRIFT_COLUMNS],
]
