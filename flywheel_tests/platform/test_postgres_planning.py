"""On PostgreSQL a rewritten partition is analysed before its transaction commits, and JIT is
off unless the URL asks for it (decision 88): the planner must know a day holds 10^5 rows
when the next step reads it seconds later."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from flywheel_assets.platform.warehouse import Warehouse

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


def test_jit_is_off_unless_the_url_asks_for_it(pg_database) -> None:
    wh = Warehouse(pg_database)
    with wh.begin() as conn:
        assert conn.execute(sa.text("SHOW jit")).scalar() == "off"
    wh.dispose()
    url = sa.engine.make_url(pg_database).update_query_dict({"options": "-c jit=on"})
    wh = Warehouse(url.render_as_string(hide_password=False))
    with wh.begin() as conn:
        assert conn.execute(sa.text("SHOW jit")).scalar() == "on"
    wh.dispose()
