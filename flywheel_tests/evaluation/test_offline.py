import numpy as np
import pandas as pd
import pytest

from flywheel_assets.evaluation import (
    OfflineMetrics,
    auc,
    log_loss,
    ndcg_at_k,
    offline_metrics,
    promotion_rule,
    recall_at_k,
)


def test_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    p = rng.random(300) + y * 0.3
    pos, neg = p[y], p[~y]
    pairwise = (
        (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    ) / (len(pos) * len(neg))
    assert auc(y, p) == pytest.approx(pairwise)
    assert auc(y, y.astype(float)) == 1.0
    assert np.isnan(auc(np.zeros(5), np.arange(5)))


def test_log_loss_of_perfect_and_uninformed():
    y = np.array([0, 1, 1, 0])
    assert log_loss(y, np.array([0.5] * 4)) == pytest.approx(np.log(2))
    assert log_loss(y, y.astype(float)) < 1e-5


def test_ndcg_perfect_reversed_and_no_relevance():
    g = np.array(["a"] * 3 + ["b"] * 3)
    rel = np.array([2, 1, 0, 0, 0, 0])  # request b has nothing relevant: ignored
    assert ndcg_at_k(g, rel, np.array([3, 2, 1, 9, 8, 7]), k=10) == pytest.approx(1.0)
    worst = ndcg_at_k(g, rel, np.array([1, 2, 3, 0, 0, 0]), k=10)
    ideal_dcg = 3 / np.log2(2) + 1 / np.log2(3)
    assert worst == pytest.approx((1 / np.log2(3) + 3 / np.log2(4)) / ideal_dcg)


def m(ndcg: float, log_loss_: float = 0.2) -> OfflineMetrics:
    return OfflineMetrics(n_rows=100, auc=0.7, log_loss=log_loss_, ndcg_at_10=ndcg)


def test_promotion_rule():
    assert promotion_rule(None, m(0.5)).decision == "no_challenger"
    assert promotion_rule(m(0.4), None).decision == "promote"
    assert promotion_rule(m(0.5, 0.19), m(0.5, 0.2)).decision == "promote"
    assert (
        promotion_rule(m(0.495, 0.19), m(0.5, 0.2)).decision == "promote"
    )  # small NDCG noise tolerated
    assert promotion_rule(m(0.5, 0.2), m(0.5, 0.2)).decision == "reject"  # ties keep the champion
    assert promotion_rule(m(0.6, 0.21), m(0.5, 0.2)).decision == "reject"
    # Better calibration bought with a large loss of ranking quality is not a win.
    assert promotion_rule(m(0.45, 0.19), m(0.5, 0.2)).decision == "reject"
    assert promotion_rule(m(float("nan")), m(0.5)).decision == "reject"
    assert "log loss" in promotion_rule(m(0.5, 0.19), m(0.5, 0.2)).reason


def test_every_offline_metric_can_tell_two_models_apart_on_logged_slates():
    """The holdout is the logged slates (10 items a request): a metric that is the same for any
    model there is noise in the gate's table. recall@10 was one (each model's top 10 is the
    whole slate), so it is not reported; every metric that is must differ between a model that
    puts purchases first and one that puts them last."""
    rng = np.random.default_rng(3)
    n_requests, k = 400, 10
    purchase = (rng.random(n_requests * k) < 0.05).astype(int)
    holdout = pd.DataFrame(
        {
            "request_id": np.repeat(np.arange(n_requests), k),
            "label_purchase": purchase,
            "label_click": np.maximum(purchase, rng.random(n_requests * k) < 0.2).astype(int),
        }
    )
    noise = rng.random(len(holdout)) * 0.1
    good = offline_metrics(holdout, np.clip(0.05 + 0.6 * purchase + noise, 0, 1))
    bad = offline_metrics(holdout, np.clip(0.65 - 0.6 * purchase + noise, 0, 1))
    reported = {k: v for k, v in good.as_dict().items() if k != "n_rows"}
    assert set(reported) == {"auc", "log_loss", "ndcg_at_10", "ece"}
    for name, value in reported.items():
        assert value != pytest.approx(bad.as_dict()[name]), name
    # and the one left out is indeed blind on slates of 10: 1.0 for both
    groups, rel = holdout["request_id"].to_numpy(), holdout["label_purchase"].to_numpy()
    assert recall_at_k(groups, rel, np.arange(len(holdout)), k=k) == 1.0
    assert recall_at_k(groups, rel, -np.arange(len(holdout)), k=k) == 1.0
