"""Loading the ranking service's request log (flywheel_assets.serving.request_log) into a real
DuckDB warehouse, without Dagster."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from flywheel_assets.ingestion.landing import partition_dir
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.serving.request_log import latency_by_variant, load_request_log

DAY = dt.date(2026, 7, 3)
PSEUDONYMS = Pseudonymiser("request-log-test-key-0123456789")


def _line(n: int, variant: str, latency: float) -> str:
    return json.dumps(
        {
            "request_id": f"r{n}",
            "served_at": f"{DAY}T10:00:{n:02d}Z",
            "user_id": f"cust-{n}",
            "model_version": "m1",
            "variant": variant,
            "k": 3,
            "epsilon": 0.1,
            "latency_ms": latency,
            "candidates": ["i1", "i2"] if n % 2 else None,
        }  # fmt: skip
    )


def test_a_days_request_log_replaces_its_partition(tmp_path: Path) -> None:
    wh = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    wh.migrate()
    folder = partition_dir(tmp_path / "landing", "requests", DAY)
    folder.mkdir(parents=True)
    lines = [_line(n, "champion", 10.0 + n) for n in range(4)] + [_line(9, "challenger", 30.0)]
    (folder / "requests.jsonl").write_text("\n".join([*lines, "not json", '{"request_id": "x"}']))

    for _ in range(2):  # a re-run replaces the day
        log = load_request_log(wh, tmp_path / "landing", DAY, PSEUDONYMS)
    assert (log.files, len(log.rows)) == (1, 5)
    assert log.rejected == {"malformed_json": 1, "missing:served_at": 1}
    with wh.begin() as conn:
        stored = wh.query_df(conn, "SELECT user_id, n_candidates FROM served_requests")
    assert len(stored) == 5 and PSEUDONYMS.one("cust-1") in set(stored["user_id"])
    assert not stored["user_id"].str.startswith("cust-").any()

    latency = latency_by_variant(log.rows)
    assert latency["variant"].tolist() == ["challenger", "champion"]
    assert latency["requests"].tolist() == [1, 4]
    assert latency["p50_ms"].tolist() == [30.0, 11.5]
    assert latency["p99_ms"].iloc[1] == pytest.approx(12.97)  # 10..13 ms, interpolated
    wh.dispose()


def test_no_log_files_leave_the_day_empty(tmp_path: Path) -> None:
    wh = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    wh.migrate()
    log = load_request_log(wh, tmp_path / "landing", DAY, PSEUDONYMS)
    assert (log.files, len(log.rows), log.rejected) == (0, 0, {})
    assert latency_by_variant(log.rows).empty
    wh.dispose()
