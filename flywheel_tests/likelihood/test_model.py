"""The model: calibrators, the days it trains and calibrates on, bytes and lineage."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pytest

from flywheel_assets.likelihood.history import snapshot
from flywheel_assets.likelihood.metrics import log_loss
from flywheel_assets.likelihood.model import (
    Calibrator,
    LikelihoodModel,
    LikelihoodParams,
    choose_calibrator,
    snapshot_days,
)
from flywheel_assets.simulation.customers import customer_history

START = dt.date(2025, 1, 1)
PARAMS = LikelihoodParams(num_boost_round=60, training_days=4)


@lru_cache(maxsize=1)
def _shop():
    return customer_history(START, 260, n_users=3000, seed=3)


def test_no_training_label_reaches_the_calibration_days() -> None:
    as_of = dt.date(2025, 9, 1)
    for h in (7, 30):
        train, cal = snapshot_days(as_of, h, LikelihoodParams())
        assert max(cal) + dt.timedelta(days=h) == as_of  # newest labels end on as_of
        assert max(train) + dt.timedelta(days=h) <= min(cal)
        assert len(train) == 8 and len(cal) == 2


def test_calibrators_fix_a_miscalibrated_score() -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.01, 0.5, 40_000)
    y = (rng.random(len(truth)) < truth).astype(float)
    raw = truth**2  # ranks right, probabilities too low
    for kind in ("isotonic", "platt"):
        cal = Calibrator.fit(kind, raw[:20_000], y[:20_000])
        fixed = cal(raw[20_000:])
        assert log_loss(y[20_000:], fixed) < log_loss(y[20_000:], raw[20_000:]) - 0.02
        assert abs(fixed.mean() - y[20_000:].mean()) < 0.01
    chosen, losses = choose_calibrator(raw, y, np.arange(len(y)).astype(str))
    assert chosen.kind in ("isotonic", "platt") and losses[chosen.kind] < losses["none"]


def test_isotonic_pools_tied_scores() -> None:
    # A booster's scores are piecewise constant: two groups of tied scores, with their own
    # rates, must come out as those rates (not a step drawn inside a tie).
    rng = np.random.default_rng(1)
    p = np.repeat([0.2, 0.4], 5000)
    truth = np.repeat([0.09, 0.33], 5000)
    y = (rng.random(len(p)) < truth).astype(float)
    cal = Calibrator.fit("isotonic", p, y)
    fixed = cal(np.array([0.2, 0.4]))
    np.testing.assert_allclose(fixed, [y[:5000].mean(), y[5000:].mean()])
    assert abs(fixed[0] - 0.09) < 0.015 and abs(fixed[1] - 0.33) < 0.02


def test_fit_is_deterministic_to_the_byte_and_round_trips() -> None:
    history = _shop().history
    as_of = dt.date(2025, 9, 10)
    a = LikelihoodModel(PARAMS).fit(history, as_of)
    b = LikelihoodModel(PARAMS).fit(history, as_of)
    assert a.to_bytes() == b.to_bytes() and a.model_version.startswith("likelihood-")
    c = LikelihoodModel.from_bytes(a.to_bytes())
    features = snapshot(history, as_of)
    np.testing.assert_array_equal(a.predict(features)["p_7d"], c.predict(features)["p_7d"])
    lineage = a.lineage()
    assert lineage["horizons"]["30"]["calibration"] in ("isotonic", "platt")
    assert lineage["horizons"]["7"]["training_rows"] > 1000


def test_fit_ignores_what_arrived_after_its_day() -> None:
    history = _shop().history
    as_of = dt.date(2025, 9, 10)
    known = LikelihoodModel(PARAMS).fit(history, as_of).to_bytes()
    cut = history.activity[history.activity["dt"] <= as_of]
    from flywheel_assets.likelihood.history import UserHistory

    shorter = UserHistory(cut, history.users, through=as_of)
    assert LikelihoodModel(PARAMS).fit(shorter, as_of).to_bytes() == known


def test_too_little_history_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not enough labelled history"):
        LikelihoodModel(PARAMS).fit(_shop().history, START + dt.timedelta(days=40))
