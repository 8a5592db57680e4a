"""Champion vs challenger experiments: the analysis of a daily look and the decision rule.

The analysis is plain pandas over per-user outcomes (one row per user, from
``sql/registry/experiments/user_metrics.sql``); ``evaluation.online`` reads and writes the tables
through the registry. The rule (docs/evaluation.md):

1. A sample-ratio mismatch (chi-square, alpha 0.001) invalidates the experiment: stopped,
   champion kept, whatever the metrics say.
2. A primary metric significantly worse, or any guardrail shown worse than its margin, stops
   it early: rejected.
3. The challenger is promoted when the primary metric (purchase rate per user, CUPED with the
   pre-period) is significantly better after Holm's correction across the success metrics
   and every guardrail (revenue per user, CTR, serving latency) is shown non-inferior.
4. After ``max_days`` looks without 3, it is rejected: no win is an outcome, not a failure.

All intervals are always-valid (online_stats), so deciding on any day's look is sound.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from flywheel_assets.evaluation.online_stats import (
    ABTestResult,
    ab_test,
    assign_variant,
    holm_adjust,
    non_inferiority_test,
    srm_test,
)
from flywheel_assets.serving.policy import COLD_START_VERSION

VARIANTS = ("champion", "challenger")


@dataclass(frozen=True)
class ExperimentPolicy:
    """The knobs of every experiment (FLYWHEEL_* variables or the flywheel resource)."""

    traffic_share: float = 0.5
    max_days: int = 7
    alpha: float = 0.05
    pre_days: int = 14
    revenue_margin: float = 0.10
    ctr_margin: float = 0.05
    latency_margin: float = 0.25
    latency_requests: int = 60

    def __post_init__(self) -> None:
        if not 0.0 < self.traffic_share < 1.0:
            raise ValueError(f"traffic_share must be in (0, 1), got {self.traffic_share}")
        if self.max_days < 1:
            raise ValueError(f"max_days must be at least 1, got {self.max_days}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    challenger: str
    champion: str | None  # None: the cold-start policy
    traffic_share: float
    created_dt: dt.date
    start_dt: dt.date
    max_days: int
    planned_n: int
    alpha: float
    status: str = "running"
    end_dt: dt.date | None = None
    reason: str | None = None

    @property
    def champion_version(self) -> str:
        """The model_version the champion arm's events carry."""
        return self.champion or COLD_START_VERSION

    def look(self, day: dt.date) -> int:
        return (day - self.start_dt).days + 1

    def variant(self, user_pseudonym: str) -> str:
        return assign_variant(user_pseudonym, self.experiment_id, self.traffic_share)

    @staticmethod
    def from_row(row: pd.Series) -> Experiment:
        def date(v: object) -> dt.date | None:
            return None if v is None or v != v else pd.Timestamp(v).date()

        return Experiment(
            experiment_id=str(row["experiment_id"]),
            challenger=str(row["challenger"]),
            champion=row["champion"] if isinstance(row["champion"], str) else None,
            traffic_share=float(row["traffic_share"]),
            created_dt=date(row["created_dt"]),  # type: ignore[arg-type]
            start_dt=date(row["start_dt"]),  # type: ignore[arg-type]
            max_days=int(row["max_days"]),
            planned_n=int(row["planned_n"]),
            alpha=float(row["alpha"]),
            status=str(row["status"]),
            end_dt=date(row["end_dt"]),
            reason=row["reason"] if isinstance(row["reason"], str) else None,
        )


@dataclass(frozen=True)
class MetricResult:
    metric: str
    kind: str  # primary | secondary | guardrail | srm
    outcome: (
        str  # win | loss | inconclusive | passed | harmed | pending | not shown | ok | mismatch
    )
    control_mean: float | None = None
    treatment_mean: float | None = None
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    n_control: int | None = None
    n_treatment: int | None = None
    margin: float | None = None
    note: str | None = None


@dataclass
class Analysis:
    experiment: Experiment
    day: dt.date
    look: int
    verdict: str  # promote | reject | invalid | continue
    reason: str
    results: list[MetricResult] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.results])

    def evidence(self) -> dict[str, object]:
        return {
            "experiment_id": self.experiment.experiment_id,
            "challenger": self.experiment.challenger,
            "champion": self.experiment.champion_version,
            "look": self.look,
            "verdict": self.verdict,
            "reason": self.reason,
            "results": [asdict(r) for r in self.results],
        }

    def evidence_json(self) -> str:
        return json.dumps(self.evidence(), default=_json_default, sort_keys=True)


def _json_default(v: object) -> object:
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"not JSON serialisable: {type(v)}")


