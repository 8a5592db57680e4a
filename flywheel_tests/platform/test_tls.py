"""TLS to PostgreSQL, configured as docs/security.md says: the warehouse URL's sslmode and
sslrootcert, and dagster.production.yaml's params, against a server that refuses anything but
TLS (a private server with a throwaway CA)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from dagster._core.test_utils import instance_for_test

from flywheel_assets.defs.ingestion.assets import catalog_items
from flywheel_assets.defs.resources import resources
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_tests.support.private_postgres import PrivatePostgres

DAY = dt.date(2026, 4, 1)


def _other_ca(folder: Path) -> Path:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem",
         "-out", "other-ca.crt", "-days", "1", "-subj", "/CN=not the server's CA"],
        cwd=folder, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return folder / "other-ca.crt"


def _connect_error(url: str) -> str:
    wh = Warehouse(url)
    try:
        with wh.begin() as conn:
            conn.execute(sa.text("SELECT 1"))
        return ""
    except sa.exc.OperationalError as exc:
        return str(exc)
    finally:
        wh.dispose()


def test_warehouse_and_dagster_storage_over_verified_tls(tmp_path: Path, monkeypatch) -> None:
    with PrivatePostgres(tls=True) as pg:
        warehouse_url = pg.create_database("warehouse")
        pg.create_database("dagster")
        base = warehouse_url.split("?")[0]
        # The server refuses plain connections, and a CA that did not sign it is not trusted.
        assert "rejects connection" in _connect_error(base + "?sslmode=disable")
        error = _connect_error(f"{base}?sslmode=verify-full&sslrootcert={_other_ca(tmp_path)}")
        assert "certificate verify failed" in error

        monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("FLYWHEEL_PSEUDONYM_KEY", "tls-test-key-0123456789abcdef")
        monkeypatch.setenv("FLYWHEEL_WAREHOUSE_URL", warehouse_url)
        for var in ("FLYWHEEL_LANDING_DIR", "FLYWHEEL_KAFKA_BOOTSTRAP", "FLYWHEEL_WAREHOUSE_ROLES"):
            monkeypatch.delenv(var, raising=False)
        folder = tmp_path / "home" / "landing" / "catalog" / f"dt={DAY}"
        folder.mkdir(parents=True)
        (folder / "items.jsonl").write_text(
            "\n".join(
                json.dumps({"item_id": f"i{i}", "category": "c", "price": 1}) for i in range(30)
            )
        )
        # Dagster's storage as dagster.production.yaml writes it, with the TLS params it shows.
        storage = {
            "postgres_db": {
                "username": "postgres",
                "password": "unused",
                "hostname": "127.0.0.1",
                "port": pg.port,
                "db_name": "dagster",
                "scheme": "postgresql+psycopg2",
                "params": {"sslmode": "verify-full", "sslrootcert": str(pg.ca_cert)},
            }
        }
        with instance_for_test(overrides={"storage": {"postgres": storage}}) as instance:
            result = dg.materialize(
                [catalog_items], partition_key=DAY.isoformat(), resources=resources(),
                instance=instance,
            )  # fmt: skip
            assert result.success
            assert len(instance.get_runs()) == 1
        # The server takes nothing but TLS, and its log shows how each session came in.
        log = pg.log.read_text(errors="replace")
        assert "database=dagster SSL enabled" in log and "database=warehouse SSL enabled" in log
        wh = Warehouse(warehouse_url)
        with wh.begin() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM items")).scalar() == 30
            assert conn.execute(
                sa.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            ).scalar()
        wh.dispose()
