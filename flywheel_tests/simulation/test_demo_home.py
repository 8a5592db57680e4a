"""A demo home's flywheel.env, sourced as the README says, in a shell set up for something else."""

import datetime as dt
import shlex
import subprocess
from pathlib import Path

from flywheel_assets.platform.settings import FlywheelPaths
from flywheel_assets.simulation.demo import write_env_file


def source(env_file: Path, before: str = "") -> subprocess.CompletedProcess[str]:
    script = f"set -euo pipefail; {before} source {shlex.quote(str(env_file))}; env -0"
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )


def test_sourcing_gives_the_demos_settings_and_clears_a_deployments(tmp_path: Path) -> None:
    home = tmp_path / "a home's 'odd' name"
    home.mkdir()
    (home / "pseudonym.key").write_text("k$y-with-$(dollar)")
    paths = FlywheelPaths.from_env(home, environ={})
    env_file = write_env_file(paths, dt.date(2026, 2, 1), 3, warehouse_url=None)
    assert env_file.stat().st_mode & 0o777 == 0o600
    out = source(
        env_file,
        "export FLYWHEEL_WAREHOUSE_URL=postgresql://prod FLYWHEEL_MODELS_DIR=s3://prod "
        "FLYWHEEL_PARTITION_END=2030-01-01;",
    )
    assert out.returncode == 0, out.stderr
    env = dict(line.split("=", 1) for line in out.stdout.split("\0") if "=" in line)
    assert env["FLYWHEEL_HOME"] == str(home) and env["DAGSTER_HOME"] == str(home / "dagster")
    assert (env["FLYWHEEL_PARTITION_START"], env["FLYWHEEL_PARTITION_END"]) == (
        "2026-02-01",
        "2026-02-03",
    )
    assert env["FLYWHEEL_PSEUDONYM_KEY"] == "k$y-with-$(dollar)"  # read, never evaluated
    assert "FLYWHEEL_WAREHOUSE_URL" not in env and "FLYWHEEL_MODELS_DIR" not in env
    assert "k$y" not in env_file.read_text()  # the key stays in its own file


def test_a_missing_key_file_stops_the_sourcing_saying_so(tmp_path: Path) -> None:
    paths = FlywheelPaths.from_env(tmp_path, environ={})
    env_file = write_env_file(paths, dt.date(2026, 2, 1), 3, warehouse_url="duckdb:///x.db")
    out = source(env_file)
    assert out.returncode != 0
    assert "cannot read the pseudonym key" in out.stderr
    assert "export FLYWHEEL_WAREHOUSE_URL=duckdb:///x.db" in env_file.read_text()
