"""A day's drift verdict: which columns are monitored, whether the shop is still warming up, and
the judgement of the day's rows against the reference days' (statistics in ``drift.py``).

The columns watched come from the quality settings (FLYWHEEL_DRIFT_COLUMNS, else
DEFAULT_DRIFT_COLUMNS in quality/settings.py). The feature and model-score drift checks
(``defs/features/checks.py``) call ``drift_of_day`` and turn the ``DriftVerdict`` into a check
result.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.quality.drift import (
    DriftThresholds,
    drift_report,
    histogram_markdown,
    report_frame,
    worst,
)
from flywheel_assets.quality.settings import QualitySettings


class DriftConfigError(ValueError):
    """A monitored column that the day's rows do not have: no retry fixes it."""


def monitored_columns(q: QualitySettings, table: str) -> list[str]:
    """The columns of ``table`` watched for drift (empty: not monitored): FLYWHEEL_DRIFT_COLUMNS
    through the quality settings, else DEFAULT_DRIFT_COLUMNS."""
    return list(q.watched_columns().get(table, []))


def thresholds(q: QualitySettings) -> DriftThresholds:
    return DriftThresholds(
        psi_warn=q.drift_psi_warn, psi_error=q.drift_psi_error, ks_alpha=q.drift_ks_alpha
    )


def warming_up(first_event_day: dt.date | None, day: dt.date, q: QualitySettings) -> str | None:
    """Why drift is not judged yet for ``day``, or None once the shop is past its warm-up."""
    if first_event_day is None:
        return "no events yet"
    reference_start = day - dt.timedelta(days=q.drift_reference_days)
    judged_from = first_event_day + dt.timedelta(days=q.drift_warmup_days)
    if reference_start < judged_from:
        return (
            f"warm-up: the reference window starts {reference_start}, before {judged_from} "
            f"({q.drift_warmup_days} days after the first events, FLYWHEEL_DRIFT_WARMUP_DAYS)"
        )
    return None


@dataclass(frozen=True)
class DriftDetail:
    """The figures of a judged (or reported) day."""

    rows_day: int
    rows_reference: int
    max_psi: float
    table: pd.DataFrame  # per column: PSI, KS, means, result
    plot: str  # markdown: the most shifted column's histograms


@dataclass(frozen=True)
class DriftVerdict:
    passed: bool
    severity: str  # "error" or "warn": how a failure weighs
    description: str
    reference_days: int | None = None
    detail: DriftDetail | None = None


def judge_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    q: QualitySettings,
    reference_days: int,
    what: str,
    warming: str | None = None,
) -> DriftVerdict:
    """One day's drift verdict over ``columns``; ``warming`` (a reason) reports the figures
    without judging them."""
    missing = [c for c in columns if c not in current.columns]
    if missing:
        raise DriftConfigError(
            f"{what}: drift columns {missing} do not exist; columns are {sorted(current.columns)}"
        )
    if reference_days < q.drift_min_reference_days:
        return DriftVerdict(
            passed=True,
            severity="error",
            description=f"{what}: drift not judged: {reference_days} of the "
            f"{q.drift_min_reference_days} reference days needed",
            reference_days=reference_days,
        )
    report = drift_report(reference, current, columns, thresholds(q))
    verdict = None if warming else worst(report)
    top = max(report, key=lambda d: -1.0 if d.psi != d.psi else d.psi)
    flagged = "; ".join(d.describe() for d in report if d.severity in ("error", "warn"))
    detail = DriftDetail(
        rows_day=len(current),
        rows_reference=len(reference),
        max_psi=0.0 if top.psi != top.psi else top.psi,
        table=report_frame(report),
        plot=histogram_markdown(reference[top.column], current[top.column], top.column),
    )
    return DriftVerdict(
        passed=verdict is None,
        severity="warn" if verdict == "warn" else "error",
        description=(
            f"{what}: drift not judged ({warming}); max PSI {top.psi:.3f} on {top.column}"
            if warming
            else f"{what}: no drift (max PSI {top.psi:.3f} on {top.column})"
            if verdict is None
            else f"{what}: {verdict}: {flagged}. If the change is real (a price change, a new "
            "audience), re-run once it is part of the reference window or raise the "
            "FLYWHEEL_DRIFT_PSI_* thresholds; if not, find what broke the data upstream."
        ),
        reference_days=reference_days,
        detail=detail,
    )


def drift_of_day(
    wh: Warehouse,
    day: dt.date,
    q: QualitySettings,
    columns: list[str],
    what: str,
    table: str,
    **equal: object,
) -> DriftVerdict:
    """``day``'s partition of ``table`` (its rows whose columns equal ``equal``) against the
    reference days' partitions before it, judged by ``judge_drift``."""
    with wh.begin() as conn:
        first = wh.scalar(conn, load_sql("quality/first_event_day"))
        current = wh.read_partition(conn, table, day, **equal)
        reference = wh.read_partitions(
            conn,
            table,
            day - dt.timedelta(days=q.drift_reference_days),
            day - dt.timedelta(days=1),
            **equal,
        )
    if current.empty:
        return DriftVerdict(passed=True, severity="error", description=f"{what}: no rows for {day}")
    n_days = reference["dt"].nunique() if len(reference) else 0
    return judge_drift(
        reference, current, columns, q, n_days, what, warming_up(_date(first), day, q)
    )


def _date(value: object) -> dt.date | None:
    if value is None:
        return None
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
