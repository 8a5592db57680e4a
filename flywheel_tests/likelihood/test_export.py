"""The governed export: only a login allowed to read the scores takes them out, every export
is in the audit trail, and a refused export writes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from flywheel_assets.cli.main import main
from flywheel_assets.likelihood.export import ACTION, ExportRefused, export_scores
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_tests.support.environment import restored_environment
from flywheel_tests.support.governed import Governed

DAY = dt.date(2025, 8, 1)
NOW = dt.datetime(2025, 8, 2, 6)


def _scores(n: int = 40) -> pd.DataFrame:
    p = [i / (n + 1) for i in range(n, 0, -1)]
    return pd.DataFrame(
        {
            "dt": DAY,
            "user_id": [f"u_{i:04d}" for i in range(n)],
            "p_7d": [x / 3 for x in p],
            "p_30d": p,
            "decile": [i * 10 // n + 1 for i in range(n)],
            "model_version": "likelihood-abc",
        }
    )


def _audit(wh: Warehouse) -> pd.DataFrame:
    with wh.begin() as conn:
        return wh.query_df(conn, "SELECT * FROM audit_log WHERE action = :a", a=ACTION)


@pytest.fixture
def wh(tmp_path: Path):
    w = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    w.migrate()
    with w.begin() as conn:
        w.insert_df(conn, "purchase_likelihood", _scores())
    yield w
    w.dispose()


@pytest.mark.parametrize("name", ["scores.csv", "scores.parquet"])
def test_export_writes_the_day_for_its_owner_and_audits_it(wh, tmp_path: Path, name) -> None:
    out = tmp_path / "crm" / name
    result = export_scores(wh, DAY, out, actor="ana", why="win-back campaign", now=NOW)
    back = pd.read_csv(out) if name.endswith(".csv") else pd.read_parquet(out)
    assert result.rows == len(back) == 40
    assert back["decile"].is_monotonic_increasing and back["user_id"].iloc[0] == "u_0000"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    [entry] = _audit(wh).itertuples()
    details = json.loads(entry.details)
    assert entry.actor == "ana" and entry.why == "win-back campaign"
    assert details["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest() == result.sha256
    assert details["rows"] == 40 and details["model_version"] == "likelihood-abc"


def test_refusals_write_nothing(wh, tmp_path: Path) -> None:
    with pytest.raises(ExportRefused, match=".csv or .parquet"):
        export_scores(wh, DAY, tmp_path / "x.xlsx", actor="a", why="w", now=NOW)
    with pytest.raises(ExportRefused, match="materialise purchase_likelihood"):
        export_scores(wh, DAY + dt.timedelta(days=1), tmp_path / "x.csv", actor="a", why="w",
                      now=NOW)  # fmt: skip
    with pytest.raises(ExportRefused, match="say why"):
        export_scores(wh, DAY, tmp_path / "x.csv", actor="a", why=" ", now=NOW)
    assert not list(tmp_path.glob("x.*")) and _audit(wh).empty


def test_no_file_without_its_record(wh, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    with wh.begin() as conn:  # the audit trail goes away: the record cannot be written
        wh.execute(conn, "ALTER TABLE audit_log RENAME TO audit_log_gone")
    with pytest.raises(Exception, match="audit_log"):
        export_scores(wh, DAY, out, actor="a", why="w", now=NOW)
    assert not out.exists() and not list(tmp_path.glob("*s.csv*"))


def test_on_postgresql_a_login_without_the_grant_is_refused(
    governed: Governed, tmp_path: Path
) -> None:
    admin = Warehouse(governed.admin_url)
    with admin.begin() as conn:
        admin.insert_df(conn, "purchase_likelihood", _scores())
    reader = Warehouse(governed.reader_url)  # the analyst role: masked views only
    pipeline = Warehouse(governed.pipeline_url)  # a member of the training role
    try:
        with pytest.raises(ExportRefused, match="may not read purchase_likelihood"):
            export_scores(reader, DAY, tmp_path / "no.csv", actor="eve", why="w", now=NOW)
        assert not (tmp_path / "no.csv").exists()
        out = tmp_path / "ok.parquet"
        result = export_scores(pipeline, DAY, out, actor="crm-job", why="weekly", now=NOW)
        assert result.rows == 40 and out.exists()
        [entry] = _audit(admin).itertuples()
        assert entry.actor == "crm-job"
        assert json.loads(entry.details)["login"] == f"{governed.roles.prefix}_pipeline"
    finally:
        for w in (reader, pipeline, admin):
            w.dispose()


def test_the_cli_exports_and_says_where(wh, tmp_path: Path, capsys) -> None:
    out = tmp_path / "s.csv"
    with restored_environment():
        os.environ["FLYWHEEL_WAREHOUSE_URL"] = wh.url
        code = main(["export", "purchase-likelihood", "--day", str(DAY), "--out", str(out),
                     "--why", "test", "--by", "me"])  # fmt: skip
        refused = main(["export", "purchase-likelihood", "--day", "2025-01-01", "--out",
                        str(tmp_path / "n.csv"), "--why", "test"])  # fmt: skip
    assert (
        code == 0
        and out.exists()
        and "recorded in the audit trail as me" in (capsys.readouterr().out)
    )
    assert refused == 1
