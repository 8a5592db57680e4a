"""On PostgreSQL a rewritten partition is analysed before its transaction commits, and JIT is
off unless the URL asks for it (decision 88): the planner must know a day holds 10^5 rows
when the next step reads it seconds later."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from flywheel_assets.platform.warehouse import Warehouse, WarehouseError, split_statements

DAY = dt.date(2026, 3, 1)


def stats(wh: Warehouse, table: str) -> tuple[float, object]:
    with wh.begin() as conn:
        row = conn.execute(
            sa.text(
                "SELECT c.reltuples, s.last_analyze FROM pg_class c "
                "JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = :t"
            ),
            {"t": table},
        ).one()
    return float(row[0]), row[1]


def test_a_rewritten_partition_is_analysed_when_its_transaction_commits(pg_database) -> None:
    wh = Warehouse(pg_database)
    with wh.begin() as conn:
        conn.execute(sa.text("CREATE TABLE day_rows (dt DATE, x INTEGER)"))
    assert stats(wh, "day_rows")[1] is None
    rows = pd.DataFrame({"dt": DAY, "x": range(5_000)})
    with pytest.raises(RuntimeError), wh.begin() as conn:
        wh.delete_partition(conn, "day_rows", DAY)
        wh.insert_df(conn, "day_rows", rows)
        raise RuntimeError("the step fails: nothing is committed, nothing analysed")
    assert stats(wh, "day_rows")[1] is None
    with wh.begin() as conn:
        wh.delete_partition(conn, "day_rows", DAY)
        wh.insert_df(conn, "day_rows", rows)
    reltuples, analysed = stats(wh, "day_rows")
    assert analysed is not None and reltuples == 5_000
    # what the statistics are for: the planner expects the day's rows, not a guess
    with wh.begin() as conn:
        plan = conn.execute(
            sa.text("EXPLAIN (FORMAT JSON) SELECT * FROM day_rows WHERE dt = :d"), {"d": DAY}
        ).scalar()
    assert plan[0]["Plan"]["Plan Rows"] == 5_000
    # a transaction that only reads analyses nothing (the timestamp stays)
    with wh.begin() as conn:
        wh.count_partition(conn, "day_rows", DAY)
    assert stats(wh, "day_rows")[1] == analysed
    wh.dispose()


def test_an_append_is_not_analysed(pg_database) -> None:
    """Only a rewritten partition is: an append (a Kafka micro-batch, a temporary table of
    candidates) would pay an ANALYZE per batch."""
    wh = Warehouse(pg_database)
    with wh.begin() as conn:
        conn.execute(sa.text("CREATE TABLE appended (dt DATE, x INTEGER)"))
    with wh.begin() as conn:
        wh.insert_df(conn, "appended", pd.DataFrame({"dt": DAY, "x": range(100)}))
    assert stats(wh, "appended")[1] is None
    wh.dispose()


def item_rows(n: int) -> pd.DataFrame:
    return pd.DataFrame({"dt": DAY, "item_id": [f"i{k}" for k in range(n)], "i_price": 1.0})


@pytest.mark.parametrize("acting_as", ["transformation", "the login"])
def test_with_roles_a_rewritten_partition_is_analysed_by_the_owners_function(
    governed, acting_as: str
) -> None:
    """A step acts as its stage role; a sensor or the CLI as the login, which owns no table
    either. Both have the owner's function analyse what they rewrote."""
    wh = Warehouse(governed.pipeline_url)
    wh.uses_roles = True
    if acting_as != "the login":
        wh.session_role = lambda: governed.roles.name(acting_as)
    with wh.begin() as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar() != "postgres"
        wh.delete_partition(conn, "item_features", DAY)
        wh.insert_df(conn, "item_features", item_rows(3_000))
    reltuples, analysed = stats(Warehouse(governed.admin_url), "item_features")
    assert analysed is not None and reltuples == 3_000
    wh.dispose()


def test_only_a_stage_that_rewrites_a_table_may_have_it_analysed(governed) -> None:
    """The owner's function analyses no more than the caller could rewrite: serving writes
    nothing, and nobody's login may rewrite the audit trail."""
    wh = Warehouse(governed.pipeline_url)
    for role, table in (("serving", "item_features"), ("training", "audit_log")):
        wh.session_role = lambda role=role: governed.roles.name(role)
        with pytest.raises(sa.exc.ProgrammingError), wh.begin() as conn:
            conn.execute(sa.text("SELECT flywheel_analyze(:t)"), {"t": table})
    wh.dispose()


def test_a_schema_file_with_unpaired_dollar_quotes_is_refused() -> None:
    assert split_statements("SELECT 1;\nSELECT 2;") == ["SELECT 1", "SELECT 2"]
    body = "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END $$ LANGUAGE plpgsql;"
    assert split_statements(body + "\nSELECT 1;") == [body[:-1], "SELECT 1"]
    for bad in ("SELECT 1; SELECT '$$'; SELECT 2;", "CREATE FUNCTION f() AS $body$ x $body$;"):
        with pytest.raises(WarehouseError, match="could not be split safely"):
            split_statements(bad)


def test_a_failed_analyze_loses_no_data_and_says_what_to_do(governed, caplog) -> None:
    """Grants not re-applied after an upgrade (no function yet): the rows still commit."""
    admin = Warehouse(governed.admin_url)
    with admin.begin() as conn:
        conn.execute(sa.text("DROP FUNCTION flywheel_analyze(text)"))
    wh = Warehouse(governed.pipeline_url)
    wh.session_role = lambda: governed.roles.name("transformation")
    with wh.begin() as conn:
        wh.delete_partition(conn, "item_features", DAY)
        wh.insert_df(conn, "item_features", item_rows(50))
    with admin.begin() as conn:
        assert wh.count_partition(conn, "item_features", DAY) == 50
    assert stats(admin, "item_features")[1] is None
    assert "run `flywheel grants`" in caplog.text
    wh.dispose()
    admin.dispose()


def test_jit_is_off_unless_the_url_asks_for_it(pg_database, monkeypatch) -> None:
    wh = Warehouse(pg_database)
    with wh.begin() as conn:
        assert conn.execute(sa.text("SHOW jit")).scalar() == "off"
    wh.dispose()
    # libpq's own PGOPTIONS is kept, and may turn JIT back on
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=1234 -c jit=on")
    wh = Warehouse(pg_database)
    with wh.begin() as conn:
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "1234ms"
        assert conn.execute(sa.text("SHOW jit")).scalar() == "on"
    wh.dispose()
    monkeypatch.delenv("PGOPTIONS")
    url = sa.engine.make_url(pg_database).update_query_dict({"options": "-c jit=on"})
    wh = Warehouse(url.render_as_string(hide_password=False))
    with wh.begin() as conn:
        assert conn.execute(sa.text("SHOW jit")).scalar() == "on"
    wh.dispose()
