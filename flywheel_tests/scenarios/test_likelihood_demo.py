"""`flywheel demo-likelihood` from the command line (issue 27): a simulated customer base goes
into a warehouse, one run of likelihood_cycle publishes every active user's chances, and the
hidden days score them against what the users did and the simulator's exact chances."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flywheel_tests.support.environment import restored_environment

pytestmark = pytest.mark.long


def test_demo_likelihood_publishes_calibrated_scores_that_beat_rfm(tmp_path: Path) -> None:
    with restored_environment():
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "DAGSTER_"))}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flywheel_assets.cli",
            "demo-likelihood",
            "--users",
            "8000",
            "--days",
            "240",
            "--home",
            str(tmp_path / "home"),
            "--json",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    backtest = {(b["horizon_days"], b["model"]): b for b in r["backtest"]}
    for h in (7, 30):
        model, rfm = backtest[(h, "challenger")], backtest[(h, "rfm")]
        assert model["ece"] <= 0.02 and model["auc"] > rfm["auc"]
        assert model["lift_top10"] > rfm["lift_top10"]
    for hidden in r["hidden_days"]:
        assert hidden["ece_vs_truth"] <= 0.02
        assert hidden["auc"] > 0.7
    assert r["model_version"].startswith("likelihood-")
