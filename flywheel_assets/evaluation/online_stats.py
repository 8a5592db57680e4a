"""Online experiment statistics: sequential A/B tests, sample-ratio mismatch, CUPED,
non-inferiority guardrails and the correction across metrics. Plain numpy/scipy/statsmodels.

Sequential testing (``sequential=True``, the default) uses the normal-mixture sequential
probability ratio test (mSPRT; Johari, Pekelis & Walsh 2017 / 2022), which for a difference of
means is the same as the Gaussian-mixture asymptotic confidence sequence of Waudby-Smith et
al. (2023). Its confidence interval holds at every look simultaneously, so it may be computed
every day, on all the data so far, and acted on the first day it excludes zero: the chance of
ever wrongly excluding the truth stays at most alpha. Its one parameter, the mixing variance
tau^2, only moves where the interval is tightest: flywheel sets it so the sequence is tightest
when each arm has ``planned_n`` units (docs/decisions.md, 41).

``sequential=False`` is Welch's fixed-horizon t-test (scipy): valid only when looked at once,
at a sample size fixed in advance (``required_sample_size``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

DEFAULT_PLANNED_N = 10_000
SRM_ALPHA = 0.001


@dataclass(frozen=True)
class ABTestResult:
    """treatment - control on the per-unit outcome means (CUPED-adjusted when covariates are
    given; control_mean and treatment_mean are always the raw means)."""

    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    control_mean: float
    treatment_mean: float
    n_control: int
    n_treatment: int
    alpha: float
    sequential: bool
    variance_reduction: float = 0.0  # CUPED: share of the outcome variance removed

    @property
    def relative_effect(self) -> float:
        return self.effect / self.control_mean if self.control_mean else float("nan")

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "relative_effect": self.relative_effect}


@dataclass(frozen=True)
class SRMResult:
    p_value: float
    mismatch: bool
    counts: tuple[int, ...]
    expected: tuple[float, ...]
    alpha: float


@dataclass(frozen=True)
class GuardrailResult:
    """A non-inferiority test: the treatment may not be worse than control by more than the
    margin. ``passed`` needs the whole interval on the acceptable side of the margin;
    ``harmed`` means the interval lies wholly beyond it (stop early)."""

    metric: str
    margin: float  # absolute, in the metric's units
    higher_is_better: bool
    test: ABTestResult
    passed: bool
    harmed: bool


def _outcomes(name: str, values: object) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric per-unit outcomes: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty: each arm needs at least one unit")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} NaN or infinite values")
    return arr


def cuped_adjust(
    control: np.ndarray,
    treatment: np.ndarray,
    control_covariate: np.ndarray,
    treatment_covariate: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, float]:
    """CUPED (Deng et al. 2013): y - theta * (x - mean x), theta = cov(x, y) / var(x) pooled
    over both arms. The covariate must not be affected by the treatment (a pre-period metric).
    Returns the adjusted arms and the share of variance removed."""
    y = np.concatenate([control, treatment])
    x = np.concatenate([control_covariate, treatment_covariate])
    var_x = x.var(ddof=1) if len(x) > 1 else 0.0
    if var_x <= 0:
        return control, treatment, 0.0
    theta = np.cov(x, y, ddof=1)[0, 1] / var_x
    mean_x = x.mean()
    c = control - theta * (control_covariate - mean_x)
    t = treatment - theta * (treatment_covariate - mean_x)
    var_y = y.var(ddof=1)
    adjusted = np.concatenate([c, t]).var(ddof=1)
    return c, t, float(1 - adjusted / var_y) if var_y > 0 else 0.0


def mixture_tau2(variance_c: float, variance_t: float, planned_n: int, alpha: float) -> float:
    """The mixing variance that makes the confidence sequence tightest when each arm has
    ``planned_n`` units (Waudby-Smith et al. 2023, eq. for the optimal rho)."""
    v_planned = variance_c / planned_n + variance_t / planned_n
    c = -2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))
    return v_planned * c


def ab_test(
    control: object,
    treatment: object,
    *,
    alpha: float = 0.05,
    sequential: bool = True,
    control_covariate: object = None,
    treatment_covariate: object = None,
    planned_n: int = DEFAULT_PLANNED_N,
) -> ABTestResult:
    """Compare per-unit outcome means (treatment - control) with a (1 - alpha) interval.

    Sequential by default: call it again as data accumulate, and act on the first look that
    is significant. Covariates (one pre-period value per unit) turn on CUPED."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if planned_n < 2:
        raise ValueError(f"planned_n must be at least 2, got {planned_n}")
    c = _outcomes("control", control)
    t = _outcomes("treatment", treatment)
    raw_c, raw_t = c, t
    reduction = 0.0
    if (control_covariate is None) != (treatment_covariate is None):
        raise ValueError("CUPED needs a covariate for both arms or for neither")
    if control_covariate is not None:
        xc = _outcomes("control_covariate", control_covariate)
        xt = _outcomes("treatment_covariate", treatment_covariate)
        if len(xc) != len(c) or len(xt) != len(t):
            raise ValueError("each covariate must have one value per unit of its arm")
        c, t, reduction = cuped_adjust(c, t, xc, xt)
    # With CUPED the effect is the difference of the adjusted means: the same expectation as
    # the raw difference under randomisation, with the pre-period's noise taken out.
    effect = float(t.mean() - c.mean())
    var_c = float(c.var(ddof=1)) if len(c) > 1 else float("nan")
    var_t = float(t.var(ddof=1)) if len(t) > 1 else float("nan")
    v = var_c / len(c) + var_t / len(t)
    common = dict(
        effect=effect,
        control_mean=float(raw_c.mean()),
        treatment_mean=float(raw_t.mean()),
        n_control=len(c),
        n_treatment=len(t),
        alpha=alpha,
        sequential=sequential,
        variance_reduction=reduction,
    )
    if not np.isfinite(v) or v <= 0:
        # One unit, or no variation at all: no evidence either way.
        return ABTestResult(
            ci_low=float("-inf"), ci_high=float("inf"), p_value=1.0, significant=False, **common
        )
    if sequential:
        tau2 = mixture_tau2(var_c, var_t, planned_n, alpha)
        half = math.sqrt(v * (v + tau2) / tau2 * (math.log((v + tau2) / v) - 2 * math.log(alpha)))
        log_lr = 0.5 * math.log(v / (v + tau2)) + tau2 * effect**2 / (2 * v * (v + tau2))
        p_value = float(min(1.0, math.exp(-log_lr)))
    else:
        res = stats.ttest_ind(t, c, equal_var=False)
        p_value = float(res.pvalue)
        interval = res.confidence_interval(confidence_level=1 - alpha)
        half = float(interval.high - interval.low) / 2
    low, high = effect - half, effect + half
    return ABTestResult(
        ci_low=float(low),
        ci_high=float(high),
        p_value=p_value,
        significant=bool(low > 0 or high < 0),
        **common,
    )


