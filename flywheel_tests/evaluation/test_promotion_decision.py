"""The day's promotion decision as a pure function: every outcome, on plain values (no Dagster,
no database). The asset applies what ``decide`` returns; test_promotion.py runs it in the loop."""

import datetime as dt
import json
import math

import pytest

from flywheel_assets.evaluation.experiments import Experiment, ExperimentPolicy, planned_n
from flywheel_assets.evaluation.promotion import (
    DecisionRecord,
    EndExperiment,
    GateParameters,
    PromotionDecision,
    RecordedLook,
    RegistryState,
    decide,
    frozen_reason,
    planning_window,
)

DAY = dt.date(2026, 3, 10)
POLICY = ExperimentPolicy(traffic_share=0.3, max_days=5, alpha=0.05)
GATE = GateParameters(min_log_loss_gain=0.0, max_ndcg_drop=0.01)
USERS = [900, 1100, 1000, 1000, 1000, 1000, 1000]
ONLINE = [
    {"metric": "purchase_rate", "kind": "primary", "outcome": "win", "effect": 0.01},
    {"metric": "sample_ratio", "kind": "srm", "outcome": "ok", "effect": None},
]


def evaluation(role: str, version: str, log_loss: float, ndcg: float = 0.5) -> dict[str, object]:
    """One offline_evaluations row as the registry reads it."""
    return {
        "model_version": version,
        "role": role,
        "n_rows": 5000,
        "auc": 0.7,
        "log_loss": log_loss,
        "ndcg_at_10": ndcg,
        "ece": 0.01,
    }


def offline(challenger: float | None = 0.30, champion: float | None = 0.35, *,
            challenger_version: str = "m-new", champion_version: str = "m-old") -> list[dict]:  # fmt: skip
    """The day's offline evaluations: a challenger whose log loss is ``challenger`` (None: no
    challenger trained) against a champion whose log loss is ``champion`` (None: cold start)."""
    rows = []
    if challenger is not None:
        rows.append(evaluation("challenger", challenger_version, challenger))
    if champion is not None:
        rows.append(evaluation("champion", champion_version, champion))
    return rows


def experiment(start: dt.date = DAY - dt.timedelta(days=3), exp_id: str = "exp-a",
               champion: str | None = "m-old") -> Experiment:  # fmt: skip
    return Experiment(
        experiment_id=exp_id, challenger="m-exp", champion=champion, traffic_share=0.5,
        created_dt=start - dt.timedelta(days=1), start_dt=start, max_days=7, planned_n=1000,
        alpha=0.05,
    )  # fmt: skip


def look(outcome: str, note: str = "the look's reason", exp_id: str = "exp-a") -> RecordedLook:
    return RecordedLook(exp_id, outcome, note, ONLINE)


def run(
    *,
    evals: list[dict] | None = None,
    running: Experiment | None = None,
    day_look: RecordedLook | None = None,
    state: RegistryState | None = None,
) -> PromotionDecision:
    d = decide(
        DAY,
        offline=offline() if evals is None else evals,
        running=running,
        look=day_look,
        state=state or RegistryState(champion_before="m-old"),
        gate=GATE,
        policy=POLICY,
        daily_users=USERS,
    )
    # Every reason is stored and shown (status, history, the UI): a whole sentence.
    assert d.reason.endswith(".") and ".;" not in d.reason, d.reason
    return d


def assert_nothing_changes_but_the_record(d: PromotionDecision) -> None:
    assert d.end is None and d.start is None and d.started_experiment is None


# ----- the running experiment is concluded ---------------------------------------------------


def test_promote_when_the_look_says_promote():
    d = run(evals=offline(challenger=None), running=experiment(), day_look=look("promote"))
    assert d.decision == "promote"
    assert (d.champion_before, d.champion_after) == ("m-old", "m-exp")
    assert (d.challenger, d.experiment_id) == ("m-exp", "exp-a")
    assert d.reason == "the look's reason."
    assert d.end == EndExperiment("exp-a", "promoted", "the look's reason")
    assert d.start is None and d.move_champion
    assert d.evidence["online"] == ONLINE
    assert d.evidence["offline_gate"]["decision"] == "no_challenger"


@pytest.mark.parametrize(("outcome", "status"), [("reject", "rejected"), ("invalid", "invalid")])
def test_reject_when_the_look_says_reject_or_invalid(outcome: str, status: str):
    # The day's challenger fails the gate: the concluded experiment's reject stands.
    d = run(evals=offline(challenger=0.40), running=experiment(), day_look=look(outcome, "void"))
    assert d.decision == "reject"
    assert d.champion_after == d.champion_before == "m-old"
    assert (d.challenger, d.experiment_id, d.reason) == ("m-exp", "exp-a", "void.")
    assert d.end == EndExperiment("exp-a", status, "void")
    assert d.start is None and d.move_champion


