"""The day's promotion decision as a pure function (docs/evaluation.md).

Day D's decision concludes the experiment that served D by its recorded look (promote, reject,
or continue) and, when none is running, starts one for D's challenger if it passed the offline
gate, serving from D + 1. ``decide`` takes everything it needs as values (the day's offline
evaluations, the running experiment and its look, the registry's state, the gate and the
experiment policy) and returns a ``PromotionDecision``; reading those inputs and applying the
result (end or start an experiment, move the champion alias, replace the decision record) is
the registry's job, in the asset's one transaction.

Replays: re-deciding day D undoes what D's earlier decision did to the experiments before the
inputs are read, then decides again. A day is *frozen* instead when a later day is already
decided or the champion was moved by hand (a rollback) after D was decided: its decision record
is kept as it was and nothing moves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from flywheel_assets.evaluation.experiments import Experiment, ExperimentPolicy, planned_n
from flywheel_assets.evaluation.offline import Decision as GateDecision
from flywheel_assets.evaluation.offline import OfflineMetrics, promotion_rule

# The days of traffic before an experiment that size its planned_n: the decision day and the
# six before it.
PLANNING_DAYS = 7

# An ended experiment's status, by the verdict of the look that ended it.
ENDED_STATUS = {"promote": "promoted", "reject": "rejected", "invalid": "invalid"}


@dataclass(frozen=True)
class RecordedLook:
    """The day's recorded look at an experiment: the verdict row and the per-metric rows."""

    experiment_id: str
    outcome: str  # promote | reject | invalid | continue
    note: str
    results: list[dict[str, object]] = field(default_factory=list)


@dataclass(frozen=True)
class DecisionRecord:
    """A day's decision as recorded (a promotion_decisions row)."""

    decision: str
    reason: str
    challenger: str | None
    champion_after: str | None
    experiment_id: str | None
    decided_at: dt.datetime
    started_experiment: str | None = None  # the experiment the decision started, if any


@dataclass(frozen=True)
class RegistryState:
    """What the registry says about the day before it is decided (again)."""

    champion_before: str | None  # who was champion when the day was (first) decided
    later_decided: dt.date | None = None  # the latest later day already decided, if any
    previous: DecisionRecord | None = None  # the day's earlier decision, if any
    moved_by_hand: bool = False  # the champion moved by hand after ``previous`` was decided


@dataclass(frozen=True)
class GateParameters:
    """The offline gate's thresholds (see ``promotion_rule``)."""

    min_log_loss_gain: float = 0.0
    max_ndcg_drop: float = 0.01


@dataclass(frozen=True)
class EndExperiment:
    experiment_id: str
    status: str  # promoted | rejected | invalid
    reason: str


@dataclass(frozen=True)
class PromotionDecision:
    """The day's decision and what applying it changes."""

    decision: str  # promote | reject | continue | experiment | offline_reject | no_challenger
    reason: str
    champion_before: str | None
    champion_after: str | None
    challenger: str | None
    experiment_id: str | None
    evidence: dict[str, object] = field(default_factory=dict)
    end: EndExperiment | None = None  # the experiment this decision concludes
    start: Experiment | None = None  # the experiment this decision starts
    move_champion: bool = True  # False for a frozen day: the alias is left where it is

    @property
    def started_experiment(self) -> str | None:
        return None if self.start is None else self.start.experiment_id


def frozen_reason(day: dt.date, state: RegistryState) -> str | None:
    """Why re-deciding ``day`` must leave its record and the registry as they are (None: the
    day may be replayed)."""
    if state.later_decided is not None:
        # Re-deciding an old day must not move the champion or the experiments backwards.
        return f"a decision for {state.later_decided} exists: left as is"
    if state.previous is not None and state.moved_by_hand:
        return f"the champion was moved by hand after {day} was decided"
    return None


def planning_window(day: dt.date) -> tuple[dt.date, dt.date]:
    """The days whose users size an experiment started on ``day`` (first, last)."""
    return day - dt.timedelta(days=PLANNING_DAYS - 1), day


def decide(
    day: dt.date,
    *,
    offline: Sequence[Mapping[str, object]],
    running: Experiment | None,
    look: RecordedLook | None,
    state: RegistryState,
    gate: GateParameters,
    policy: ExperimentPolicy,
    daily_users: Sequence[int] = (),
) -> PromotionDecision:
    """Decide ``day``.

    ``offline``: the day's offline evaluations (rows with role challenger / champion and their
    metrics); ``running``: the experiment still running once the day's replay was undone;
    ``look``: its recorded look for the day (None: none recorded); ``daily_users``: users
    served per day over ``planning_window(day)``, to size a new experiment."""
    why_frozen = frozen_reason(day, state)
    frozen = why_frozen is not None
    running = None if frozen else running
    decision = _conclude(day, running, look, state.champion_before)
    result = promotion_rule(
        _metrics(offline, "challenger"),
        _metrics(offline, "champion"),
        min_log_loss_gain=gate.min_log_loss_gain,
        max_ndcg_drop=gate.max_ndcg_drop,
    )
    evidence = {
        "offline": [dict(r) for r in offline],
        **decision.evidence,
        "offline_gate": {"decision": result.decision, "reason": result.reason},
    }
    decision = replace(decision, evidence=evidence)
    still_running = running is not None and decision.end is None
    if frozen:
        decision = _as_recorded(decision, state.previous)  # the record stands, word for word
        if decision.reason:
            return decision
        # nothing was recorded for the day: say why nothing moved
        return replace(decision, reason=_sentence(f"not decided again: {why_frozen}"))
    if not still_running:
        decision = _challenge(day, decision, offline, result, policy, daily_users)
    # Stored, shown by `status`, `history` and the UI: always a whole sentence.
    return replace(decision, reason=_sentence(decision.reason))