def _finite(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _row(
    metric: str, kind: str, outcome: str, res: ABTestResult, *, p_adjusted: float | None = None,
    margin: float | None = None, note: str | None = None,
) -> MetricResult:  # fmt: skip
    return MetricResult(
        metric=metric,
        kind=kind,
        outcome=outcome,
        control_mean=_finite(res.control_mean),
        treatment_mean=_finite(res.treatment_mean),
        effect=_finite(res.effect),
        ci_low=_finite(res.ci_low),
        ci_high=_finite(res.ci_high),
        p_value=_finite(res.p_value),
        p_adjusted=p_adjusted,
        n_control=res.n_control,
        n_treatment=res.n_treatment,
        margin=margin,
        note=note,
    )


def user_outcomes(users: pd.DataFrame) -> pd.DataFrame:
    """Per-user metrics from the SQL's counts: purchase rate (purchases per request), CTR
    (clicks per impression), revenue, and the pre-period purchase rate (the CUPED covariate)."""
    u = users[users["requests"] > 0]
    return pd.DataFrame(
        {
            "variant": u["variant"].to_numpy(),
            "purchase_rate": (u["purchases"] / u["requests"]).to_numpy(dtype=float),
            "ctr": (u["clicks"] / u["impressions"].clip(lower=1)).to_numpy(dtype=float),
            "revenue": u["revenue"].to_numpy(dtype=float),
            "pre_purchase_rate": (u["pre_purchases"] / u["pre_requests"].clip(lower=1)).to_numpy(
                dtype=float
            ),
        }
    )


def analyse(
    experiment: Experiment,
    users: pd.DataFrame,
    day: dt.date,
    policy: ExperimentPolicy,
    latency_ms: tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, str] | None = None,
) -> Analysis:
    """One daily look at an experiment: ``users`` as from user_metrics.sql (all days so far),
    ``latency_ms`` per request for (champion, challenger), optionally with where it comes
    from ("served" or "replayed", the default), or None (cold start)."""
    look = experiment.look(day)
    alpha = experiment.alpha
    crossed = users[users["n_variants"] > 1] if "n_variants" in users else users.iloc[:0]
    clean = users.drop(crossed.index)
    counts = [int((clean["variant"] == v).sum()) for v in VARIANTS]
    shares = [1 - experiment.traffic_share, experiment.traffic_share]
    srm = srm_test(counts, shares)
    results = [
        MetricResult(
            metric="sample_ratio",
            kind="srm",
            outcome="mismatch" if srm.mismatch else "ok",
            control_mean=float(counts[0]),
            treatment_mean=float(counts[1]),
            p_value=srm.p_value,
            n_control=counts[0],
            n_treatment=counts[1],
            note=f"expected {srm.expected[0]:.0f} / {srm.expected[1]:.0f}; "
            f"{len(crossed)} users saw both arms (excluded)",
        )
    ]

    def verdict(v: str, reason: str) -> Analysis:
        return Analysis(experiment, day, look, v, reason, results)

    if srm.mismatch:
        return verdict(
            "invalid",
            f"sample ratio mismatch: {counts[0]} champion / {counts[1]} challenger users for a "
            f"{shares[0]:.0%}/{shares[1]:.0%} split (p = {srm.p_value:.2g}); assignment or "
            "logging is broken, the experiment is void",
        )
    out = user_outcomes(clean)
    control, treatment = out[out["variant"] == "champion"], out[out["variant"] == "challenger"]
    if len(control) < 2 or len(treatment) < 2:
        if look >= experiment.max_days:
            return verdict("reject", f"no traffic in one arm after {look} days")
        return verdict("continue", "not enough users in both arms yet")
    n = experiment.planned_n
    primary = ab_test(
        control["purchase_rate"], treatment["purchase_rate"], alpha=alpha, planned_n=n,
        control_covariate=control["pre_purchase_rate"],
        treatment_covariate=treatment["pre_purchase_rate"],
    )  # fmt: skip
    ctr = ab_test(control["ctr"], treatment["ctr"], alpha=alpha, planned_n=n)
    revenue = ab_test(control["revenue"], treatment["revenue"], alpha=alpha, planned_n=n)
    adjusted = holm_adjust([primary.p_value, ctr.p_value, revenue.p_value], alpha=alpha)
    for metric, res, p_adj, kind in (
        ("purchase_rate", primary, adjusted[0], "primary"),
        ("ctr", ctr, adjusted[1], "secondary"),
        ("revenue_per_user", revenue, adjusted[2], "secondary"),
    ):
        sig = p_adj <= alpha and (res.ci_low > 0 or res.ci_high < 0)
        outcome = "inconclusive" if not sig else ("win" if res.effect > 0 else "loss")
        note = (
            f"CUPED removed {res.variance_reduction:.0%} of variance"
            if metric == "purchase_rate"
            else None
        )
        results.append(_row(metric, kind, outcome, res, p_adjusted=p_adj, note=note))
    guardrails = [
        non_inferiority_test(
            "revenue_per_user", control["revenue"], treatment["revenue"],
            margin=policy.revenue_margin, alpha=alpha, planned_n=n,
        ),
        non_inferiority_test(
            "ctr", control["ctr"], treatment["ctr"], margin=policy.ctr_margin, alpha=alpha,
            planned_n=n,
        ),
    ]  # fmt: skip
    if latency_ms is not None:
        guardrails.append(
            non_inferiority_test(
                "latency_ms", latency_ms[0], latency_ms[1], margin=policy.latency_margin,
                higher_is_better=False, alpha=alpha, sequential=False,
            )
        )  # fmt: skip
    latency_source = latency_ms[2] if latency_ms is not None and len(latency_ms) > 2 else "replayed"
    primary_outcome = results[1].outcome
    summary = (
        f"purchase rate {primary.treatment_mean:.4f} vs {primary.control_mean:.4f} "
        f"(effect {primary.effect:+.4f}, always-valid 95% CI [{primary.ci_low:+.4f}, "
        f"{primary.ci_high:+.4f}], Holm p {adjusted[0]:.3g}) after {look} day(s)"
    )
    harmed = [g.metric for g in guardrails if g.harmed]
    pending = [g.metric for g in guardrails if not g.passed]
    if primary_outcome == "loss":
        decided = ("reject", f"challenger loses: {summary}")
    elif harmed:
        decided = ("reject", f"guardrail breached ({', '.join(harmed)}): {summary}")
    elif primary_outcome == "win" and not pending:
        decided = ("promote", f"challenger wins with guardrails intact: {summary}")
    elif look >= experiment.max_days:
        why = (
            "guardrails not shown non-inferior: " + ", ".join(pending)
            if primary_outcome == "win"
            else "no significant win"
        )
        decided = ("reject", f"{why} within {experiment.max_days} days: {summary}")
    else:
        waiting = (
            "guardrails pending: " + ", ".join(pending)
            if primary_outcome == "win"
            else "no decision yet"
        )
        decided = ("continue", f"{waiting}: {summary}")
    # A guardrail not yet shown non-inferior is "pending" only while the experiment goes on;
    # on the look that ends it, it was "not shown".
    unproven = "pending" if decided[0] == "continue" else "not shown"
    for g in guardrails:
        outcome = "passed" if g.passed else ("harmed" if g.harmed else unproven)
        note = f"{'higher' if g.higher_is_better else 'lower'} is better"
        if g.metric == "latency_ms":
            note += f"; {latency_source} requests"
        results.append(
            _row(f"guardrail:{g.metric}", "guardrail", outcome, g.test, margin=g.margin, note=note)
        )
    if latency_ms is None:
        results.append(
            MetricResult("guardrail:latency_ms", "guardrail", "n/a", note="cold-start champion")
        )
    return verdict(*decided)