def srm_test(
    counts: Sequence[int] | np.ndarray,
    expected_shares: Sequence[float] | np.ndarray,
    *,
    alpha: float = SRM_ALPHA,
) -> SRMResult:
    """Sample-ratio mismatch: a chi-square goodness-of-fit test of the units per variant
    against the designed shares. A mismatch means the assignment or the logging is broken and
    the experiment's results cannot be trusted, whatever they say."""
    try:
        obs = np.asarray(counts, dtype=float)
        shares = np.asarray(expected_shares, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"counts and expected_shares must be numeric: {exc}") from None
    if obs.ndim != 1 or shares.ndim != 1 or len(obs) != len(shares):
        raise ValueError(
            f"counts ({obs.shape}) and expected_shares ({shares.shape}) must be 1-D and equally long"
        )
    if len(obs) < 2:
        raise ValueError("a sample-ratio test needs at least two variants")
    if not np.isfinite(obs).all() or (obs < 0).any() or (obs != np.round(obs)).any():
        raise ValueError(f"counts must be non-negative whole numbers, got {obs.tolist()}")
    if not np.isfinite(shares).all() or (shares <= 0).any():
        raise ValueError(f"expected_shares must be positive, got {shares.tolist()}")
    if abs(shares.sum() - 1.0) > 1e-6:
        raise ValueError(f"expected_shares must sum to 1, got {shares.sum()}")
    total = obs.sum()
    if total == 0:
        return SRMResult(1.0, False, tuple(int(x) for x in obs), tuple(0.0 for _ in obs), alpha)
    expected = total * shares
    p_value = float(stats.chisquare(obs, f_exp=expected).pvalue)
    return SRMResult(
        p_value=p_value,
        mismatch=bool(p_value < alpha),
        counts=tuple(int(x) for x in obs),
        expected=tuple(float(x) for x in expected),
        alpha=alpha,
    )


def non_inferiority_test(
    metric: str,
    control: object,
    treatment: object,
    *,
    margin: float,
    relative: bool = True,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    sequential: bool = True,
    planned_n: int = DEFAULT_PLANNED_N,
) -> GuardrailResult:
    """Is the treatment no worse than control by more than ``margin`` (a share of the control
    mean when ``relative``)? Uses the two-sided (1 - alpha) interval, a conservative one-sided
    level-alpha test."""
    if margin < 0:
        raise ValueError(f"margin must be non-negative, got {margin}")
    res = ab_test(control, treatment, alpha=alpha, sequential=sequential, planned_n=planned_n)
    absolute = margin * abs(res.control_mean) if relative else margin
    if higher_is_better:
        passed, harmed = res.ci_low > -absolute, res.ci_high < -absolute
    else:
        passed, harmed = res.ci_high < absolute, res.ci_low > absolute
    return GuardrailResult(metric, absolute, higher_is_better, res, bool(passed), bool(harmed))


def holm_adjust(p_values: Sequence[float], alpha: float = 0.05) -> list[float]:
    """Holm's step-down adjustment across metrics (family-wise error at alpha)."""
    if len(p_values) == 0:
        return []
    return [float(p) for p in multipletests(list(p_values), alpha=alpha, method="holm")[1]]


def required_sample_size(
    baseline_mean: float,
    baseline_sd: float,
    relative_lift: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int:
    """Units per arm for a fixed-horizon two-sided test to detect ``relative_lift``."""
    from statsmodels.stats.power import NormalIndPower

    effect = abs(baseline_mean * relative_lift) / baseline_sd
    n = NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=1.0)
    return int(math.ceil(n))


def assign_variant(unit_id: str, experiment_id: str, treatment_share: float) -> str:
    """Deterministic assignment: the same unit always gets the same arm of an experiment, and
    different experiments split units independently. SHA-256 of "experiment:unit" mapped to
    [0, 1); below the share is the challenger."""
    if not 0.0 <= treatment_share <= 1.0:
        raise ValueError(f"treatment_share must be in [0, 1], got {treatment_share}")
    digest = hashlib.sha256(f"{experiment_id}:{unit_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "challenger" if u < treatment_share else "champion"
