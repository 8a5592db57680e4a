"""The `flywheel` console script as a user runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flywheel_assets.simulation.demo import COLUMNS

FLYWHEEL = Path(sys.executable).parent / "flywheel"


@pytest.mark.slow
def test_demo_json_prints_one_object_per_day_with_exactly_the_documented_keys(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "DAGSTER_HOME"))}
    out = subprocess.run(
        [
            str(FLYWHEEL),
            "demo",
            "--days",
            "2",
            "--seed",
            "3",
            "--json",
            "--home",
            str(tmp_path / "h"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [list(r) for r in rows] == [COLUMNS, COLUMNS]
    assert rows[0]["read"] >= 20_000
    assert all(
        r["read"] == r["accepted"] + r["quarantined"] + r["duplicates"] for r in rows
    )  # the accounting's names and sum
    assert rows[0]["champion"] == "cold-start" and rows[0]["decision"] == "experiment"
    assert rows[1]["champion"] == "cold-start" and rows[1]["challenger"] == rows[0]["challenger"]
    assert 0 < rows[0]["oracle_share"] < rows[0]["baseline_share"] < 1
    # Progress goes to stderr, never into the JSON stream.
    assert "[1/2]" in out.stderr and str(tmp_path / "h") in out.stderr
    assert f"source {tmp_path / 'h' / 'flywheel.env'}" in out.stderr
    assert (tmp_path / "h" / "warehouse.duckdb").exists()
    assert (tmp_path / "h" / "dagster" / "history").is_dir()  # the runs are in the instance


@pytest.mark.parametrize("command", [["status"], ["history"], ["model", "show"]])
def test_reading_commands_on_a_home_with_nothing_yet_say_so_and_create_nothing(tmp_path, command):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "DAGSTER_HOME"))}
    home = tmp_path / "nothing-here"
    out = subprocess.run(
        [str(FLYWHEEL), *command], env={**env, "FLYWHEEL_HOME": str(home)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.startswith(f"flywheel: no warehouse at {home / 'warehouse.duckdb'}")
    assert "Traceback" not in out.stderr and not home.exists()


def test_demo_refuses_a_home_that_is_not_fresh(tmp_path):
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "something").write_text("x")
    out = subprocess.run(
        [str(FLYWHEEL), "demo", "--days", "1", "--home", str(tmp_path / "h")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert "not empty" in out.stderr