def planned_n(daily_users: list[int], policy: ExperimentPolicy) -> int:
    """Where the confidence sequence is tightest: the smaller arm's users at mid-horizon,
    from the traffic before the experiment (fixed at its start, so it cannot depend on its
    outcomes)."""
    per_day = float(np.mean(daily_users)) if daily_users else 1000.0
    share = min(policy.traffic_share, 1 - policy.traffic_share)
    return max(100, int(per_day * share * max(policy.max_days, 2) / 2))


def replay_latency(
    score_champion: Callable[[pd.DataFrame], object],
    score_challenger: Callable[[pd.DataFrame], object],
    requests: list[pd.DataFrame],
) -> tuple[np.ndarray, np.ndarray]:
    """Per-request scoring time (ms) of both models on the same requests, interleaved so
    machine noise hits both alike. The model is what differs between the arms; features
    come from the same store for both."""
    champion, challenger = [], []
    for i, frame in enumerate(requests):
        order = (
            (score_champion, score_challenger) if i % 2 == 0 else (score_challenger, score_champion)
        )
        timings = []
        for score in order:
            t0 = time.perf_counter()
            score(frame)
            timings.append((time.perf_counter() - t0) * 1000)
        if i % 2 == 0:
            champion.append(timings[0])
            challenger.append(timings[1])
        else:
            challenger.append(timings[0])
            champion.append(timings[1])
    return np.array(champion), np.array(challenger)
