"""CPU burnt by a run that waits for a pool slot held by another (live) run: Dagster's own
in-process executor (the baseline, `dg.materialize`) against flywheel's executor (the CLI,
`dagster asset materialize`), in the same run, over waits of growing length.

    .venv/bin/python bench/slot_wait.py [--waits 5 10 20]

Prints CPU seconds and the share of a core for each wait and executor; docs/benchmarks.md
records the results.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402
from dagster._core.storage.dagster_run import DagsterRun  # noqa: E402

from bench.benchkit import code_version, log  # noqa: E402
from flywheel_assets.orchestration.runs import WORKER_RUN_TAG, WORKER_TAG_PREFIX  # noqa: E402
from flywheel_assets.platform.liveness import ProcessIdentity  # noqa: E402

POOL, DAY = "flywheel_warehouse", "2026-03-01"
STOCK = (
    "import dagster as dg\n"
    "from flywheel_assets.defs.ingestion.assets import catalog_items\n"
    "from flywheel_assets.defs.resources import resources\n"
    f"dg.materialize([catalog_items], partition_key='{DAY}', resources=resources(),\n"
    "               instance=dg.DagsterInstance.get(), raise_on_error=False)\n"
)


def _home() -> dict[str, str]:
    tmp = Path(tempfile.mkdtemp(prefix="slot-wait-"))
    (tmp / "dagster").mkdir()
    shutil.copy(REPO / "dagster.yaml", tmp / "dagster" / "dagster.yaml")
    return {
        **os.environ,
        "FLYWHEEL_HOME": str(tmp),
        "DAGSTER_HOME": str(tmp / "dagster"),
        "FLYWHEEL_PSEUDONYM_KEY": "bench-key-0123456789abcdef",
        "FLYWHEEL_WAREHOUSE_URL": f"duckdb:///{tmp / 'warehouse.duckdb'}",
    }


def _hold_the_slot(env: dict[str, str], worker: subprocess.Popen) -> None:
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    run_id = str(uuid.uuid4())
    who = ProcessIdentity.of(worker.pid)
    instance.add_run(
        DagsterRun(
            job_name="flywheel_cycle",
            run_id=run_id,
            status=dg.DagsterRunStatus.STARTED,
            tags={**who.as_tags(WORKER_TAG_PREFIX), WORKER_RUN_TAG: run_id},
        )
    )
    instance.event_log_storage.initialize_concurrency_limit_to_default(POOL)
    assert instance.event_log_storage.claim_concurrency_slot(POOL, run_id, "x").is_claimed


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(which: str, wait: float) -> float:
    """CPU seconds the waiting run burns over ``wait`` seconds (after it started waiting)."""
    env = _home()
    holder = subprocess.Popen(["sleep", str(wait + 120)])
    try:
        _hold_the_slot(env, holder)
        cmd = (
            [sys.executable, "-c", STOCK]
            if which == "dagster"
            else [str(Path(sys.executable).with_name("dagster")), "asset", "materialize",
                  "-m", "flywheel_assets.definitions", "--select", "catalog_items",
                  "--partition", DAY]
        )  # fmt: skip
        run = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert run.stderr is not None
        for line in run.stderr:  # until it waits for the slot
            if "blocked by limit for pool" in line:
                break
        time.sleep(1.0)
        before = _cpu_seconds(run.pid)
        time.sleep(wait)
        burnt = _cpu_seconds(run.pid) - before
        run.kill()
        run.wait()
        return burnt
    finally:
        holder.kill()
        holder.wait()
        shutil.rmtree(env["FLYWHEEL_HOME"], ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", type=float, nargs="+", default=[5.0, 10.0, 20.0])
    args = parser.parse_args()
    log(f"bench/slot_wait at {code_version()}; waits {args.waits} s")
    print(
        "| wait (s) | Dagster's executor: CPU s (share of a core) | flywheel's: CPU s (share) | ratio |"
    )
    print("|---|---|---|---|")
    for wait in args.waits:
        stock, ours = measure("dagster", wait), measure("flywheel", wait)
        ratio = stock / ours if ours > 0 else float("inf")
        print(
            f"| {wait:g} | {stock:.2f} ({stock / wait:.0%}) | {ours:.2f} ({ours / wait:.1%}) "
            f"| {ratio:.0f}x |"
        )
    print(
        f"reproduce: .venv/bin/python bench/slot_wait.py --waits {' '.join(f'{w:g}' for w in args.waits)}"
    )


if __name__ == "__main__":
    main()
