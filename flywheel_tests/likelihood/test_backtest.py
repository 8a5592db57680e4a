"""The must-show on the simulator: calibration, ranking and lift over the RFM baseline on
held-out days, and the simulator's truth agreeing with what its users then did."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from flywheel_assets.likelihood.backtest import RFM, backtest
from flywheel_assets.likelihood.metrics import calibration
from flywheel_assets.likelihood.model import LikelihoodParams
from flywheel_assets.simulation.customers import customer_history

pytestmark = pytest.mark.xdist_group("likelihood_backtest")


@lru_cache(maxsize=1)
def _run():
    shop = customer_history(dt.date(2025, 1, 1), 300, n_users=20_000, seed=1)
    summary, rows = backtest(shop.history, {"model": LikelihoodParams()}, days=4)
    return shop, summary.set_index(["horizon_days", "model"]), rows


@pytest.mark.parametrize("h", [7, 30])
def test_calibrated_on_held_out_days_and_ranks_above_rfm(h: int) -> None:
    _, s, _ = _run()
    model, rfm = s.loc[(h, "model")], s.loc[(h, RFM)]
    # Measured: ECE 0.0020 (7 d) and 0.0097 (30 d); AUC 0.793 and 0.799 against RFM's 0.726.
    assert model["ece"] <= 0.02
    assert model["auc"] > rfm["auc"] + 0.03
    # Measured: lift at the top decile 4.05 against 3.15 (7 d), 3.41 against 2.81 (30 d).
    assert model["lift_top10"] >= 1.2 * rfm["lift_top10"]


@pytest.mark.parametrize("h", [7, 30])
def test_the_predictions_match_the_simulators_truth(h: int) -> None:
    shop, _, rows = _run()
    g = rows[rows["horizon_days"] == h]
    truth = pd.concat(
        [
            pd.Series(shop.truth(d, part["user_id"].to_numpy(), h), index=part.index)
            for d, part in g.groupby("day")
        ]
    ).reindex(g.index)
    # The truth is what the users then did, on average (within 3 standard errors) ...
    se = np.sqrt((truth * (1 - truth)).sum()) / len(truth)
    assert abs(truth.mean() - g["y"].mean()) < 3 * se
    # ... and the model's probabilities are calibrated against it too.
    ece, _ = calibration(truth.to_numpy(), g["model"].to_numpy())
    assert ece <= 0.02
