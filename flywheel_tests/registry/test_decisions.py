"""The registry side of a day's decision on a real warehouse (DuckDB and PostgreSQL): reading the
state ``decide`` needs, applying what it returns, and replaying the day."""

import datetime as dt
import json
import math
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from flywheel_assets import registry
from flywheel_assets.evaluation.experiments import (
    Analysis,
    Experiment,
    ExperimentPolicy,
    MetricResult,
)
from flywheel_assets.evaluation.promotion import (
    GateParameters,
    PromotionDecision,
    decide,
    frozen_reason,
)
from flywheel_assets.platform.warehouse import Warehouse

DAY = dt.date(2026, 3, 10)
NOW = dt.datetime(2026, 3, 11, 1, 0)
EXP = Experiment(
    experiment_id="exp-a", challenger="m-exp", champion="m-old", traffic_share=0.5,
    created_dt=DAY - dt.timedelta(days=4), start_dt=DAY - dt.timedelta(days=3), max_days=7,
    planned_n=1000, alpha=0.05,
)  # fmt: skip


@pytest.fixture(params=["duckdb", "postgresql"])
def wh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    url = (
        f"duckdb:///{tmp_path / 'w.duckdb'}"
        if request.param == "duckdb"
        else request.getfixturevalue("pg_database")
    )
    warehouse = Warehouse(url)
    warehouse.migrate()
    yield warehouse
    warehouse.dispose()


def record_look(wh: Warehouse, verdict: str, reason: str) -> None:
    primary = MetricResult(
        "purchase_rate", "primary", "win", control_mean=0.1, treatment_mean=0.12, effect=0.02,
        ci_low=0.005, ci_high=0.035, p_value=0.001, p_adjusted=0.003, n_control=500,
        n_treatment=510,
    )  # fmt: skip
    latency = MetricResult("guardrail:latency_ms", "guardrail", "n/a", note="cold start")
    analysis = Analysis(EXP, DAY, EXP.look(DAY), verdict, reason, [primary, latency])
    with wh.begin() as conn:
        registry.delete_looks(conn, DAY)
        registry.record_look(conn, analysis, now=NOW)


def decide_day(wh: Warehouse, day: dt.date, now: dt.datetime) -> PromotionDecision:
    """What the promotion_decision asset does for one day, without Dagster."""
    with wh.begin() as conn:
        state = registry.decision_state(conn, day)
        frozen = frozen_reason(day, state)
        if frozen is None:
            registry.undo_decided_on(conn, day)
        running = None if frozen else registry.open_experiment(conn)
        decision = decide(
            day,
            offline=registry.evaluations_for_day(conn, day).to_dict(orient="records"),
            running=running,
            look=registry.recorded_look(conn, running.experiment_id, day) if running else None,
            state=state,
            gate=GateParameters(),
            policy=ExperimentPolicy(),
        )
        registry.apply_decision(conn, day, decision, now=now)
    return decision


def test_a_decision_is_applied_replayed_and_frozen(wh: Warehouse):
    with wh.begin() as conn:
        registry.move_alias(conn, registry.CHAMPION, "m-old", actor=registry.DECIDER,
                            reason="earlier", now=NOW - dt.timedelta(days=5))  # fmt: skip
        registry.start_experiment(conn, EXP, now=NOW - dt.timedelta(days=5))
    record_look(wh, "promote", "challenger wins")
    with wh.begin() as conn:
        look = registry.recorded_look(conn, "exp-a", DAY)
        assert registry.recorded_look(conn, "exp-other", DAY) is None
    assert look is not None and (look.outcome, look.note) == ("promote", "challenger wins")
    assert [r["metric"] for r in look.results] == ["guardrail:latency_ms", "purchase_rate"]
    assert look.results[1]["ci_low"] == pytest.approx(0.005)
    assert look.results[0]["effect"] is None  # NULL, as the evidence keeps it

    d = decide_day(wh, DAY, NOW)
    assert d.decision == "promote"
    with wh.begin() as conn:
        assert registry.get_alias(conn, registry.CHAMPION) == "m-exp"
        assert registry.open_experiment(conn) is None
        rec = registry.get_decision(conn, DAY)
        moves = registry.alias_history(conn, registry.CHAMPION)
        stored = json.loads(
            str(
                wh.scalar(
                    conn, "SELECT evidence_json FROM promotion_decisions WHERE dt = :d", d=DAY
                )
            )
        )
    assert rec is not None and (rec.decision, rec.champion_after, rec.experiment_id) == (
        "promote", "m-exp", "exp-a",
    )  # fmt: skip
    assert (
        moves.iloc[-1]["moved_by"] == "promotion_decision"
        and moves.iloc[-1]["to_version"] == "m-exp"
    )
    assert stored["online"] == look.results

    # Replaying the day undoes what it did: the experiment runs again, the new look decides.
    record_look(wh, "continue", "not yet")
    with wh.begin() as conn:
        state = registry.decision_state(conn, DAY)
    assert state.champion_before == "m-old" and state.later_decided is None
    assert not state.moved_by_hand
    assert state.previous is not None and state.previous.decision == "promote"
    d = decide_day(wh, DAY, NOW + dt.timedelta(hours=1))
    assert (d.decision, d.reason) == ("continue", "not yet.")  # a whole sentence, as stored
    with wh.begin() as conn:
        assert registry.get_alias(conn, registry.CHAMPION) == "m-old"
        assert registry.open_experiment(conn) == EXP
        assert int(wh.scalar(conn, "SELECT COUNT(*) FROM promotion_decisions")) == 1

    # A rollback by hand after the decision freezes the day: nothing moves back.
    with wh.begin() as conn:
        registry.rollback(conn, to_version=None, to_cold_start=True, reason="hotfix",
                          actor="alice", now=NOW + dt.timedelta(hours=2))  # fmt: skip
        state = registry.decision_state(conn, DAY)
    assert state.moved_by_hand and frozen_reason(DAY, state) is not None
    d = decide_day(wh, DAY, NOW + dt.timedelta(hours=3))
    assert (d.decision, d.reason, d.move_champion) == (
        "continue",
        "not yet.",
        False,
    )  # the record, word for word
    with wh.begin() as conn:
        assert registry.get_alias(conn, registry.CHAMPION) is None
        # The rollback stopped the experiment on the last decided day; a replay would reopen it.
        status = wh.scalar(conn, "SELECT status FROM experiments WHERE experiment_id = 'exp-a'")
        assert status == "stopped" and registry.open_experiment(conn) is None

    # A later decided day freezes it too; a day between reads its champion from the records.
    decide_day(wh, DAY + dt.timedelta(days=2), NOW + dt.timedelta(days=2))
    with wh.begin() as conn:
        state = registry.decision_state(conn, DAY)
        assert state.later_decided == DAY + dt.timedelta(days=2)
        assert frozen_reason(DAY, state) == "a decision for 2026-03-12 exists: left as is"
        assert registry.latest_decision_day(conn) == DAY + dt.timedelta(days=2)
        assert registry.champion_for_day(conn, DAY + dt.timedelta(days=1)) == "m-old"


