"""Off-policy evaluation: the value a target policy would have had, from another policy's logs.

Plain numpy on arrays, so users can run it on their own logs. One row per logged action:
its reward, the logging policy's probability of taking it (the logged propensity) and the
target policy's probability of taking it. Estimators (Dudík, Langford & Li 2011; Swaminathan &
Joachims 2015):

- ``ips``:   mean(w * r), w = target / logged. Unbiased; variance grows with the weights.
- ``snips``: sum(w * r) / sum(w). Self-normalised: slightly biased, far steadier.
- ``dm``:    mean(target_reward_hat), a reward model's prediction of the target's reward.
  Low variance, biased by whatever the reward model gets wrong.
- ``dr``:    mean(target_reward_hat + w * (r - reward_hat)). Unbiased when either the
  propensities or the reward model are right; lower variance than IPS when the model is good.

Confidence intervals are analytic by default (central limit theorem on the per-row terms,
delta method for the ratio in SNIPS) or a seeded percentile bootstrap (``ci="bootstrap"``,
scipy.stats.bootstrap). The effective sample size is Kish's (sum w)^2 / sum w^2.

For ranked lists, ``estimate_ranking_value`` sums rewards over positions with the cascade
(reward-interaction) weights: the reward at position p is weighted by the product of the
per-slot probability ratios of positions 0..p. It is unbiased whenever a position's reward
depends only on the items at and above it, which holds for position-based and cascade browsing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

ESTIMATORS = ("ips", "snips", "dm", "dr")
CI_METHODS = ("analytic", "bootstrap")


@dataclass(frozen=True)
class PolicyValue:
    """An off-policy estimate of a policy's mean reward per logged row (or per list)."""

    value: float
    ci_low: float
    ci_high: float
    ess: float
    estimator: str
    n: int
    alpha: float
    ci_method: str
    clip: float | None
    max_weight: float

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _array(name: str, values: object, n: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} values but rewards has {n}: lengths must match")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN or infinite values (first at index "
            f"{int(np.flatnonzero(bad)[0])})"
        )
    return arr