# ----- no experiment running: the offline gate -----------------------------------------------


def test_offline_reject_when_the_challenger_fails_the_gate():
    d = run(evals=offline(challenger=0.36))
    assert d.decision == "offline_reject"
    assert (d.challenger, d.experiment_id) == ("m-new", None)
    assert d.reason.startswith("offline gate: champion holds: log loss 0.36000 vs 0.35000")
    assert d.champion_after == "m-old"
    assert_nothing_changes_but_the_record(d)
    assert d.evidence["offline_gate"]["decision"] == "reject"


def test_offline_reject_when_the_challenger_has_no_finite_metrics():
    evals = offline(challenger=0.30)
    evals[0]["log_loss"] = None  # NULL in the warehouse: no feedback in the holdout
    d = run(evals=evals)
    assert d.decision == "offline_reject"
    assert "no finite log loss" in d.reason
    evals[0]["log_loss"] = math.nan  # NaN as a frame holds NULL: the same
    assert run(evals=evals).reason == d.reason


def test_no_challenger_when_none_was_trained():
    d = run(evals=offline(challenger=None))
    assert d.decision == "no_challenger"
    assert d.reason == "no challenger was trained for this day."
    assert (d.challenger, d.experiment_id, d.champion_after) == (None, None, "m-old")
    assert_nothing_changes_but_the_record(d)


# ----- continue ------------------------------------------------------------------------------


def test_continue_when_the_look_says_continue():
    # A challenger that passes the gate waits: one experiment at a time.
    d = run(running=experiment(), day_look=look("continue", "no decision yet: ..."))
    assert d.decision == "continue"
    assert (d.challenger, d.experiment_id) == ("m-exp", "exp-a")
    assert d.reason == "no decision yet: ..." and d.champion_after == "m-old"
    assert d.evidence["online"] == ONLINE
    assert_nothing_changes_but_the_record(d)


def test_continue_while_the_experiment_has_not_started_serving():
    d = run(running=experiment(start=DAY + dt.timedelta(days=1)), day_look=None)
    assert d.decision == "continue"
    assert d.reason == f"experiment exp-a starts serving on {DAY + dt.timedelta(days=1)}."
    assert (d.challenger, d.experiment_id) == ("m-exp", "exp-a")
    assert "online" not in d.evidence
    assert_nothing_changes_but_the_record(d)


@pytest.mark.parametrize("day_look", [None, look("promote", exp_id="exp-other")])
def test_continue_when_the_experiment_has_no_look_for_the_day(day_look: RecordedLook | None):
    # A look at another experiment is not this one's.
    d = run(running=experiment(), day_look=day_look)
    assert d.decision == "continue"
    assert d.reason == f"experiment exp-a has no look recorded for {DAY}."
    assert "online" not in d.evidence
    assert_nothing_changes_but_the_record(d)


# ----- an experiment starts ------------------------------------------------------------------


def test_an_experiment_starts_when_the_gate_passes_and_none_is_running():
    d = run()
    assert d.decision == "experiment"
    exp = d.start
    assert exp == Experiment(
        experiment_id="exp-20260310", challenger="m-new", champion="m-old", traffic_share=0.3,
        created_dt=DAY, start_dt=DAY + dt.timedelta(days=1), max_days=5,
        planned_n=planned_n(USERS, POLICY), alpha=0.05,
    )  # fmt: skip
    assert (d.challenger, d.experiment_id, d.started_experiment) == (
        "m-new",
        "exp-20260310",
        "exp-20260310",
    )
    assert d.reason.startswith(
        "experiment exp-20260310 starts on 2026-03-11: 30% of users to m-new (challenger wins:"
    )
    assert d.champion_after == "m-old" and d.end is None and d.move_champion
    assert d.evidence["started_experiment"] == "exp-20260310"


def test_an_experiment_starts_against_the_cold_start_policy():
    d = run(evals=offline(champion=None), state=RegistryState(champion_before=None))
    assert d.decision == "experiment"
    assert d.start is not None and d.start.champion is None
    assert "no champion yet" in d.reason and d.champion_after is None


def test_a_challenger_gated_against_another_champion_waits():
    # A rollback moved the champion after the challenger was gated: the comparison is stale.
    d = run(state=RegistryState(champion_before="m-rolled-back"))
    assert d.decision == "continue"
    assert d.reason == (
        "challenger m-new was gated against m-old, not the new champion: "
        "the next day's challenger will be gated against it."
    )
    assert d.champion_after == "m-rolled-back"
    assert_nothing_changes_but_the_record(d)


