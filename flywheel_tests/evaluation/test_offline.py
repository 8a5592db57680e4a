import numpy as np
import pytest

from flywheel_assets.evaluation import (
    OfflineMetrics,
    auc,
    log_loss,
    ndcg_at_k,
    promotion_rule,
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
