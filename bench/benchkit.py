"""What every benchmark in bench/ shares: logging, the commit measured, memory and CPU marks."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def code_version() -> str:
    """The commit measured, ``-dirty`` when the package or its SQL has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "flywheel_assets", "sql"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("-dirty" if dirty else "")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def cpu_marks() -> tuple[float, float]:
    """(CPU seconds busy on the whole machine, CPU seconds of this process) so far: their
    difference over a timed section is what other processes took from it (Linux only)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    try:
        with open("/proc/stat") as fh:
            ticks = [int(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return float("nan"), own.ru_utime + own.ru_stime
    busy = sum(ticks[i] for i in (0, 1, 2, 5, 6, 7))  # user nice system irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK"), own.ru_utime + own.ru_stime


def other_cpu(start: tuple[float, float]) -> float:
    """CPU seconds other processes used since ``start`` (a ``cpu_marks()``)."""
    busy, own = cpu_marks()
    return max(0.0, (busy - start[0]) - (own - start[1]))


def last_run_steps() -> dict[str, float]:
    """Each finished step's seconds in the latest Dagster run of the current instance, from its
    step statistics."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    run = instance.get_runs(limit=1)[0]
    return {
        s.step_key: s.end_time - s.start_time
        for s in instance.get_run_step_stats(run.run_id)
        if s.start_time is not None and s.end_time is not None
    }
