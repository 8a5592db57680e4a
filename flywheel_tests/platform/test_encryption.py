"""At-rest encryption of the embedded DuckDB warehouse (FLYWHEEL_WAREHOUSE_ENCRYPTION_KEY).

DuckDB writes encrypted files with OpenSSL from its httpfs extension, which this offline
machine cannot download; these tests let DuckDB use its built-in mbedtls instead
(FLYWHEEL_DUCKDB_UNSAFE_CRYPTO=true, development only). The file format and every flywheel code
path are the same; what they do not test is DuckDB's OpenSSL backend itself."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa

from flywheel_assets.cli.main import main as cli
from flywheel_assets.defs.ingestion.assets import catalog_items, raw_events
from flywheel_assets.defs.quality.assets import accepted_events
from flywheel_assets.defs.resources import resources
from flywheel_assets.platform.warehouse import (
    ENCRYPTION_KEY_ENV,
    UNSAFE_CRYPTO_ENV,
    Warehouse,
    WarehouseError,
)

DAY = dt.date(2026, 3, 1)
KEY = "correct horse battery staple, 'quoted'"
SECRET_CATEGORY = "category-that-must-not-appear-in-the-file"


def _land(home: Path) -> None:
    catalog = home / "landing" / "catalog" / f"dt={DAY}"
    catalog.mkdir(parents=True)
    (catalog / "items.jsonl").write_text(
        "\n".join(
            json.dumps({"item_id": f"i{i}", "category": SECRET_CATEGORY, "price": 9.5})
            for i in range(50)
        )
    )
    events = home / "landing" / "events" / f"dt={DAY}"
    events.mkdir(parents=True)
    (events / "e.jsonl").write_text(
        "\n".join(
            json.dumps(
                {
                    "event_id": f"e{i}",
                    "event_type": "view",
                    "event_time": f"{DAY}T10:00:00Z",
                    "user_id": f"user-{i % 9}",
                    "item_id": f"i{i % 50}",
                }
            )
            for i in range(2_000)
        )
    )


@pytest.fixture
def encrypted_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    monkeypatch.setenv("FLYWHEEL_PSEUDONYM_KEY", "encryption-test-key-0123456789")
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, KEY)
    monkeypatch.setenv(UNSAFE_CRYPTO_ENV, "true")
    for var in ("FLYWHEEL_WAREHOUSE_URL", "FLYWHEEL_LANDING_DIR", "FLYWHEEL_KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(var, raising=False)
    _land(home)
    return home


def _ingest() -> None:
    result = dg.materialize(
        [catalog_items, raw_events, accepted_events],
        partition_key=DAY.isoformat(),
        resources=resources(),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success


def _count(wh: Warehouse, table: str) -> int:
    with wh.begin() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar())  # noqa: S608


def test_the_pipeline_writes_an_encrypted_warehouse(encrypted_home: Path, monkeypatch) -> None:
    _ingest()
    path = encrypted_home / "warehouse.duckdb"
    data = path.read_bytes()
    assert len(data) > 100_000
    # Neither the catalog's text nor the schema's names are readable on disk.
    assert SECRET_CATEGORY.encode() not in data and b"raw_events" not in data
    # With the key, everything is there.
    wh = Warehouse(f"duckdb:///{path}")
    assert _count(wh, "events") == 2_000 and _count(wh, "items") == 50
    wh.dispose()
    # Without the key, or with another, the file does not open.
    with pytest.raises(duckdb.Error, match="without a key"):
        duckdb.connect(str(path))
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, "a wrong key")
    with pytest.raises(WarehouseError, match="not the key it was encrypted with"):
        _count(Warehouse(f"duckdb:///{path}"), "events")
    # Re-running the day on the encrypted file is as idempotent as on a plain one.
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, KEY)
    _ingest()
    wh = Warehouse(f"duckdb:///{path}")
    assert _count(wh, "events") == 2_000
    wh.dispose()


def test_an_existing_warehouse_is_encrypted_by_copy(encrypted_home: Path, monkeypatch) -> None:
    monkeypatch.delenv(ENCRYPTION_KEY_ENV)
    _ingest()
    plain = encrypted_home / "warehouse.duckdb"
    assert SECRET_CATEGORY.encode() in plain.read_bytes()
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, KEY)
    # Opening the plain file with a key set fails and says what to do.
    with pytest.raises(WarehouseError, match="encrypt-warehouse"):
        _count(Warehouse(f"duckdb:///{plain}"), "events")
    sealed = encrypted_home / "sealed.duckdb"
    assert cli(["encrypt-warehouse", "--out", str(sealed)]) == 0
    assert SECRET_CATEGORY.encode() not in sealed.read_bytes()
    wh = Warehouse(f"duckdb:///{sealed}")
    assert _count(wh, "events") == 2_000 and _count(wh, "ingestion_accounting") == 2
    wh.dispose()
    assert cli(["encrypt-warehouse", "--out", str(sealed)]) == 1  # never overwrites
    # A source that is not a plain DuckDB file fails cleanly and leaves no half-written copy.
    again = encrypted_home / "again.duckdb"
    assert cli(["encrypt-warehouse", "--url", f"duckdb:///{sealed}", "--out", str(again)]) == 1
    assert not again.exists()


def test_without_duckdb_openssl_crypto_the_error_says_what_to_do(
    encrypted_home: Path, monkeypatch
) -> None:
    """Here httpfs cannot be downloaded: opening for writing fails loudly, naming the fix. Where
    it can be loaded, the warehouse opens and is encrypted."""
    monkeypatch.delenv(UNSAFE_CRYPTO_ENV)
    path = encrypted_home / "w.duckdb"
    try:
        wh = Warehouse(f"duckdb:///{path}")
        wh.migrate()
    except WarehouseError as exc:
        assert "httpfs" in str(exc) and "docs/security.md" in str(exc)
        assert not path.exists() or b"raw_events" not in path.read_bytes()
    else:
        wh.dispose()
        assert b"raw_events" not in path.read_bytes()
