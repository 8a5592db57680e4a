"""Is the process that runs a Dagster run still alive? (Dagster-free.)

A run's worker records who it is when it starts; any other process can later tell whether that
worker is still there. A pid alone is not enough: pids are reused, a killed child stays a zombie
until its parent reaps it, a rebooted machine counts again from 1, and containers that share a
host name (host networking, containers of one pod) each have their own pids. So an identity is
the host name, the boot, the pid namespace, the pid and the pid's start time.

On Linux the boot is ``/proc/sys/kernel/random/boot_id`` and the start time is the process's
start in clock ticks since boot (``/proc/PID/stat``): both are exact and do not move when the
wall clock is stepped (psutil's boot and start times are wall-clock seconds and do). Elsewhere
psutil's values are compared with a tolerance of 2 s.

Only a process of the same host and pid namespace can be judged; for any other the answer is
UNKNOWN, and the caller must not guess (the daemon's run monitoring checks the worker where it
runs).
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

_PROC = Path("/proc")
_WALL_CLOCK_TOLERANCE_S = 2.0


class Liveness(enum.Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _boot() -> str:
    return _read(_PROC / "sys/kernel/random/boot_id") or f"t{psutil.boot_time():.0f}"


def _pid_namespace() -> str:
    try:
        return str(os.stat(_PROC / "self/ns/pid").st_ino)
    except OSError:
        return ""


def _start(pid: int) -> str:
    """The process's start: clock ticks since boot on Linux ("j…"), else wall-clock ("t…").
    Raises psutil.NoSuchProcess when there is no such process."""
    stat = _read(_PROC / str(pid) / "stat")
    if stat is not None:
        # the command name (field 2) may hold spaces and parentheses: split after its last ")"
        return "j" + stat.rsplit(")", 1)[1].split()[19]
    if _PROC.is_dir():
        raise psutil.NoSuchProcess(pid)
    return f"t{psutil.Process(pid).create_time():.2f}"


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    boot: str
    pid_namespace: str
    pid: int
    start: str

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        """The identity of a running process of this host (the current one by default)."""
        return cls(socket.gethostname(), _boot(), _pid_namespace(), pid, _start(pid))

    @classmethod
    def current(cls) -> ProcessIdentity:
        return cls.of(os.getpid())

    def as_tags(self, prefix: str) -> dict[str, str]:
        return {
            f"{prefix}host": self.host,
            f"{prefix}boot": self.boot,
            f"{prefix}pid_namespace": self.pid_namespace,
            f"{prefix}pid": str(self.pid),
            f"{prefix}start": self.start,
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], prefix: str) -> ProcessIdentity | None:
        """The identity recorded in ``tags``, or None when there is none (or it is garbled)."""
        try:
            return cls(
                host=tags[f"{prefix}host"],
                boot=tags[f"{prefix}boot"],
                pid_namespace=tags[f"{prefix}pid_namespace"],
                pid=int(tags[f"{prefix}pid"]),
                start=tags[f"{prefix}start"],
            )
        except (KeyError, ValueError):
            return None

    def liveness(self) -> Liveness:
        """ALIVE or DEAD for a process of this host and pid namespace; UNKNOWN otherwise."""
        if self.host != socket.gethostname() or self.pid_namespace != _pid_namespace():
            return Liveness.UNKNOWN
        if self.boot != _boot():
            return Liveness.DEAD  # the machine rebooted since
        try:
            if not _same_start(self.start, _start(self.pid)):
                return Liveness.DEAD  # the pid now belongs to another process
            if psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE:
                return Liveness.DEAD  # killed; only its exit status is left
        except psutil.NoSuchProcess:
            return Liveness.DEAD
        except psutil.AccessDenied:
            return Liveness.ALIVE  # it exists: another user's process, same start
        return Liveness.ALIVE

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def _same_start(recorded: str, now: str) -> bool:
    if recorded[:1] == now[:1] == "t":  # wall-clock seconds: allow for clock adjustments
        return abs(float(recorded[1:]) - float(now[1:])) <= _WALL_CLOCK_TOLERANCE_S
    return recorded == now
