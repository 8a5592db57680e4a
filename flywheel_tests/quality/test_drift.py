"""Drift statistics (flywheel_assets/drift.py): PSI and KS judged against thresholds."""

import numpy as np
import pandas as pd
import pytest

from flywheel_assets.quality.drift import (
    DriftThresholds,
    column_drift,
    drift_report,
    histogram_markdown,
    psi,
    report_frame,
    worst,
)

TH = DriftThresholds()


def _normal(n: int, mean: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, 1.0, n)


def test_same_distribution_is_stable() -> None:
    d = column_drift("x", _normal(20_000, seed=1), _normal(20_000, seed=2), TH)
    assert d.psi < 0.01
    assert d.severity == "ok"


def test_a_one_sd_shift_is_an_error_with_both_statistics() -> None:
    d = column_drift("x", _normal(20_000, seed=1), _normal(20_000, 1.0, seed=2), TH)
    assert d.psi > TH.psi_error
    assert d.ks_pvalue < TH.ks_alpha
    assert 0.3 < d.ks_statistic < 0.45  # the CDF gap of N(0,1) vs N(1,1) is 0.38
    assert d.severity == "error"
    assert "PSI" in d.describe() and "x" in d.describe()


def test_a_moderate_shift_only_warns() -> None:
    d = column_drift("x", _normal(50_000, seed=1), _normal(50_000, 0.4, seed=2), TH)
    assert TH.psi_warn <= d.psi < TH.psi_error
    assert d.severity == "warn"


def test_psi_matches_its_definition_on_known_bins() -> None:
    # Reference deciles of 0..999 put 100 values in each bin; the current sample puts all of
    # its values in the top bin.
    ref = np.arange(1000, dtype=float)
    cur = np.full(1000, 999.0)
    expected = (1 - 0.1) * np.log(1 / 0.1) + 9 * (1e-4 - 0.1) * np.log(1e-4 / 0.1)
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-9)


def test_small_samples_are_reported_not_judged() -> None:
    d = column_drift("x", _normal(50), _normal(50, 5.0), TH)
    assert d.severity == "skipped"


def test_nans_are_ignored_and_constant_columns_are_stable() -> None:
    ref = np.r_[np.zeros(1000), [np.nan] * 50]
    cur = np.r_[np.zeros(800), [np.nan] * 500]
    d = column_drift("c", ref, cur, TH)
    assert d.psi == pytest.approx(0.0)
    assert d.n_current == 800


def test_report_is_deterministic_and_sorted_by_psi() -> None:
    ref = pd.DataFrame({"a": _normal(300_000, seed=3), "b": _normal(300_000, seed=4)})
    cur = pd.DataFrame({"a": _normal(300_000, 2.0, seed=5), "b": _normal(300_000, seed=6)})
    first = drift_report(ref, cur, ["a", "b"], TH, max_rows=50_000)
    again = drift_report(ref, cur, ["a", "b"], TH, max_rows=50_000)
    assert first == again
    assert worst(first) == "error"
    frame = report_frame(first)
    assert frame["column"].tolist() == ["a", "b"]
    assert frame.loc[1, "result"] == "ok"


def test_bad_thresholds_raise() -> None:
    with pytest.raises(ValueError, match="psi_warn"):
        DriftThresholds(psi_warn=0.3, psi_error=0.2)
    with pytest.raises(ValueError, match="ks_alpha"):
        DriftThresholds(ks_alpha=0.0)


def test_plot_is_an_embedded_png() -> None:
    md = histogram_markdown(_normal(1000), _normal(1000, 1.0), "x")
    assert md.startswith("![x](data:image/png;base64,iVBOR")