def test_a_promotion_leaves_the_days_challenger_for_the_next_day():
    # Today's challenger passed against the champion that was just replaced.
    d = run(running=experiment(), day_look=look("promote", "wins"))
    assert d.decision == "promote" and d.champion_after == "m-exp"
    assert d.reason == (
        "wins; challenger m-new was gated against m-old, not the new champion: "
        "the next day's challenger will be gated against it."
    )
    assert d.end == EndExperiment("exp-a", "promoted", "wins")  # the end keeps the look's reason
    assert d.start is None


def test_a_concluded_experiment_and_a_new_one_on_the_same_day():
    d = run(running=experiment(), day_look=look("reject", "challenger loses"))
    assert d.decision == "reject"
    assert (d.challenger, d.experiment_id) == ("m-exp", "exp-a")  # the concluded one's
    assert d.end == EndExperiment("exp-a", "rejected", "challenger loses")
    assert d.start is not None and d.start.experiment_id == "exp-20260310"
    assert d.start.champion == "m-old"
    assert d.reason.startswith("challenger loses; experiment exp-20260310 starts on 2026-03-11")
    assert d.evidence["started_experiment"] == "exp-20260310"


# ----- replays -------------------------------------------------------------------------------

PREVIOUS = DecisionRecord(
    decision="promote", reason="recorded reason.", challenger="m-exp", champion_after="m-exp",
    experiment_id="exp-a", decided_at=dt.datetime(2026, 3, 11, 1, 0),
)  # fmt: skip


def test_a_replay_decides_again():
    # The day was decided before, nothing happened since: its inputs decide, not its record.
    state = RegistryState(champion_before="m-old", previous=PREVIOUS)
    assert frozen_reason(DAY, state) is None
    d = run(running=experiment(), day_look=look("continue", "not yet"), state=state)
    assert (d.decision, d.reason, d.champion_after) == ("continue", "not yet.", "m-old")
    assert d.move_champion  # the alias follows the new decision (back to m-old)


def test_a_day_before_a_decided_day_keeps_its_record():
    state = RegistryState(
        champion_before="m-old", later_decided=DAY + dt.timedelta(days=2), previous=PREVIOUS
    )
    assert frozen_reason(DAY, state) == "a decision for 2026-03-12 exists: left as is"
    d = run(running=experiment(), day_look=look("reject"), state=state)
    assert (d.decision, d.reason, d.challenger, d.experiment_id, d.champion_after) == (
        "promote", "recorded reason.", "m-exp", "exp-a", "m-exp",
    )  # fmt: skip
    assert d.champion_before == "m-old"
    assert not d.move_champion
    assert_nothing_changes_but_the_record(d)  # neither the experiment nor the gate act
    assert "online" not in d.evidence and "offline_gate" in d.evidence


def test_a_frozen_day_without_a_record_records_that_nothing_moved():
    state = RegistryState(champion_before="m-old", later_decided=DAY + dt.timedelta(days=1))
    d = run(running=experiment(), day_look=look("promote"), state=state)
    assert (d.decision, d.challenger, d.experiment_id) == ("continue", None, None)
    assert (
        d.reason
        == f"not decided again: a decision for {DAY + dt.timedelta(days=1)} exists: left as is."
    )
    assert d.champion_after == "m-old" and not d.move_champion
    assert_nothing_changes_but_the_record(d)


def test_a_manual_move_after_the_days_decision_freezes_it():
    state = RegistryState(champion_before="m-old", previous=PREVIOUS, moved_by_hand=True)
    assert frozen_reason(DAY, state) == f"the champion was moved by hand after {DAY} was decided"
    d = run(running=experiment(), day_look=look("reject"), state=state)
    assert (d.decision, d.champion_after) == ("promote", "m-exp")
    assert not d.move_champion
    assert_nothing_changes_but_the_record(d)
    # A move by hand before the day was ever decided freezes nothing.
    assert frozen_reason(DAY, RegistryState(champion_before="m-old", moved_by_hand=True)) is None


# ----- evidence and inputs -------------------------------------------------------------------


def test_the_evidence_is_what_the_record_stores():
    evals = offline()
    d = run(evals=evals, running=experiment(), day_look=look("promote"))
    assert d.evidence["offline"] == evals and d.evidence["offline"] is not evals
    stored = json.loads(json.dumps(d.evidence, default=str, sort_keys=True))
    assert set(stored) == {"offline", "online", "offline_gate"}


def test_the_planning_window_is_the_day_and_the_six_before():
    assert planning_window(DAY) == (dt.date(2026, 3, 4), DAY)


def test_decide_is_pure():
    evals = offline()
    state = RegistryState(champion_before="m-old")
    first = run(evals=evals, state=state)
    assert run(evals=evals, state=state) == first
    assert evals == offline()
