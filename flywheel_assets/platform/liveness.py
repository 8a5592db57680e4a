"""Is the process that runs a Dagster run still alive? (Dagster-free.)

A run's worker records who it is (host, boot, pid and the pid's start time) when it starts; any
other process can later tell whether that worker is still there. A pid alone is not enough: pids
are reused, a killed child stays a zombie until its parent reaps it, and a rebooted machine
starts counting again. Only a process on the same host can be checked; on another host the
answer is "unknown" and the caller must wait (or ask the daemon's run monitoring, which checks
the worker where it runs).
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

import psutil

# Start times are kept to 10 ms; psutil reports the same process's start time identically on
# every call, so a difference above this means another process took the pid.
_START_TOLERANCE_S = 0.05


class Liveness(enum.Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    boot_time: float
    pid: int
    start_time: float

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        return cls(
            host=socket.gethostname(),
            boot_time=round(psutil.boot_time(), 2),
            pid=pid,
            start_time=round(psutil.Process(pid).create_time(), 2),
        )

    def as_tags(self, prefix: str) -> dict[str, str]:
        return {
            f"{prefix}host": self.host,
            f"{prefix}boot_time": f"{self.boot_time:.2f}",
            f"{prefix}pid": str(self.pid),
            f"{prefix}start_time": f"{self.start_time:.2f}",
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], prefix: str) -> ProcessIdentity | None:
        """The identity recorded in ``tags``, or None when there is none (or it is garbled)."""
        try:
            return cls(
                host=tags[f"{prefix}host"],
                boot_time=float(tags[f"{prefix}boot_time"]),
                pid=int(tags[f"{prefix}pid"]),
                start_time=float(tags[f"{prefix}start_time"]),
            )
        except (KeyError, ValueError):
            return None

    def liveness(self) -> Liveness:
        """ALIVE or DEAD for a process of this host; UNKNOWN for another host's."""
        if self.host != socket.gethostname():
            return Liveness.UNKNOWN
        if abs(psutil.boot_time() - self.boot_time) > 1.0:
            return Liveness.DEAD  # the machine rebooted since
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.start_time) > _START_TOLERANCE_S:
                return Liveness.DEAD  # the pid now belongs to another process
            if proc.status() == psutil.STATUS_ZOMBIE:
                return Liveness.DEAD  # killed; only its exit status is left
        except psutil.NoSuchProcess:
            return Liveness.DEAD
        except psutil.AccessDenied:
            return Liveness.ALIVE  # it exists; another user's process
        return Liveness.ALIVE

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"
