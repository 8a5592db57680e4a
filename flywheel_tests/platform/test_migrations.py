"""Versioned migrations on the embedded DuckDB warehouse: applied once, recorded, audited; a
changed or unknown migration stops everything; runs only check when told to."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from flywheel_assets.cli.main import main as cli
from flywheel_assets.defs.resources import WarehouseResource
from flywheel_assets.platform import warehouse as warehouse_module
from flywheel_assets.platform.warehouse import Migration, Warehouse, WarehouseError


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'w.duckdb'}"


def _scalar(wh: Warehouse, sql: str) -> object:
    with wh.begin() as conn:
        return conn.execute(sa.text(sql)).scalar()


def test_migrations_apply_once_recorded_and_audited(url: str) -> None:
    wh = Warehouse(url)
    files = wh.migrations()
    assert [m.version for m in files][:2] == ["schema/000_schema_migrations", "schema/001_core"]
    assert wh.migrate(applied_by="alice") == [m.version for m in files]
    assert wh.migrate(applied_by="alice") == []
    assert _scalar(wh, "SELECT COUNT(*) FROM schema_migrations") == len(files)
    assert _scalar(wh, "SELECT COUNT(*) FROM audit_log WHERE action = 'migrate'") == 1
    assert _scalar(wh, "SELECT actor FROM audit_log WHERE action = 'migrate'") == "alice"
    assert wh.pending_migrations() == []
    wh.dispose()


def test_a_changed_or_unknown_migration_stops_everything(url: str) -> None:
    wh = Warehouse(url)
    wh.migrate()
    with wh.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE schema_migrations SET sha256 = 'x' WHERE version = 'schema/003_registry'"
            )
        )
    with pytest.raises(
        WarehouseError,
        match=r"changed after this warehouse applied them: \['schema/003_registry'\]",
    ):
        wh.migrate()
    with wh.begin() as conn:
        conn.execute(sa.text("DELETE FROM schema_migrations WHERE version = 'schema/003_registry'"))
        conn.execute(
            sa.text(
                "INSERT INTO schema_migrations VALUES ('schema/999_from_the_future', 'y', now(), 'b')"
            )
        )
    with pytest.raises(WarehouseError, match="999_from_the_future"):
        wh.pending_migrations()
    wh.dispose()


def test_line_endings_do_not_change_a_migration(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(warehouse_module, "SQL_DIR", tmp_path)
    (tmp_path / "schema").mkdir()
    lf, crlf = tmp_path / "schema" / "a.sql", tmp_path / "schema" / "b.sql"
    lf.write_bytes(b"CREATE TABLE t (a INT);\n-- why\n")
    crlf.write_bytes(b"CREATE TABLE t (a INT);\r\n-- why\r\n")
    assert Migration.from_path(lf).sha256 == Migration.from_path(crlf).sha256


def test_runs_only_check_the_schema_when_told_to(url: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FLYWHEEL_WAREHOUSE_URL", url)
    monkeypatch.setenv("FLYWHEEL_AUTO_MIGRATE", "false")
    with pytest.raises(dg.Failure, match=r"migration\(s\) pending .*flywheel migrate"):
        WarehouseResource().get()
    assert cli(["migrate", "--status"]) == 1
    assert "pending schema/001_core" in capsys.readouterr().out
    assert cli(["migrate", "--by", "ops"]) == 0
    assert cli(["migrate", "--status"]) == 0
    assert WarehouseResource().get().pending_migrations() == []
