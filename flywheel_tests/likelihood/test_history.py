"""Point-in-time snapshots: nothing that happened, or arrived, after the day changes it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from flywheel_assets.likelihood.history import FEATURES, UserHistory, labels, snapshot

D = dt.date(2025, 6, 30)


def _row(user: str, day: dt.date, arrived: dt.date | None = None, **counts: float) -> dict:
    base = {"views": 0, "clicks": 0, "carts": 0, "sessions": 0, "purchases": 0, "revenue": 0.0}
    return {"user_id": user, "dt": arrived or day, "day": day, **base, **counts}


def _history(extra: list[dict] = ()) -> UserHistory:
    rows = [
        _row("a", D - dt.timedelta(days=40), purchases=1, revenue=30.0, views=3),
        _row("a", D - dt.timedelta(days=2), views=5, clicks=2, carts=1, sessions=1),
        _row("b", D, views=1, sessions=1),
        _row("c", D - dt.timedelta(days=200), purchases=2, revenue=80.0),  # inactive for 90 d
        *extra,
    ]
    users = pd.DataFrame(
        {"user_id": ["a", "b"], "dt": [D - dt.timedelta(days=300)] * 2,
         "signup_date": [D - dt.timedelta(days=300), D - dt.timedelta(days=10)]}
    )  # fmt: skip
    return UserHistory(pd.DataFrame(rows), users, through=D + dt.timedelta(days=30))


def test_snapshot_features_by_hand() -> None:
    s = snapshot(_history(), D).set_index("user_id")
    assert list(s.index) == ["a", "b"]  # c did nothing in the last 90 days
    assert list(s.columns) == FEATURES
    a = s.loc["a"]
    assert a["days_since_purchase"] == 40 and a["days_since_visit"] == 2
    assert a["purchases_30d"] == 0 and a["purchases_90d"] == 1 and a["revenue_365d"] == 30
    assert a["views_7d"] == 5 and a["views_30d"] == 5 and a["carts_7d"] == 1
    assert a["avg_order_value_365d"] == 30 and a["days_since_signup"] == 300
    assert s.loc["b", "days_since_purchase"] == 400 and s.loc["b", "views_1d"] == 1


def test_a_purchase_after_the_day_changes_no_feature_of_that_day() -> None:
    before = snapshot(_history(), D)
    later = [
        _row("a", D + dt.timedelta(days=1), purchases=3, revenue=99.0, views=9),
        # About the day itself, but arrived the day after: not known at the end of D.
        _row("b", D, arrived=D + dt.timedelta(days=1), purchases=1, revenue=10.0, views=4),
        _row("d", D + dt.timedelta(days=2), views=2),
    ]
    after = snapshot(_history(later), D)
    pd.testing.assert_frame_equal(before, after)
    # ... and the labels of D see those purchases.
    y = labels(_history(later), D, np.array(["a", "b"]), (7, 30))
    assert y["y_7d"].tolist() == [1, 0] and y["y_30d"].tolist() == [1, 0]


def test_labels_need_the_whole_horizon_observed() -> None:
    h = _history()
    with pytest.raises(ValueError, match="need days up to"):
        labels(h, D + dt.timedelta(days=5), np.array(["a"]), (30,))
