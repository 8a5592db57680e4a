"""On PostgreSQL, ``Warehouse.query_df`` reads a result through COPY and pyarrow (decision 91):
every value as the row-by-row path reads it, the types DuckDB gives for the same SQL, and the
row path whenever a type or a value is one the COPY path does not read exactly."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest
import sqlalchemy as sa

from flywheel_assets.platform.warehouse import Warehouse, _postgres_frame

AWKWARD = """
CREATE TABLE awkward (
    dt DATE, n SMALLINT, i INTEGER, b BIGINT, f REAL, d DOUBLE PRECISION, x NUMERIC,
    t TEXT, v VARCHAR(20), ts TIMESTAMP, ok BOOLEAN
)
"""
ROWS = """
INSERT INTO awkward VALUES
  ('2026-03-01', 1, 2, 9007199254740993, 1.5, 0.1, 12.25, 'plain', 'x',
   '2026-03-01 10:00:00.123456', true),
  ('2026-03-02', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('2026-03-03', -3, -4, -5, 'NaN', 'Infinity', -0.5, '', 'NULL', '2026-03-03 00:00:00', false),
  ('2026-03-04', 0, 0, 0, '-Infinity', 1e-300, 1e20, E'two\\nlines, "quoted"', 'a,b',
   '1999-12-31 23:59:59.999999', NULL)
"""


@pytest.fixture
def awkward(pg_database: str) -> Warehouse:
    wh = Warehouse(pg_database)
    with wh.begin() as conn:
        conn.execute(sa.text(AWKWARD))
        conn.execute(sa.text(ROWS))
    return wh


def _row_path(wh: Warehouse, sql: str, **params: object) -> pd.DataFrame:
    with wh.begin() as conn:
        result = conn.execute(sa.text(sql), params)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _same(copy_value: object, row_value: object) -> bool:
    if row_value is None or (not isinstance(row_value, str) and pd.isna(row_value)):
        return copy_value is None or bool(pd.isna(copy_value))
    if isinstance(row_value, dt.datetime):
        return pd.Timestamp(copy_value) == pd.Timestamp(row_value)
    if isinstance(row_value, str | dt.date):
        return copy_value == row_value
    return float(copy_value) == float(row_value)  # Decimal read as the nearest double


def test_every_value_reads_as_the_row_path_reads_it(awkward: Warehouse) -> None:
    sql = "SELECT * FROM awkward WHERE dt >= :since ORDER BY dt -- a comment ends the query"
    with awkward.begin() as conn:
        copied = _postgres_frame(conn, sql, {"since": dt.date(2026, 3, 1)})
        assert copied is not None, "every column here has a type the COPY path reads"
        via_query_df = awkward.query_df(conn, sql, since=dt.date(2026, 3, 1))
    rows = _row_path(awkward, sql, since=dt.date(2026, 3, 1))
    assert list(copied.columns) == list(rows.columns) and len(copied) == len(rows) == 4
    pd.testing.assert_frame_equal(copied, via_query_df)
    for column in rows.columns:
        for got, want in zip(copied[column], rows[column], strict=True):
            assert _same(got, want), (column, got, want)
    # the text that looks like a NULL, the empty string and the quoted newline stay text
    assert copied["v"].tolist()[2:] == ["NULL", "a,b"]
    assert copied["t"].tolist()[2:] == ["", 'two\nlines, "quoted"']
    # DuckDB's types for the same columns: integers keep their width, NUMERIC is a double,
    # dates stay datetime.date objects
    assert str(copied["i"].dtype) == "float64"  # a NULL in an integer column, as in DuckDB
    assert copied["b"].iloc[0] == 9007199254740993 or math.isnan(copied["b"].iloc[1])
    assert str(copied["x"].dtype) == "float64"
    assert isinstance(copied["dt"].iloc[0], dt.date)
    assert copied["ok"].tolist()[0] is True and copied["ok"].tolist()[2] is False


def test_integer_widths_and_an_exact_bigint(awkward: Warehouse) -> None:
    sql = "SELECT n, i, b FROM awkward WHERE n IS NOT NULL ORDER BY dt"
    with awkward.begin() as conn:
        frame = awkward.query_df(conn, sql)
    assert [str(t) for t in frame.dtypes] == ["int16", "int32", "int64"]
    assert frame["b"].tolist() == [9007199254740993, -5, 0]  # beyond a double's exact range


@pytest.mark.parametrize("since", ["2026-03-01", "2030-01-01"])
def test_types_are_duckdbs_for_the_same_sql_also_when_empty(
    awkward: Warehouse, tmp_path, since: str
) -> None:
    sql = "SELECT dt, n, i, b, f, d, t, ts, ok FROM awkward WHERE dt >= :d AND n IS NOT NULL"
    duck = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    with duck.begin() as conn:
        conn.execute(sa.text(AWKWARD.replace("NUMERIC", "DOUBLE")))
        conn.execute(sa.text(ROWS.replace("E'two", "'two")))
        expected = duck.query_df(conn, sql, d=since)
    with awkward.begin() as conn:
        frame = awkward.query_df(conn, sql, d=since)
    assert list(frame.columns) == list(expected.columns)
    assert len(frame) == len(expected) == (3 if since.startswith("2026") else 0)
    assert frame.dtypes.astype(str).tolist() == expected.dtypes.astype(str).tolist()


def test_the_same_transaction_sees_its_own_writes_and_temporary_tables(
    awkward: Warehouse,
) -> None:
    with awkward.begin() as conn:
        awkward.register_temp(conn, "candidates", pd.DataFrame({"i": [2, -4], "tag": ["a", "b"]}))
        conn.execute(sa.text("INSERT INTO awkward (dt, i) VALUES ('2026-03-09', 2)"))
        frame = awkward.query_df(
            conn,
            "SELECT c.tag, COUNT(*) AS n FROM candidates c JOIN awkward a ON a.i = c.i "
            "GROUP BY c.tag ORDER BY c.tag",
        )
    assert frame.to_dict("records") == [{"tag": "a", "n": 2}, {"tag": "b", "n": 1}]


def test_parameters_are_bound_by_the_driver_not_spliced(awkward: Warehouse) -> None:
    hostile = "x'; DROP TABLE awkward; --"
    with awkward.begin() as conn:
        frame = awkward.query_df(conn, "SELECT t FROM awkward WHERE t = :t OR v = :t", t=hostile)
    assert frame.empty
    with awkward.begin() as conn:
        assert awkward.scalar(conn, "SELECT COUNT(*) FROM awkward") == 4


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT now() AS at",  # a time zone: not read through COPY
        "SELECT INTERVAL '1 day' AS span",  # an interval
        "SELECT 1 AS a, 2 AS a",  # duplicate names
    ],
)
def test_a_type_copy_does_not_read_exactly_takes_the_row_path(awkward: Warehouse, sql: str) -> None:
    with awkward.begin() as conn:
        assert _postgres_frame(conn, sql, {}) is None
        frame = awkward.query_df(conn, sql)
    assert len(frame) == 1


def test_a_value_arrow_cannot_parse_takes_the_row_path_and_its_error(
    awkward: Warehouse,
) -> None:
    """A date 'infinity' is no Arrow date: the row path reads it, and fails as it always did
    (psycopg has no such date either), instead of a wrong value."""
    sql = "SELECT d FROM (VALUES (DATE '2026-03-01'), (DATE 'infinity')) AS v(d)"
    with awkward.begin() as conn:
        assert _postgres_frame(conn, sql, {}) is None
    with pytest.raises(sa.exc.DataError, match="infinity"), awkward.begin() as conn:
        awkward.query_df(conn, sql)


def test_another_datestyle_takes_the_row_path(awkward: Warehouse) -> None:
    with awkward.begin() as conn:
        conn.execute(sa.text("SET LOCAL DateStyle = 'SQL, DMY'"))
        assert _postgres_frame(conn, "SELECT dt FROM awkward", {}) is None
        frame = awkward.query_df(conn, "SELECT dt FROM awkward ORDER BY dt")
    assert frame["dt"].iloc[0] == dt.date(2026, 3, 1)
