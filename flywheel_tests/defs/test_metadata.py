"""What the asset pages show: markdown tables without nan or float counts, the promotion
page's offline table named for whom it evaluates, the A/B table in few narrow columns."""

import numpy as np
import pandas as pd

from flywheel_assets.defs.common import md_table
from flywheel_assets.defs.evaluation.assets import ab_results_table
from flywheel_assets.defs.promotion.assets import _offline_note
from flywheel_assets.evaluation.promotion import PromotionDecision


def test_markdown_tables_show_missing_as_a_dash_counts_as_counts_and_tiny_p_values() -> None:
    table = md_table(
        pd.DataFrame(
            {"users": [586.0, np.nan], "p": [2.1e-39, 0.25], "note": [None, "x|y"], "n": [1234, 5]}
        )
    )
    rows = table.splitlines()[2:]
    assert rows[0] == "| 586 | 2.10e-39 | – | 1,234 |"
    assert rows[1] == "| – | 0.2500 | x\\|y | 5 |"
    assert "nan" not in table.lower() and "None" not in table


def decision(challenger: str | None) -> PromotionDecision:
    return PromotionDecision("continue", "no decision yet.", "m1", "m1", challenger, "exp-1")


def test_the_offline_table_says_whose_evaluation_it_is_when_not_the_decisions() -> None:
    evals = pd.DataFrame(
        {"model_version": ["m10", "m1"], "role": ["challenger", "champion"], "auc": [0.8, 0.7]}
    )
    note = _offline_note(decision("m9"), evals)
    assert "The day's candidate m10" in note and "about m9" in note
    assert _offline_note(decision("m10"), evals) == ""  # the table is the decision's own
    assert _offline_note(decision(None), evals) == ""
    assert _offline_note(decision("m9"), evals.iloc[0:0]) == ""


def test_the_ab_table_is_six_narrow_columns_with_the_interval_beside_its_effect() -> None:
    t = pd.DataFrame(
        {
            "metric": ["purchase_rate", "guardrail:latency_ms"],
            "kind": ["primary", "guardrail"],
            "outcome": ["win", "n/a"],
            "control_mean": [0.1785, np.nan],
            "treatment_mean": [0.6088, np.nan],
            "effect": [0.4303, np.nan],
            "ci_low": [0.3407, np.nan],
            "ci_high": [0.5198, np.nan],
            "p_adjusted": [2.08e-39, np.nan],
            "n_control": [586.0, np.nan],
            "n_treatment": [1203.0, np.nan],
            "margin": [np.nan, 0.25],
        }
    )
    shown = md_table(ab_results_table(t)).splitlines()
    assert shown[0].count("|") - 1 == 6  # columns, down from 12
    assert shown[2] == (
        "| purchase_rate | win | 0.1785 | 0.6088 | +0.4303 [+0.341, +0.520] | 2.08e-39 |"
    )
    assert shown[3] == "| guardrail:latency_ms | n/a (margin 0.25) | – | – | – | – |"
