"""The campaign and calibration figures on cases small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flywheel_assets.likelihood.metrics import auc, calibration, gains, lift_at, log_loss
from flywheel_assets.likelihood.rfm import rfm_score


def test_auc_counts_ordered_pairs_and_half_ties() -> None:
    y = np.array([1, 0, 1, 0])
    # Pairs (buyer, non-buyer): (0.9,0.1) yes, (0.9,0.5) yes, (0.5,0.1) yes, (0.5,0.5) tie.
    assert auc(y, np.array([0.9, 0.1, 0.5, 0.5])) == pytest.approx(3.5 / 4)
    assert np.isnan(auc(np.ones(3), np.arange(3)))


def test_log_loss_and_its_clipping() -> None:
    assert log_loss(np.array([1, 0]), np.array([0.8, 0.2])) == pytest.approx(-np.log(0.8))
    assert np.isfinite(log_loss(np.array([1]), np.array([0.0])))


def test_calibration_error_over_equal_count_bins() -> None:
    p = np.array([0.1, 0.1, 0.3, 0.3])
    y = np.array([0, 0, 1, 0])
    ece, table = calibration(y, p, bins=2)
    # Bin 1: predicted 0.1, observed 0; bin 2: predicted 0.3, observed 0.5; half the rows each.
    assert table[["predicted", "observed", "rows"]].to_numpy().tolist() == [
        [0.1, 0.0, 2],
        [0.3, 0.5, 2],
    ]
    assert ece == pytest.approx(0.5 * 0.1 + 0.5 * 0.2)


def test_lift_and_gains() -> None:
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    score = np.arange(10, 0, -1)  # the first row scores highest
    # Top 10 % is row 0, a buyer: 1 / base rate 0.2 = 5.
    assert lift_at(y, score, 0.1) == pytest.approx(5.0)
    g = gains(y, score, points=2)
    assert g["buyers"].tolist() == [1.0, 1.0]  # both buyers are in the first half
    assert g["users"].tolist() == [0.5, 1.0]


def test_rfm_ranks_recent_frequent_big_spenders_first() -> None:
    f = pd.DataFrame(
        {
            "days_since_purchase": [3.0, 200.0, 400.0],
            "purchase_days_365d": [6.0, 1.0, 0.0],
            "revenue_365d": [500.0, 40.0, 0.0],
            "days_since_visit": [1.0, 30.0, 2.0],
        }
    )
    s = rfm_score(f)
    assert s[0] > s[1] > s[2]