def _conclude(
    day: dt.date, running: Experiment | None, look: RecordedLook | None, before: str | None
) -> PromotionDecision:
    """The running experiment's part: concluded by the day's look, or still waiting."""
    decision = PromotionDecision("continue", "", before, before, None, None)
    if running is None:
        return decision
    decision = replace(decision, challenger=running.challenger, experiment_id=running.experiment_id)
    if running.start_dt > day:
        return replace(
            decision,
            reason=f"experiment {running.experiment_id} starts serving on {running.start_dt}",
        )
    if look is None or look.experiment_id != running.experiment_id:
        return replace(
            decision, reason=f"experiment {running.experiment_id} has no look recorded for {day}"
        )
    decision = replace(decision, reason=look.note, evidence={"online": look.results})
    status = ENDED_STATUS.get(look.outcome)
    if status is None:
        return decision  # the look says continue
    return replace(
        decision,
        decision="promote" if status == "promoted" else "reject",
        champion_after=running.challenger if status == "promoted" else before,
        end=EndExperiment(running.experiment_id, status, look.note),
    )


def _challenge(
    day: dt.date,
    decision: PromotionDecision,
    offline: Sequence[Mapping[str, object]],
    gate: GateDecision,
    policy: ExperimentPolicy,
    daily_users: Sequence[int],
) -> PromotionDecision:
    """With no experiment running, the day's challenger may start one."""
    challenger = _version(offline, "challenger")
    idle = decision.decision == "continue"  # nothing concluded today
    if challenger is None or gate.decision == "no_challenger":
        return replace(decision, decision="no_challenger", reason=gate.reason) if idle else decision
    if gate.decision != "promote":
        if not idle:
            return decision
        return replace(
            decision,
            decision="offline_reject",
            challenger=challenger,
            reason=f"offline gate: {gate.reason}",
        )
    gated_against = _version(offline, "champion")
    if gated_against != decision.champion_after:
        # Passed the gate against another champion (today's promotion, or a rollback): that
        # comparison no longer holds, so it waits for the next day's challenger.
        stale = (
            f"challenger {challenger} was gated against "
            f"{gated_against or 'the cold-start policy'}, not the new champion: "
            "the next day's challenger will be gated against it"
        )
        return replace(decision, reason=_join(decision.reason, stale))
    exp = new_experiment(day, challenger, decision.champion_after, policy, daily_users)
    started = (
        f"experiment {exp.experiment_id} starts on {exp.start_dt}: "
        f"{exp.traffic_share:.0%} of users to {exp.challenger} ({gate.reason})"
    )
    decision = replace(
        decision, start=exp, evidence={**decision.evidence, "started_experiment": exp.experiment_id}
    )
    if not idle:
        return replace(decision, reason=_join(decision.reason, started))
    return replace(
        decision,
        decision="experiment",
        challenger=exp.challenger,
        experiment_id=exp.experiment_id,
        reason=started,
    )


def _as_recorded(decision: PromotionDecision, previous: DecisionRecord | None) -> PromotionDecision:
    """A frozen day: its earlier record stands (with today's evidence), and nothing moves."""
    decision = replace(decision, move_champion=False)
    if previous is None:
        return decision
    # Today's evidence, but what the record started stays said: reports name the day by it
    # ("reject+experiment"), and a re-run must not rename it.
    started = {"started_experiment": previous.started_experiment}
    return replace(
        decision,
        decision=previous.decision,
        reason=previous.reason,
        champion_after=previous.champion_after,
        challenger=previous.challenger,
        experiment_id=previous.experiment_id,
        evidence={**decision.evidence, **(started if previous.started_experiment else {})},
    )


def new_experiment(
    day: dt.date,
    challenger: str,
    champion: str | None,
    policy: ExperimentPolicy,
    daily_users: Sequence[int],
) -> Experiment:
    return Experiment(
        # One experiment can start per decision day; replaying the day replaces it.
        experiment_id=f"exp-{day:%Y%m%d}",
        challenger=challenger,
        champion=champion,
        traffic_share=policy.traffic_share,
        created_dt=day,
        start_dt=day + dt.timedelta(days=1),
        max_days=policy.max_days,
        planned_n=planned_n([int(u) for u in daily_users], policy),
        alpha=policy.alpha,
    )


def _join(reason: str, more: str) -> str:
    return f"{reason.rstrip('. ')}; {more}" if reason else more


def _sentence(text: str) -> str:
    """``text`` ending with a full stop (or ``?``/``!``); empty stays empty."""
    text = text.strip()
    return text if not text or text.endswith((".", "!", "?")) else f"{text}."


def _row(offline: Sequence[Mapping[str, object]], role: str) -> Mapping[str, object] | None:
    return next((r for r in offline if r.get("role") == role), None)


def _version(offline: Sequence[Mapping[str, object]], role: str) -> str | None:
    row = _row(offline, role)
    return None if row is None else str(row["model_version"])


def _metrics(offline: Sequence[Mapping[str, object]], role: str) -> OfflineMetrics | None:
    row = _row(offline, role)
    if row is None:
        return None

    def num(v: object) -> float:
        return float("nan") if v is None or pd.isna(v) else float(v)  # type: ignore[arg-type]

    return OfflineMetrics(
        int(row["n_rows"]),  # type: ignore[call-overload]
        num(row["auc"]),
        num(row["log_loss"]),
        num(row["ndcg_at_10"]),
        num(row.get("ece")),
    )
