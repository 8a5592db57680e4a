"""The recency-frequency-monetary (RFM) baseline a CRM team would use without a model.

Each active user gets a quintile score from 1 to 5 on recency (days since the last purchase,
fewer is better), frequency (purchase days in the last 365 days) and monetary value (revenue in
the last 365 days), over the users of the same snapshot; the RFM score is their sum (3 to 15),
ties broken by the most recent visit. It ranks, it does not give a probability: it is compared
on ranking (AUC) and on the campaign figures (lift and gains), not on calibration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _quintile(values: pd.Series, higher_is_better: bool) -> np.ndarray:
    """1..5 by rank (ties share the lowest rank's quintile); 1 for everyone when all tie."""
    v = values if higher_is_better else -values
    ranks = v.rank(method="min", pct=True).to_numpy()
    return np.ceil(ranks * 5).clip(1, 5)


def rfm_score(features: pd.DataFrame) -> np.ndarray:
    """The RFM score of each row of a snapshot (``history.FEATURES`` columns)."""
    r = _quintile(features["days_since_purchase"], higher_is_better=False)
    f = _quintile(features["purchase_days_365d"], higher_is_better=True)
    m = _quintile(features["revenue_365d"], higher_is_better=True)
    # The most recent visit breaks ties within a score, a fraction below one point.
    visit = 1.0 / (1.0 + features["days_since_visit"].to_numpy("float64"))
    return r + f + m + 0.5 * visit
