"""Distribution drift between a day and a reference window: PSI and the two-sample KS test.

Pure functions on numpy/pandas; the Dagster checks in assets/drift.py feed them a day's feature
snapshot (or model scores) and the same columns over the reference days.

- PSI (population stability index) over the reference's deciles:
  ``sum((cur - ref) * ln(cur / ref))`` over bins, empty bins floored at ``EPSILON``. Rules of
  thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.
- KS: ``scipy.stats.ks_2samp``; its statistic is the largest gap between the two empirical
  CDFs. With tens of thousands of rows every tiny shift is "significant", so the p-value alone
  would block every day; PSI measures how large the shift is and the p-value only guards
  against calling noise on small samples a shift.

A column is an ``error`` when PSI >= ``psi_error`` and KS p < ``ks_alpha``, a ``warn`` when
PSI >= ``psi_warn``, else ``ok``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

EPSILON = 1e-4
N_BINS = 10


@dataclass(frozen=True)
class DriftThresholds:
    psi_warn: float = 0.1
    psi_error: float = 0.25
    ks_alpha: float = 0.001
    # Fewer rows than this on either side: the column is reported, never judged.
    min_rows: int = 100

    def __post_init__(self) -> None:
        if not 0 < self.psi_warn <= self.psi_error:
            raise ValueError(
                f"need 0 < psi_warn <= psi_error, got {self.psi_warn}, {self.psi_error}"
            )
        if not 0 < self.ks_alpha < 1:
            raise ValueError(f"ks_alpha must be in (0, 1), got {self.ks_alpha}")


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    n_reference: int
    n_current: int
    psi: float
    ks_statistic: float
    ks_pvalue: float
    reference_mean: float
    current_mean: float
    severity: str  # "ok", "warn", "error" or "skipped"

    def describe(self) -> str:
        return (
            f"{self.column}: PSI {self.psi:.3f}, KS D {self.ks_statistic:.3f} "
            f"(p {self.ks_pvalue:.2g}), mean {self.reference_mean:.4g} -> {self.current_mean:.4g}"
        )


def _clean(values: object) -> np.ndarray:
    arr = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    return arr[np.isfinite(arr)]


def psi(reference: object, current: object, bins: int = N_BINS) -> float:
    """Population stability index of ``current`` against ``reference`` (NaNs dropped)."""
    ref, cur = _clean(reference), _clean(current)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    # Bin edges at the reference's quantiles; ties (counts, zero-inflated columns) collapse.
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    r = np.maximum(ref_counts / len(ref), EPSILON)
    c = np.maximum(cur_counts / len(cur), EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def column_drift(
    column: str, reference: object, current: object, thresholds: DriftThresholds
) -> ColumnDrift:
    ref, cur = _clean(reference), _clean(current)
    if len(ref) < thresholds.min_rows or len(cur) < thresholds.min_rows:
        nan = float("nan")
        return ColumnDrift(
            column,
            len(ref),
            len(cur),
            nan,
            nan,
            nan,
            float(ref.mean()) if len(ref) else nan,
            float(cur.mean()) if len(cur) else nan,
            "skipped",
        )
    value = psi(ref, cur)
    ks = stats.ks_2samp(ref, cur)
    if value >= thresholds.psi_error and ks.pvalue < thresholds.ks_alpha:
        severity = "error"
    elif value >= thresholds.psi_warn:
        severity = "warn"
    else:
        severity = "ok"
    return ColumnDrift(
        column,
        len(ref),
        len(cur),
        value,
        float(ks.statistic),
        float(ks.pvalue),
        float(ref.mean()),
        float(cur.mean()),
        severity,
    )


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    thresholds: DriftThresholds,
    *,
    max_rows: int = 200_000,
    seed: int = 0,
) -> list[ColumnDrift]:
    """Drift of each of ``columns`` (missing ones raise KeyError); sides larger than
    ``max_rows`` are sampled with a fixed seed, so the same data gives the same figures."""
    ref = _sample(reference, max_rows, seed)
    cur = _sample(current, max_rows, seed)
    return [column_drift(c, ref[c], cur[c], thresholds) for c in columns]


def _sample(df: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    return df.sample(n=max_rows, random_state=seed) if len(df) > max_rows else df


def worst(report: list[ColumnDrift]) -> str | None:
    """ "error", "warn" or None: the most severe judgement in the report."""
    severities = {d.severity for d in report}
    for s in ("error", "warn"):
        if s in severities:
            return s
    return None


def report_frame(report: list[ColumnDrift]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "column": [d.column for d in report],
            "psi": [d.psi for d in report],
            "ks_D": [d.ks_statistic for d in report],
            "ks_p": [d.ks_pvalue for d in report],
            "mean_ref": [d.reference_mean for d in report],
            "mean_day": [d.current_mean for d in report],
            "result": [d.severity for d in report],
        }
    ).sort_values("psi", ascending=False, na_position="last", ignore_index=True)


def histogram_markdown(reference: object, current: object, title: str) -> str:
    """A small PNG of both distributions (reference deciles as bins), as markdown."""
    from flywheel_assets.platform.plots import png_markdown, pyplot

    plt = pyplot()
    ref, cur = _clean(reference), _clean(current)
    if len(ref) == 0 or len(cur) == 0:
        return "_(no values to plot)_"
    lo, hi = np.quantile(np.concatenate([ref, cur]), [0.005, 0.995])
    if not math.isfinite(lo) or hi <= lo:
        lo, hi = float(min(ref.min(), cur.min())), float(max(ref.max(), cur.max())) + 1.0
    edges = np.linspace(lo, hi, 31)
    fig, ax = plt.subplots(figsize=(4.2, 2.4), dpi=90)
    ax.hist(np.clip(ref, lo, hi), bins=edges, density=True, alpha=0.55, label="reference")
    ax.hist(np.clip(cur, lo, hi), bins=edges, density=True, alpha=0.55, label="day")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return png_markdown(fig, title)
