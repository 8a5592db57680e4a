"""The SQL the package runs: every named file exists, templates fill only from their own
allow-list, the generic partition statements check names and bind values (DuckDB and
PostgreSQL), and the wheel takes every SQL file."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from flywheel_assets.platform import warehouse as warehouse_module
from flywheel_assets.platform.warehouse import (
    SQL_DIR,
    Warehouse,
    WarehouseError,
    load_sql,
    template_bindings,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "flywheel_assets"
DAY = dt.date(2026, 3, 2)


def sql_names() -> list[str]:
    return sorted(p.relative_to(SQL_DIR).with_suffix("").as_posix() for p in SQL_DIR.rglob("*.sql"))


def test_every_sql_file_the_package_names_exists() -> None:
    folders = {p.name for p in SQL_DIR.iterdir() if p.is_dir()}
    alternatives = "|".join(sorted(folders))
    quoted = re.compile(rf"""["']((?:{alternatives})(?:/[a-z0-9_]+)+)["']""")
    named = {
        m.group(1): path.relative_to(ROOT)
        for path in PACKAGE.rglob("*.py")
        for m in quoted.finditer(path.read_text())
    }
    assert len(named) > 50, "the scan found too few names: the pattern is broken"
    existing = set(sql_names())
    missing = {name: str(path) for name, path in named.items() if name not in existing}
    assert not missing, f"SQL files named in the package but absent from sql/: {missing}"


def test_every_template_loads_with_each_binding_and_only_those() -> None:
    templates = 0
    for name in sql_names():
        if name.startswith("schema"):
            continue  # migrations are applied as written (their text is their identity)
        text = (SQL_DIR / f"{name}.sql").read_text()
        bindings = template_bindings(text)
        if not bindings:
            assert "{{" not in load_sql(name), name
            with pytest.raises(WarehouseError, match="not a template"):
                load_sql(name, table="events")
            continue
        templates += 1
        filled = {load_sql(name, **b) for b in bindings}
        assert len(filled) == len(bindings), f"{name}: two bindings give the same SQL"
        assert not any("{{" in sql for sql in filled), name
        with pytest.raises(WarehouseError, match="allows"):
            load_sql(name)
        first = bindings[0]
        for key in first:
            # Any value outside the file's own list is refused, however harmless it looks.
            for value in ("events", "x; DROP TABLE events", bindings[-1][key] + "_"):
                with pytest.raises(WarehouseError, match="allows"):
                    load_sql(name, **{**first, key: value})
    assert templates >= 3  # user x segment, region x segment, reference-data accounting


def test_bindings_are_whole_rows_of_the_allow_list() -> None:
    # user_segment_features pairs each segment with its column prefix: no cross-combination.
    with pytest.raises(WarehouseError, match="allows"):
        load_sql("features/user_segment_features", segment="category", p="ub")
    sql = load_sql("features/user_segment_features", segment="brand", p="ub")
    assert "INSERT INTO user_brand_features" in sql and "ub_click_share_28d" in sql


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("SELECT * FROM {{t}}", "without an @template line"),
        ("-- @template t: a | b\nSELECT * FROM {{u}}", "the text uses"),
        ("-- @template t u: a b | c\nSELECT {{u}} FROM {{t}}", "does not match"),
        ("-- @template t: a | b-c\nSELECT * FROM {{t}}", "not a plain SQL identifier"),
        ("-- @template t: a\n-- @template u: b\nSELECT {{u}} FROM {{t}}", "one @template line"),
    ],
)
def test_a_malformed_template_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, problem: str
) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "t.sql").write_text(text)
    monkeypatch.setattr(warehouse_module, "SQL_DIR", tmp_path)
    load_sql.cache_clear()
    try:
        with pytest.raises(WarehouseError, match=problem):
            load_sql("x/t", t="a")
    finally:
        monkeypatch.undo()
        load_sql.cache_clear()


# ----- generic partition statements ----------------------------------------------------------

HOSTILE = "events' OR '1'='1"


def _quarantine(day: dt.date) -> pd.DataFrame:
    rows = [
        ("events", "ingestion"),
        ("events", "quality"),
        ("catalog", "ingestion"),
        (HOSTILE, "ingestion"),
    ]
    return pd.DataFrame(
        {
            "dt": day,
            "source": [s for s, _ in rows],
            "stage": [st for _, st in rows],
            "source_file": "f.jsonl",
            "line_no": range(len(rows)),
            "reason": "r",
            "payload": "{}",
            "quarantined_at": pd.Timestamp(day),
        }
    )


def check_partition_statements(wh: Warehouse) -> None:
    wh.migrate()
    with wh.begin() as conn:
        for d in (DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1)):
            wh.insert_df(conn, "quarantine", _quarantine(d))
    with wh.begin() as conn:
        day = wh.read_partition(conn, "quarantine", DAY)
        assert len(day) == 4 and set(pd.to_datetime(day["dt"]).dt.date) == {DAY}
        assert "payload" in day.columns
        two = wh.read_partition(conn, "quarantine", DAY, ["source", "line_no"])
        assert list(two.columns) == ["source", "line_no"]
        events = wh.read_partition(conn, "quarantine", DAY, source="events")
        assert sorted(events["stage"]) == ["ingestion", "quality"]
        # A value is bound, never SQL: the hostile string matches only its own row.
        assert len(wh.read_partition(conn, "quarantine", DAY, source=HOSTILE)) == 1
        window = wh.read_partitions(conn, "quarantine", DAY, DAY + dt.timedelta(days=1))
        assert len(window) == 8
        assert wh.count_partition(conn, "quarantine", DAY, source="events", stage="quality") == 1
    with wh.begin() as conn:
        assert wh.delete_partition(conn, "quarantine", DAY, source=HOSTILE) == 1
        assert wh.delete_partition(conn, "quarantine", DAY, source="events", stage="ingestion") == 1
        assert wh.count_partition(conn, "quarantine", DAY) == 2
        assert wh.count_partition(conn, "quarantine", DAY - dt.timedelta(days=1)) == 4
        for bad in (
            lambda: wh.read_partition(conn, "quarantine; DROP TABLE events", DAY),
            lambda: wh.read_partition(conn, "quarantine", DAY, ["source", "1; DROP"]),
            lambda: wh.read_partition(conn, "quarantine", DAY, []),
            lambda: wh.delete_partition(conn, "quarantine", DAY, **{"source = source OR 1": 1}),
        ):
            with pytest.raises(WarehouseError, match="identifier|empty column list"):
                bad()
        assert wh.count_partition(conn, "events", DAY) == 0  # still there, and untouched


def test_partition_statements_on_duckdb(tmp_path: Path) -> None:
    check_partition_statements(Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}"))


def test_partition_statements_on_postgresql(pg_database: str) -> None:
    wh = Warehouse(pg_database)
    check_partition_statements(wh)
    wh.dispose()


# ----- the wheel ------------------------------------------------------------------------------


def test_the_wheel_takes_every_sql_file() -> None:
    """sql/ ships as the package flywheel_assets.sql (test_layout checks the package list);
    stage folders have their own subfolders, so the glob must be recursive."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"]["flywheel_assets.sql"] == "sql"
    assert config["package-data"]["flywheel_assets.sql"] == ["**/*.sql"]
    assert any(p.parent.parent != SQL_DIR for p in SQL_DIR.rglob("*.sql"))  # nested: covered
    assert not [p for p in SQL_DIR.rglob("*") if p.is_file() and p.suffix != ".sql"]
