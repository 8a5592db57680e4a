"""On PostgreSQL, ``Warehouse.query_df`` reads a result through COPY and pyarrow (decision 91):
every value as the row-by-row path reads it, the types DuckDB gives for the same SQL, and the
row path whenever a type or a value is one the COPY path does not read exactly."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

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
  ('2026-03-01', 1, 2, 9007199254740993, 0.1, 0.1, 12.25, 'plain', 'x',
   '2026-03-01 10:00:00.123456', true),
  ('2026-03-02', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('2026-03-03', -3, -4, -5, 'NaN', 'Infinity', -0.5, '', 'NULL', '2026-03-03 00:00:00', false),
  ('2026-03-05', 7, 8, 9, '-0', '-0', 1e-7, '\\back\\slash', '\\.', '2026-03-05 01:02:03.5', true),
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
    """The COPY path's value is the row path's: NULL for NULL, the same date, timestamp, text,
    integer (exactly) and double (bit for bit; a Decimal as its nearest double)."""
    if row_value is None or (not isinstance(row_value, str) and pd.isna(row_value)):
        return copy_value is None or bool(pd.isna(copy_value))
    if isinstance(row_value, dt.datetime):
        return pd.Timestamp(copy_value) == pd.Timestamp(row_value)
    if isinstance(row_value, str | dt.date | bool):
        return copy_value == row_value and type(copy_value) is type(row_value)
    if isinstance(row_value, int):
        return int(copy_value) == row_value and float(copy_value) == float(row_value)
    if isinstance(row_value, Decimal):
        row_value = float(row_value)
    return math.copysign(1.0, float(copy_value)) == math.copysign(1.0, row_value) and (
        float(copy_value) == row_value or (math.isnan(float(copy_value)) and math.isnan(row_value))
    )


def test_every_value_reads_as_the_row_path_reads_it(awkward: Warehouse) -> None:
    sql = "SELECT * FROM awkward WHERE dt >= :since ORDER BY dt -- a comment ends the query"
    with awkward.begin() as conn:
        copied = _postgres_frame(conn, sql, {"since": dt.date(2026, 3, 1)})
        assert copied is not None, "every column here has a type the COPY path reads"
        via_query_df = awkward.query_df(conn, sql, since=dt.date(2026, 3, 1))
    rows = _row_path(awkward, sql, since=dt.date(2026, 3, 1))
    assert list(copied.columns) == list(rows.columns) and len(copied) == len(rows) == 5
    pd.testing.assert_frame_equal(copied, via_query_df)  # query_df took the COPY path
    for column in rows.columns:
        for got, want in zip(copied[column], rows[column], strict=True):
            assert _same(got, want), (column, got, want)
    # the text that looks like a NULL, the empty string and the quoted newline stay text
    assert copied["v"].tolist()[2:4] == ["NULL", "a,b"]
    assert copied["t"].tolist()[2:5] == ["", 'two\nlines, "quoted"', "\\back\\slash"]
    # DuckDB's types for the same columns: integers keep their width, NUMERIC is a double,
    # dates stay datetime.date objects
    assert str(copied["i"].dtype) == "float64"  # a NULL in an integer column, as in DuckDB
    assert math.isnan(copied["b"].iloc[1]) and copied["f"].iloc[0] == 0.1  # REAL as the row path
    assert str(copied["x"].dtype) == "float64"
    assert isinstance(copied["dt"].iloc[0], dt.date)
    assert copied["ok"].tolist()[0] is True and copied["ok"].tolist()[2] is False


def test_integer_widths_and_an_exact_bigint(awkward: Warehouse) -> None:
    sql = "SELECT n, i, b FROM awkward WHERE n IS NOT NULL ORDER BY dt"
    with awkward.begin() as conn:
        frame = awkward.query_df(conn, sql)
    assert [str(t) for t in frame.dtypes] == ["int16", "int32", "int64"]
    assert frame["b"].tolist() == [9007199254740993, -5, 0, 9]  # beyond a double's exact range


@pytest.mark.parametrize("since", ["2026-03-01", "2030-01-01"])
def test_types_are_duckdbs_for_the_same_sql_also_when_empty(
    awkward: Warehouse, tmp_path, since: str
) -> None:
    sql = "SELECT dt, n, i, b, d, t, ts, ok FROM awkward WHERE dt >= :d AND n IS NOT NULL"
    duck = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    with duck.begin() as conn:
        conn.execute(sa.text(AWKWARD.replace("NUMERIC", "DOUBLE")))
        conn.execute(sa.text(ROWS.replace("E'two", "'two")))
        expected = duck.query_df(conn, sql, d=since)
    with awkward.begin() as conn:
        frame = awkward.query_df(conn, sql, d=since)
    assert list(frame.columns) == list(expected.columns)
    assert len(frame) == len(expected) == (4 if since.startswith("2026") else 0)
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
        assert awkward.scalar(conn, "SELECT COUNT(*) FROM awkward") == 5


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


@pytest.mark.parametrize("params", [{}, {"p": "a%"}])
def test_a_literal_percent_reads_as_written_with_or_without_parameters(
    awkward: Warehouse, params: dict[str, object]
) -> None:
    """SQLAlchemy escapes % for psycopg; psycopg undoes it only when it has parameters."""
    sql = "SELECT 'a%' AS x, 'b%%' AS y, t FROM awkward WHERE t LIKE 'p%'"
    if params:
        sql = "SELECT 'a%' AS x, 'b%%' AS y, t FROM awkward WHERE t LIKE 'p%' AND :p = :p"
    with awkward.begin() as conn:
        assert _postgres_frame(conn, sql, params) is not None
        frame = awkward.query_df(conn, sql, **params)
    rows = _row_path(awkward, sql, **params)
    assert (
        frame.to_dict("records")
        == rows.to_dict("records")
        == [{"x": "a%", "y": "b%%", "t": "plain"}]
    )


def test_a_data_modifying_query_takes_the_row_path_and_runs_once(awkward: Warehouse) -> None:
    sql = (
        "WITH added AS (INSERT INTO awkward (dt, i) VALUES ('2026-03-10', 7) RETURNING i) "
        "SELECT i FROM added"
    )
    with awkward.begin() as conn:
        assert _postgres_frame(conn, sql, {}) is None
        frame = awkward.query_df(conn, sql)
        assert frame["i"].tolist() == [7]
        assert awkward.scalar(conn, "SELECT COUNT(*) FROM awkward WHERE i = 7") == 1


def test_a_row_of_one_null_column_is_a_row(awkward: Warehouse) -> None:
    """PostgreSQL writes it as an empty line, which a CSV reader skips unless told not to."""
    with awkward.begin() as conn:
        column = awkward.query_df(conn, "SELECT i FROM awkward ORDER BY dt")
        empty_max = awkward.query_df(conn, "SELECT MAX(i) AS m FROM awkward WHERE false")
    assert len(column) == 5 and column["i"].isna().tolist() == [
        False, True, False, False, False,
    ]  # fmt: skip
    assert len(empty_max) == 1 and pd.isna(empty_max["m"].iloc[0])


def test_a_float_parameter_takes_the_row_path(awkward: Warehouse) -> None:
    """Bound on the client, 0.1 would be a NUMERIC literal: 0.3 where float8 gives
    0.30000000000000004."""
    sql = "SELECT :f * 3 AS x"
    with awkward.begin() as conn:
        assert _postgres_frame(conn, sql, {"f": 0.1}) is None
        frame = awkward.query_df(conn, sql, f=0.1)
    assert frame["x"].iloc[0] == 0.1 * 3


def test_sql_a_subquery_cannot_hold_takes_the_row_path_in_a_usable_transaction(
    awkward: Warehouse,
) -> None:
    with awkward.begin() as conn:
        assert _postgres_frame(conn, "SELECT 1 AS one; -- done", {}) is None
        assert awkward.query_df(conn, "SELECT 1 AS one; -- done")["one"].tolist() == [1]
        frame = awkward.query_df(conn, "SELECT COUNT(*) AS n FROM awkward")  # still usable
    assert frame["n"].tolist() == [5]


def test_another_client_encoding_takes_the_row_path(awkward: Warehouse) -> None:
    with awkward.begin() as conn:
        conn.execute(sa.text("SET LOCAL client_encoding = 'LATIN1'"))
        assert _postgres_frame(conn, "SELECT t FROM awkward", {}) is None
        frame = awkward.query_df(conn, "SELECT 'caf\u00e9' AS t")
    assert frame["t"].tolist() == ["caf\u00e9"]