def test_offline_evaluations_are_replaced_with_missing_metrics_as_null(wh: Warehouse):
    row = {"role": "challenger", "model_version": "m-new", "n_rows": 10, "auc": 0.7,
           "log_loss": math.nan, "ndcg_at_10": math.inf, "ece": 0.02}  # fmt: skip
    sample = pd.DataFrame({"dt": DAY, "role": "challenger", "model_version": "m-new",
                           "score": [0.1, 0.2]})  # fmt: skip
    for _ in range(2):  # a rerun replaces the day
        with wh.begin() as conn:
            registry.replace_score_samples(wh, conn, DAY, [sample])
            registry.replace_evaluations(conn, DAY, [row], now=NOW)
    with wh.begin() as conn:
        evals = registry.evaluations_for_day(conn, DAY)
        n_samples = wh.scalar(conn, "SELECT COUNT(*) FROM score_samples WHERE dt = :d", d=DAY)
    assert len(evals) == 1 and int(n_samples) == 2
    r = evals.iloc[0]
    assert r["auc"] == pytest.approx(0.7) and r["ece"] == pytest.approx(0.02)
    assert all(pd.isna(r[k]) for k in ("log_loss", "ndcg_at_10"))


def test_alias_history_has_none_for_the_cold_start_and_history_prints_it(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    from flywheel_assets.cli.main import main as cli
    from flywheel_tests.scenarios.test_injection import _record

    with wh.begin() as conn:
        for version in ("m-1", "m-2"):
            registry.register_model(conn, _record(version, "x"), created_by="t", now=NOW)
        registry.move_alias(conn, registry.CHAMPION, "m-1", actor="ann", reason="first", now=NOW)
        registry.move_alias(conn, registry.CHAMPION, "m-2", actor="bob", reason="next", now=NOW)
        moves = registry.alias_history(conn, registry.CHAMPION)
        assert registry.previous_champion(conn) == "m-1"
    assert moves["from_version"].tolist() == [None, "m-1"]
    assert moves["dt"].tolist() == [None, None]  # moved by hand, not by a day's decision
    monkeypatch.setenv("FLYWHEEL_WAREHOUSE_URL", wh.url)
    assert cli(["history"]) == 0
    text = capsys.readouterr().out
    moved = re.findall(r"^ \d{4}-\d\d-\d\d \d\d:\d\d +- +(\S+) +(\S+)", text, re.MULTILINE)
    assert moved == [("cold-start", "m-1"), ("m-1", "m-2")]
    assert "ann: first" in text and "bob: next" in text
    assert "nan" not in text.lower()
    assert cli(["history", "--json"]) == 0
    moves = json.loads(capsys.readouterr().out)["moves"]
    assert [(m["from"], m["to"], m["by"], m["reason"]) for m in moves] == [
        ("cold-start", "m-1", "ann", "first"),
        ("m-1", "m-2", "bob", "next"),
    ]


def test_a_frozen_day_keeps_naming_the_experiment_it_started(wh: Warehouse):
    """Reports call a day that ended one experiment and started the next "reject+experiment"
    (from the decision's evidence); re-running that day once it is frozen keeps its record,
    and with it what it started, though the evidence is today's."""
    from flywheel_assets.evaluation.promotion import _as_recorded

    recorded = PromotionDecision(
        "reject", "it lost.", None, None, "m-a", "exp-a", evidence={"started_experiment": "exp-b"}
    )
    with wh.begin() as conn:
        registry.apply_decision(conn, DAY, replace(recorded, move_champion=False), now=NOW)
        previous = registry.get_decision(conn, DAY)
    assert previous is not None and previous.started_experiment == "exp-b"
    today = PromotionDecision("continue", "", None, None, None, None, evidence={"online": [1]})
    again = _as_recorded(today, previous)
    assert (again.decision, again.reason, again.move_champion) == ("reject", "it lost.", False)
    assert again.evidence == {"online": [1], "started_experiment": "exp-b"}
    assert _as_recorded(today, replace(previous, started_experiment=None)).evidence == {
        "online": [1]
    }
