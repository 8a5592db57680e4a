"""Files that readers must see whole or not at all (model artefacts, the serving pointer).

A file is written under a hidden partial name beside its final one, flushed to disk and renamed
over the final name in one step, so a reader sees the old file or the new one. A writer killed
mid-write leaves only its partial file, named after its pid; the next write into the folder
removes the partial files of writers that are gone.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import psutil

PARTIAL = ".partial"


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_partials(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{PARTIAL}")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def sweep_partials(folder: Path) -> list[Path]:
    """Remove partial files whose writer process is gone; returns them."""
    removed = []
    for p in folder.glob(f".*{PARTIAL}"):
        try:
            pid = int(p.name.split(".")[-3])
        except (IndexError, ValueError):
            continue
        if not psutil.pid_exists(pid):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _fsync_dir(folder: Path) -> None:
    # The rename itself survives a power loss only once the folder is synced (POSIX).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
