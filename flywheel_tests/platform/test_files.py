"""Whole files or none: model artefacts and the serving pointer under a writer that is killed."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flywheel_assets.platform.files import PARTIAL, sweep_partials, write_atomically
from flywheel_assets.serving.online_features import SUCCESS, latest_bundle, list_bundles

WRITER = """
import sys
from pathlib import Path
from flywheel_assets.platform.files import write_atomically
target, n = Path(sys.argv[1]), 0
print("ready", flush=True)
while True:
    n += 1
    write_atomically(target, bytes([n % 251]) * 20_000_000)
"""


def test_a_writer_killed_mid_write_leaves_the_old_file_or_the_new_and_its_partial_is_swept(
    tmp_path: Path,
) -> None:
    target = tmp_path / "model.ubj"
    for attempt in range(3):  # kill at three moments
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        time.sleep(0.3 + 0.2 * attempt)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        if target.exists():  # whole: 20 MB of one byte value
            data = target.read_bytes()
            assert len(data) == 20_000_000 and data.count(data[:1]) == len(data)
        partials = list(tmp_path.glob(f".*{PARTIAL}"))
        swept = sweep_partials(tmp_path)
        assert sorted(swept) == sorted(partials)
        assert not list(tmp_path.glob(f".*{PARTIAL}"))


def test_a_live_writers_partial_is_kept_and_a_failed_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / f".x.{os.getpid()}.abcd{PARTIAL}"
    mine.write_bytes(b"being written")
    write_atomically(tmp_path / "pointer.json", b'{"v": 1}')
    assert mine.exists()  # its writer (this process) is alive
    assert (tmp_path / "pointer.json").read_bytes() == b'{"v": 1}'

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_atomically(tmp_path / "pointer.json", b'{"v": 2}')
    assert (tmp_path / "pointer.json").read_bytes() == b'{"v": 1}'  # the old one, whole
    assert list(tmp_path.glob(f".*{PARTIAL}")) == [mine]


def _bundle(folder: Path, day: str) -> Path:
    folder.mkdir(parents=True)
    (folder / SUCCESS).write_text(f'{{"feature_dt": "{day}"}}')
    return folder


def test_a_bundle_swap_cut_between_its_two_renames_still_shows_the_old_bundle(
    tmp_path: Path,
) -> None:
    root = tmp_path / "features"
    _bundle(root / "dt=2026-01-01", "2026-01-01")
    # The writer renamed dt=2026-01-02 to .old and was killed before renaming staging in.
    old = _bundle(root / ".dt=2026-01-02.old", "2026-01-02")
    (root / ".dt=2026-01-02.staging").mkdir()  # incomplete: never shown
    assert [p.name for p in list_bundles(tmp_path)] == ["dt=2026-01-01", ".dt=2026-01-02.old"]
    assert latest_bundle(tmp_path) == old
    assert latest_bundle(tmp_path, before=dt.date(2026, 1, 2)).name == "dt=2026-01-01"
    # Once the day is complete again, its own folder wins over a leftover .old.
    _bundle(root / "dt=2026-01-02", "2026-01-02")
    assert latest_bundle(tmp_path) == root / "dt=2026-01-02"