def _validate(
    rewards: object,
    logged_propensity: object,
    target_propensity: object,
    estimator: str,
    reward_hat: object,
    target_reward_hat: object,
    alpha: float,
    clip: float | None,
    ci: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if ci not in CI_METHODS:
        raise ValueError(f"ci must be one of {CI_METHODS}, got {ci!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if clip is not None and not (np.isfinite(clip) and clip > 0):
        raise ValueError(f"clip must be a positive weight cap, got {clip}")
    r = _array("rewards", rewards)
    n = len(r)
    if n == 0:
        raise ValueError("rewards is empty: nothing to estimate from")
    mu = _array("logged_propensity", logged_propensity, n)
    pi = _array("target_propensity", target_propensity, n)
    if ((mu <= 0) | (mu > 1)).any():
        i = int(np.flatnonzero((mu <= 0) | (mu > 1))[0])
        raise ValueError(
            f"logged_propensity must be in (0, 1]: index {i} is {mu[i]!r} "
            "(a logged action the logging policy could not take cannot be reweighted)"
        )
    if ((pi < 0) | (pi > 1)).any():
        i = int(np.flatnonzero((pi < 0) | (pi > 1))[0])
        raise ValueError(f"target_propensity must be in [0, 1]: index {i} is {pi[i]!r}")
    r_hat = None if reward_hat is None else _array("reward_hat", reward_hat, n)
    t_hat = None if target_reward_hat is None else _array("target_reward_hat", target_reward_hat, n)
    if estimator == "dm" and t_hat is None:
        raise ValueError(
            "estimator 'dm' needs target_reward_hat (the model's reward of the target)"
        )
    if estimator == "dr" and (t_hat is None or r_hat is None):
        raise ValueError(
            "estimator 'dr' needs reward_hat (the model's reward of each logged action) and "
            "target_reward_hat (its expected reward under the target policy)"
        )
    return r, mu, pi, r_hat, t_hat


def estimate_policy_value(
    rewards: object,
    logged_propensity: object,
    target_propensity: object,
    *,
    estimator: str = "snips",
    reward_hat: object = None,
    target_reward_hat: object = None,
    alpha: float = 0.05,
    clip: float | None = None,
    seed: int = 0,
    ci: str = "analytic",
    n_bootstrap: int = 999,
) -> PolicyValue:
    """Estimate the target policy's mean reward per logged row with a (1 - alpha) interval.

    ``clip`` caps the importance weights (bias for variance; None keeps them exact). ``seed``
    makes the bootstrap reproducible. Raises ValueError on bad input."""
    r, mu, pi, r_hat, t_hat = _validate(
        rewards, logged_propensity, target_propensity, estimator, reward_hat,
        target_reward_hat, alpha, clip, ci,
    )  # fmt: skip
    w = pi / mu
    if clip is not None:
        w = np.minimum(w, clip)
    numerator, denominator = _terms(estimator, r, w, r_hat, t_hat)
    value = _ratio(numerator.sum(), denominator.sum())
    if ci == "analytic":
        low, high = _analytic_ci(numerator, denominator, value, alpha)
    else:
        low, high = _bootstrap_ci(numerator, denominator, alpha, seed, n_bootstrap)
    return PolicyValue(
        value=float(value),
        ci_low=float(low),
        ci_high=float(high),
        ess=_ess(w),
        estimator=estimator,
        n=len(r),
        alpha=alpha,
        ci_method=ci,
        clip=clip,
        max_weight=float(w.max()),
    )


def _terms(
    estimator: str,
    r: np.ndarray,
    w: np.ndarray,
    r_hat: np.ndarray | None,
    t_hat: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row numerator and denominator terms: every estimator is sum(num) / sum(den)."""
    ones = np.ones_like(r)
    if estimator == "ips":
        return w * r, ones
    if estimator == "snips":
        return w * r, w
    if estimator == "dm":
        assert t_hat is not None
        return t_hat, ones
    assert t_hat is not None and r_hat is not None
    return t_hat + w * (r - r_hat), ones


def _ratio(num: float, den: float) -> float:
    # All weights zero (the target never takes a logged action): SNIPS has no information.
    return num / den if den > 0 else float("nan")


def _ess(w: np.ndarray) -> float:
    sq = float((w**2).sum())
    return float(w.sum() ** 2 / sq) if sq > 0 else 0.0


def _analytic_ci(
    num: np.ndarray, den: np.ndarray, value: float, alpha: float
) -> tuple[float, float]:
    n = len(num)
    if n < 2 or not np.isfinite(value):
        return float("-inf"), float("inf")
    # Linearised terms: for a plain mean den is 1 and this is the usual standard error; for
    # SNIPS it is the delta method for a ratio of means.
    influence = (num - value * den) / den.mean()
    se = influence.std(ddof=1) / np.sqrt(n)
    z = stats.norm.ppf(1 - alpha / 2)
    return value - z * se, value + z * se


def _bootstrap_ci(
    num: np.ndarray, den: np.ndarray, alpha: float, seed: int, n_bootstrap: int
) -> tuple[float, float]:
    if len(num) < 2:
        return float("-inf"), float("inf")

    def statistic(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return a.sum(axis=axis) / b.sum(axis=axis)

    res = stats.bootstrap(
        (num, den),
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=n_bootstrap,
        confidence_level=1 - alpha,
        method="percentile",
        rng=np.random.default_rng(seed),
        batch=max(1, 20_000_000 // max(len(num), 1)),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def cascade_weights(
    list_ids: object, logged_propensity: object, target_propensity: object
) -> np.ndarray:
    """Per-row weights for ranked lists: the product of per-slot probability ratios from the
    top of the list to the row's slot. Rows must be in list order (top first) within each list;
    propensities are each slot's probability given the items above it, as flywheel logs them."""
    mu = np.asarray(logged_propensity, dtype=float)
    pi = np.asarray(target_propensity, dtype=float)
    with np.errstate(divide="ignore"):
        log_ratio = np.log(pi) - np.log(mu)
    cum = pd.Series(log_ratio).groupby(np.asarray(list_ids), sort=False).cumsum().to_numpy()
    return np.exp(cum)


def estimate_ranking_value(
    list_ids: object,
    rewards: object,
    logged_propensity: object,
    target_propensity: object,
    *,
    estimator: str = "snips",
    alpha: float = 0.05,
    clip: float | None = None,
    seed: int = 0,
    ci: str = "analytic",
) -> PolicyValue:
    """Position-aware estimate of the target's expected reward per list (e.g. purchases per
    request): the cascade estimator (see module doc). ``estimator`` is "ips" or "snips" (the
    self-normalised form divides by the mean top-slot weight, which has expectation 1).
    Rows are (list, slot) in slot order; the interval resamples whole lists."""
    if estimator not in ("ips", "snips"):
        raise ValueError(f"estimator must be 'ips' or 'snips' for ranked lists, got {estimator!r}")
    r, mu, pi, _, _ = _validate(
        rewards, logged_propensity, target_propensity, "ips", None, None, alpha, clip, ci
    )
    ids = np.asarray(list_ids)
    if len(ids) != len(r):
        raise ValueError(f"list_ids has {len(ids)} values but rewards has {len(r)}")
    w = cascade_weights(ids, mu, pi)
    if clip is not None:
        w = np.minimum(w, clip)
    frame = pd.DataFrame({"list": ids, "wr": w * r, "w": w})
    per_list = frame.groupby("list", sort=False).agg(wr=("wr", "sum"), w0=("w", "first"))
    num = per_list["wr"].to_numpy()
    den = per_list["w0"].to_numpy() if estimator == "snips" else np.ones(len(per_list))
    value = _ratio(num.sum(), den.sum())
    if ci == "analytic":
        low, high = _analytic_ci(num, den, value, alpha)
    else:
        low, high = _bootstrap_ci(num, den, alpha, seed, 999)
    return PolicyValue(
        value=float(value),
        ci_low=float(low),
        ci_high=float(high),
        ess=_ess(w),
        estimator=f"cascade_{estimator}",
        n=len(per_list),
        alpha=alpha,
        ci_method=ci,
        clip=clip,
        max_weight=float(w.max()),
    )
