"""The statistics behind promotion, validated by simulation against known answers.

Figures printed here (run with -s) are the ones quoted in docs/evaluation.md."""

import numpy as np
import pytest

from flywheel_assets.evaluation import (
    ab_test,
    assign_variant,
    calibration,
    estimate_policy_value,
    estimate_ranking_value,
    holm_adjust,
    non_inferiority_test,
    recall_at_k,
    required_sample_size,
    srm_test,
)

# ----- online A/B ----------------------------------------------------------------------------


def _experiments(lift: float, reps: int, looks: int, per_look: int, seed: int) -> float:
    """Share of experiments declared significant at any of ``looks`` daily looks."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        # Per-user purchases: a skewed count, as real per-user outcomes are.
        control = rng.poisson(0.3, looks * per_look).astype(float)
        treatment = rng.poisson(0.3 * (1 + lift), looks * per_look).astype(float)
        for day in range(1, looks + 1):
            n = day * per_look
            if ab_test(control[:n], treatment[:n], alpha=0.05).significant:
                hits += 1
                break
    return hits / reps


def test_aa_false_positives_stay_below_alpha_with_daily_looks():
    fpr = _experiments(0.0, reps=500, looks=10, per_look=1000, seed=11)
    print(f"\nA/A: {fpr:.3f} of 500 experiments significant at any of 10 daily looks")
    assert fpr <= 0.05 + 0.01


def test_peeking_at_a_fixed_horizon_test_would_not_be_valid():
    """Why the sequential test exists: the same daily looks with Welch's t-test inflate
    the false-positive rate far above alpha."""
    rng = np.random.default_rng(12)
    hits = 0
    for _ in range(200):
        c, t = rng.poisson(0.3, 10_000).astype(float), rng.poisson(0.3, 10_000).astype(float)
        hits += any(
            ab_test(c[:n], t[:n], sequential=False).significant for n in range(1000, 10_001, 1000)
        )
    assert hits / 200 > 0.10


def test_power_on_a_known_five_percent_lift_is_reported():
    """A 5% lift on purchases per user (Poisson, mean 0.3) with daily looks of 4,000 users per
    arm: the price of looking every day is about twice the fixed-horizon sample size."""
    power = _experiments(0.05, reps=200, looks=10, per_look=4000, seed=13)
    fixed = required_sample_size(0.3, np.sqrt(0.3), 0.05)
    print(
        f"\npower on a 5% lift (Poisson 0.3 per user, 10 looks of 4,000 users per arm): "
        f"{power:.2f}; a fixed-horizon test needs {fixed} users per arm for 80%"
    )
    assert 20_000 < fixed < 22_000
    assert power > 0.7


def test_ab_test_result_is_consistent():
    rng = np.random.default_rng(3)
    c = rng.normal(1.0, 1.0, 5000)
    t = rng.normal(1.2, 1.0, 5000)
    for sequential in (True, False):
        res = ab_test(c, t, sequential=sequential)
        assert res.effect == pytest.approx(t.mean() - c.mean())
        assert res.ci_low < res.effect < res.ci_high
        assert res.significant and res.p_value <= 0.05
        assert res.ci_low > 0
    seq, fixed = ab_test(c, t), ab_test(c, t, sequential=False)
    # Validity at every look costs width.
    assert seq.ci_high - seq.ci_low > fixed.ci_high - fixed.ci_low
    same = ab_test(c, c + 0.0)
    assert not same.significant and same.p_value == pytest.approx(1.0)


def test_sequential_interval_covers_the_true_effect_at_every_look():
    rng = np.random.default_rng(21)
    misses = 0
    for _ in range(300):
        c = rng.exponential(1.0, 8000)
        t = rng.exponential(1.1, 8000)
        misses += any(
            not (r.ci_low <= 0.1 <= r.ci_high)
            for r in (ab_test(c[:n], t[:n]) for n in range(800, 8001, 800))
        )
    assert misses / 300 <= 0.05 + 0.01


def test_cuped_keeps_the_effect_unbiased_and_narrows_the_interval():
    rng = np.random.default_rng(4)
    effects_raw, effects_cuped, widths = [], [], []
    for _ in range(200):
        pre_c, pre_t = rng.gamma(2.0, 1.0, 3000), rng.gamma(2.0, 1.0, 3000)
        c = pre_c + rng.normal(0, 1, 3000)
        t = pre_t + rng.normal(0, 1, 3000) + 0.1
        raw = ab_test(c, t)
        adj = ab_test(c, t, control_covariate=pre_c, treatment_covariate=pre_t)
        effects_raw.append(raw.effect)
        effects_cuped.append(adj.effect)
        widths.append((adj.ci_high - adj.ci_low) / (raw.ci_high - raw.ci_low))
        assert adj.variance_reduction > 0.4
    assert np.mean(effects_cuped) == pytest.approx(0.1, abs=0.01)
    assert np.std(effects_cuped) < 0.8 * np.std(effects_raw)
    assert np.mean(widths) < 0.8


def test_srm_flags_a_broken_split_and_passes_a_fair_one():
    assert not srm_test([5000, 5030], [0.5, 0.5]).mismatch
    broken = srm_test([5000, 5400], [0.5, 0.5])
    assert broken.mismatch and broken.p_value < 0.001
    assert not srm_test([8000, 2000], [0.8, 0.2]).mismatch
    # A fair split flags at about the test's own alpha (0.001), not more.
    rng = np.random.default_rng(5)
    flagged = sum(
        srm_test(rng.multinomial(10_000, [0.7, 0.3]), [0.7, 0.3]).mismatch for _ in range(2000)
    )
    assert flagged <= 8


@pytest.mark.parametrize(
    "counts, shares, message",
    [
        ([10, 20], [0.5], "equally long"),
        ([10, -1], [0.5, 0.5], "non-negative"),
        ([10, 20], [0.7, 0.7], "sum to 1"),
        ([10, 20], [1.0, 0.0], "positive"),
        ([10.5, 20], [0.5, 0.5], "whole"),
    ],
)
def test_srm_rejects_bad_input(counts, shares, message):
    with pytest.raises(ValueError, match=message):
        srm_test(counts, shares)


def test_ab_test_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        ab_test([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        ab_test([], [1.0, 2.0])
    with pytest.raises(ValueError, match="alpha"):
        ab_test([1.0, 2.0], [1.0, 2.0], alpha=1.5)
    with pytest.raises(ValueError, match="covariate"):
        ab_test([1.0, 2.0], [1.0, 2.0], control_covariate=[1.0, 2.0])


def test_non_inferiority_guardrail():
    rng = np.random.default_rng(6)
    c = rng.normal(10.0, 2.0, 20_000)
    slightly_worse = rng.normal(9.9, 2.0, 20_000)  # -1 %: inside a 5 % margin
    much_worse = rng.normal(8.0, 2.0, 20_000)  # -20 %
    ok = non_inferiority_test("revenue", c, slightly_worse, margin=0.05)
    assert ok.passed and not ok.harmed and ok.margin == pytest.approx(0.5, rel=0.01)
    bad = non_inferiority_test("revenue", c, much_worse, margin=0.05)
    assert bad.harmed and not bad.passed
    # Lower is better (latency): 20 % slower fails a 10 % margin.
    latency = non_inferiority_test("latency", c, c * 1.2, margin=0.10, higher_is_better=False)
    assert latency.harmed and not latency.passed
    # Too little data proves nothing either way.
    unsure = non_inferiority_test("revenue", c[:50], slightly_worse[:50], margin=0.05)
    assert not unsure.passed and not unsure.harmed


def test_holm_adjustment():
    adjusted = holm_adjust([0.01, 0.04, 0.03])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])


def test_assignment_is_deterministic_and_splits_at_the_share():
    users = [f"u{i}" for i in range(20_000)]
    arms = [assign_variant(u, "exp-1", 0.3) for u in users]
    assert arms == [assign_variant(u, "exp-1", 0.3) for u in users]
    share = arms.count("challenger") / len(arms)
    assert share == pytest.approx(0.3, abs=0.015)
    assert not srm_test([arms.count("champion"), arms.count("challenger")], [0.7, 0.3]).mismatch
    other = [assign_variant(u, "exp-2", 0.3) for u in users]
    overlap = sum(a == b == "challenger" for a, b in zip(arms, other, strict=True)) / len(users)
    assert overlap == pytest.approx(0.09, abs=0.01)  # independent across experiments


# ----- off-policy evaluation ---------------------------------------------------------------


def _logged_bandit(rng: np.random.Generator, n: int = 3000, k: int = 10):
    """Contextual bandit logs with a known answer: the expected reward of the target policy
    on these contexts. Logging: epsilon-greedy on a misspecified score; target: a softmax
    on the truth. A reward model with multiplicative error serves DM and DR."""
    theta = np.random.default_rng(123).normal(size=(3, k))
    x = rng.normal(size=(n, 3))
    q = 1 / (1 + np.exp(-(x @ theta - 1.5)))
    greedy = np.argmax(x @ (theta + np.random.default_rng(7).normal(size=(3, k))), axis=1)
    mu = np.full((n, k), 0.2 / k)
    mu[np.arange(n), greedy] += 0.8
    logits = 3 * (x @ theta)
    pt = np.exp(logits - logits.max(1, keepdims=True))
    pt /= pt.sum(1, keepdims=True)
    a = (rng.random((n, 1)) > np.cumsum(mu, axis=1)).sum(axis=1)
    r = (rng.random(n) < q[np.arange(n), a]).astype(float)
    q_hat = np.clip(q * (1 + rng.normal(0, 0.3, size=q.shape)), 0, 1)
    rows = np.arange(n)
    truth = float((pt * q).sum(1).mean())
    return r, mu[rows, a], pt[rows, a], q_hat[rows, a], (pt * q_hat).sum(1), truth


def test_off_policy_intervals_cover_the_truth_and_dr_beats_ips():
    rng = np.random.default_rng(8)
    reps = 250
    errors = {e: [] for e in ("ips", "snips", "dm", "dr")}
    covered = {e: 0 for e in ("ips", "snips", "dr")}
    for _ in range(reps):
        r, mu, pi, r_hat, t_hat, truth = _logged_bandit(rng)
        for est in errors:
            res = estimate_policy_value(
                r, mu, pi, estimator=est, reward_hat=r_hat, target_reward_hat=t_hat
            )
            errors[est].append(res.value - truth)
            if est in covered:
                covered[est] += res.ci_low <= truth <= res.ci_high
    rmse = {e: float(np.sqrt(np.mean(np.square(v)))) for e, v in errors.items()}
    coverage = {e: c / reps for e, c in covered.items()}
    print(f"\noff-policy over {reps} replications: RMSE {rmse}, 95% coverage {coverage}")
    assert 0.92 <= coverage["snips"] <= 0.98
    assert 0.92 <= coverage["dr"] <= 0.98
    assert rmse["dr"] < rmse["ips"]


def test_bootstrap_interval_is_seeded_and_close_to_analytic():
    r, mu, pi, r_hat, t_hat, _ = _logged_bandit(np.random.default_rng(9))
    a = estimate_policy_value(r, mu, pi, ci="bootstrap", seed=1)
    b = estimate_policy_value(r, mu, pi, ci="bootstrap", seed=1)
    analytic = estimate_policy_value(r, mu, pi)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert a.value == analytic.value
    assert a.ci_low == pytest.approx(analytic.ci_low, abs=0.01)
    assert a.ci_high == pytest.approx(analytic.ci_high, abs=0.01)


def test_clipping_and_effective_sample_size():
    r, mu, pi, *_ = _logged_bandit(np.random.default_rng(10))
    exact = estimate_policy_value(r, mu, pi, estimator="ips")
    clipped = estimate_policy_value(r, mu, pi, estimator="ips", clip=5.0)
    assert clipped.max_weight <= 5.0 < exact.max_weight
    assert clipped.ess > exact.ess
    assert 0 < exact.ess < len(r)
    on_policy = estimate_policy_value(r, mu, mu, estimator="ips")
    assert on_policy.ess == pytest.approx(len(r))
    assert on_policy.value == pytest.approx(r.mean())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rewards=[1, 0], logged_propensity=[0.5], target_propensity=[0.5, 0.5]), "lengths"),
        (dict(rewards=[1, 0], logged_propensity=[0.5, 0.0], target_propensity=[1, 1]), r"\(0, 1\]"),
        (dict(rewards=[1, 0], logged_propensity=[0.5, 1.2], target_propensity=[1, 1]), r"\(0, 1\]"),
        (dict(rewards=[1, 0], logged_propensity=[0.5, 0.5], target_propensity=[1, -0.1]), r"\[0, 1\]"),
        (dict(rewards=[1, np.nan], logged_propensity=[0.5, 0.5], target_propensity=[1, 1]), "NaN"),
        (dict(rewards=[], logged_propensity=[], target_propensity=[]), "empty"),
        (dict(rewards=[1, 0], logged_propensity=[0.5, 0.5], target_propensity=[1, 1], estimator="dr"), "reward_hat"),
        (dict(rewards=[1, 0], logged_propensity=[0.5, 0.5], target_propensity=[1, 1], estimator="xx"), "estimator"),
        (dict(rewards=["a", 0], logged_propensity=[0.5, 0.5], target_propensity=[1, 1]), "numeric"),
    ],
)  # fmt: skip
def test_off_policy_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        estimate_policy_value(**kwargs)


def test_position_aware_estimate_of_a_ranking_policy():
    """Slates of 3 from 6 items shown by an epsilon-greedy logger; rewards follow a
    position-based model. The cascade estimator recovers the target's expected reward per
    list, computed exactly by enumerating the target's slates."""
    rng = np.random.default_rng(14)
    n_lists, n_items, k, eps = 6000, 6, 3, 0.3
    exam = np.array([1.0, 0.6, 0.35])
    rel = rng.uniform(0.05, 0.5, size=(n_lists, n_items))
    log_scores = rel + rng.normal(0, 0.3, size=rel.shape)
    target_scores = rel  # the target knows the truth

    def step_probs(scores: np.ndarray, available: np.ndarray) -> np.ndarray:
        p = np.where(available, eps / available.sum(1, keepdims=True), 0.0)
        best = np.argmax(np.where(available, scores, -np.inf), axis=1)
        p[np.arange(len(p)), best] += 1 - eps
        return p

    ids, rewards, mu_rows, pi_rows = [], [], [], []
    available = np.ones((n_lists, n_items), bool)
    for pos in range(k):
        mu = step_probs(log_scores, available)
        pi = step_probs(target_scores, available)
        choice = (rng.random((n_lists, 1)) > np.cumsum(mu, axis=1)).sum(axis=1)
        rows = np.arange(n_lists)
        rewards.append((rng.random(n_lists) < exam[pos] * rel[rows, choice]).astype(float))
        mu_rows.append(mu[rows, choice])
        pi_rows.append(pi[rows, choice])
        ids.append(rows)
        available[rows, choice] = False
    order = np.argsort(np.concatenate(ids), kind="stable")  # list order, slots top first
    flat = [np.concatenate(v)[order] for v in (ids, rewards, mu_rows, pi_rows)]

    # Exact target value: expectation over the target's slates, enumerated slot by slot.
    def value(avail: np.ndarray, pos: int, weight: np.ndarray) -> np.ndarray:
        if pos == k:
            return np.zeros(n_lists)
        p = step_probs(target_scores, avail)
        total = np.zeros(n_lists)
        for item in range(n_items):
            taken = p[:, item] > 0
            if not taken.any():
                continue
            nxt = avail.copy()
            nxt[:, item] = False
            total += p[:, item] * (exam[pos] * rel[:, item] + value(nxt, pos + 1, weight))
        return total

    truth = float(value(np.ones((n_lists, n_items), bool), 0, np.ones(n_lists)).mean())
    est = estimate_ranking_value(*flat, estimator="snips")
    naive = float(flat[1].sum() / n_lists)  # the logger's own value
    assert est.ci_low <= truth <= est.ci_high
    assert abs(est.value - truth) < abs(naive - truth)
    assert est.n == n_lists


# ----- offline metrics ---------------------------------------------------------------------


def test_recall_at_k_and_calibration():
    g = np.array(["a"] * 4 + ["b"] * 4)
    rel = np.array([1, 0, 1, 0, 0, 0, 0, 0])  # b has nothing relevant: ignored
    assert recall_at_k(g, rel, np.array([4, 3, 2, 1, 1, 1, 1, 1]), k=2) == pytest.approx(0.5)
    assert recall_at_k(g, rel, np.array([4, 3, 5, 1, 1, 1, 1, 1]), k=2) == pytest.approx(1.0)
    rng = np.random.default_rng(15)
    p = rng.uniform(0, 0.2, 50_000)
    y = rng.random(50_000) < p
    ece, table = calibration(y, p)
    assert ece < 0.01 and len(table) == 10
    overconfident, _ = calibration(y, np.clip(p * 2, 0, 1))
    assert overconfident > 0.04
