"""What the ingestion tests share: a fresh embedded warehouse per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel_assets.platform.warehouse import Warehouse


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[Warehouse]:
    w = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    w.migrate()
    yield w
    w.dispose()
