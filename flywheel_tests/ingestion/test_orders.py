"""Order lines (docs/orders.md): the contract, a day's ingestion with every line accounted for,
and a history export split into its days, idempotently (flywheel_assets.ingestion.imports)."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pandas as pd
import pytest

from flywheel_assets.ingestion.accounting import source_accounting
from flywheel_assets.ingestion.contract import FieldMap, normalise_orders
from flywheel_assets.ingestion.imports import ExportError, plan_import, write_import
from flywheel_assets.ingestion.ingest import ingest_day, orders_source
from flywheel_assets.ingestion.landing import partition_dir
from flywheel_assets.ingestion.triggers import landing_day_digests
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import Warehouse

DAY = dt.date(2026, 5, 4)
NOW = dt.datetime(2026, 5, 5, 6, 0)
PSEUDONYMS = Pseudonymiser("orders-test-key-0123456789")


def _spec(day: dt.date = DAY, lateness_days: float | None = 3):  # noqa: ANN202
    return orders_source(
        day,
        PSEUDONYMS,
        FieldMap.default("orders"),
        now=NOW,
        future_tolerance=dt.timedelta(hours=1),
        max_lateness=None if lateness_days is None else dt.timedelta(days=lateness_days),
    )


def _normalise(records: pd.DataFrame):  # noqa: ANN202
    start = dt.datetime.combine(DAY, dt.time())
    return normalise_orders(
        records.astype(object),
        pseudonymiser=PSEUDONYMS,
        partition_start=start,
        partition_end=start + dt.timedelta(days=1),
        now=NOW,
        max_lateness=dt.timedelta(days=3),
    )


def rows(wh: Warehouse, sql: str) -> pd.DataFrame:
    with wh.begin() as conn:
        return wh.query_df(conn, sql)


def test_the_contract_types_order_lines_and_says_why_it_refuses_one() -> None:
    records = pd.DataFrame(
        [
            # Online Retail's own names: InvoiceNo, StockCode, Quantity, InvoiceDate, UnitPrice
            {
                "InvoiceNo": "o1",
                "StockCode": "a",
                "Quantity": "2",
                "InvoiceDate": "2026-05-04 10:00",
                "UnitPrice": "3.5",
                "CustomerID": "alice",
            },
            {
                "InvoiceNo": "o1",
                "StockCode": "a",
                "Quantity": "1",
                "InvoiceDate": "2026-05-04 10:00",
                "UnitPrice": "3.5",
                "CustomerID": "alice",
            },  # the same item again: both lines kept
            {
                "InvoiceNo": "o2",
                "StockCode": "b",
                "Quantity": None,
                "InvoiceDate": "2026-05-04 11:00",
                "UnitPrice": None,
                "CustomerID": "bob",
            },  # quantity defaults to 1, price missing
            {
                "InvoiceNo": "C3",
                "StockCode": "b",
                "Quantity": "-1",
                "InvoiceDate": "2026-05-04 12:00",
                "UnitPrice": "2",
                "CustomerID": "bob",
            },  # a cancellation is not a sale
            {
                "InvoiceNo": "o4",
                "StockCode": "b",
                "Quantity": "1.5",
                "InvoiceDate": "2026-05-04 12:00",
                "UnitPrice": "2",
                "CustomerID": "bob",
            },
            {
                "InvoiceNo": "o5",
                "StockCode": "b",
                "Quantity": "1",
                "InvoiceDate": "2026-05-04 12:00",
                "UnitPrice": "-2",
                "CustomerID": "bob",
            },
            {
                "InvoiceNo": "o6",
                "StockCode": "b",
                "Quantity": "1",
                "InvoiceDate": "2026-04-20 12:00",
                "UnitPrice": "2",
                "CustomerID": "bob",
            },  # more than 3 days before the day
            {
                "InvoiceNo": "o7",
                "StockCode": "b",
                "Quantity": "1",
                "InvoiceDate": "2026-05-09 12:00",
                "UnitPrice": "2",
                "CustomerID": "bob",
            },
            {
                "InvoiceNo": "o8",
                "StockCode": "b",
                "Quantity": "1",
                "InvoiceDate": "2026-05-04 13:00",
                "UnitPrice": "2",
                "CustomerID": None,
            },
            {
                "InvoiceNo": "o1",
                "StockCode": "a",
                "Quantity": "2",
                "InvoiceDate": "2026-05-04 10:00",
                "UnitPrice": "3.5",
                "CustomerID": "alice",
            },  # an exact repeat: a redelivery
        ]
    )
    batch = _normalise(records)

    accepted = batch.accepted
    assert accepted["order_id"].tolist() == ["o1", "o1", "o2"]
    assert accepted["quantity"].tolist() == [2, 1, 1]
    assert accepted["price"].iloc[:2].tolist() == [3.5, 3.5] and pd.isna(accepted["price"].iloc[2])
    assert accepted["user_id"].tolist() == [PSEUDONYMS.one("alice")] * 2 + [PSEUDONYMS.one("bob")]
    assert batch.rejected["reason"].tolist() == [
        "invalid_quantity",
        "invalid_quantity",
        "invalid_price",
        "too_old_order",
        "future_order",
        "missing_required:user_id",
        "duplicate_order_line",
    ]
    # The refused lines keep their record, with the customer pseudonymised.
    assert "alice" not in " ".join(batch.rejected["payload"])
    assert "bob" not in " ".join(batch.rejected["payload"])


ORDERS_CSV = (
    "order_id,user_id,item_id,quantity,price,order_time\n"
    "o1,alice,a,2,3.5,2026-05-04T10:00:00Z\n"
    "o2,bob,b,1,9,2026-05-04T11:00:00Z\n"
    "o3,bob,b,0,9,2026-05-04T11:00:00Z\n"  # quantity 0: quarantined
    "o4,bob,b,1,9\n"  # a field short: the reader quarantines it
)


def test_a_day_of_orders_accounts_for_every_line_and_drops_lines_another_file_delivered(
    wh: Warehouse, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    folder = partition_dir(landing, "orders", DAY)
    folder.mkdir(parents=True)
    (folder / "a-orders.csv").write_text(ORDERS_CSV)
    # A second delivery repeating o2 and adding o5: o2 is counted once.
    (folder / "b-orders.jsonl.gz").write_bytes(
        gzip.compress(
            b'{"order_id":"o2","user_id":"bob","item_id":"b","quantity":1,"price":9,'
            b'"order_time":"2026-05-04T11:00:00Z"}\n'
            b'{"order_id":"o5","user_id":"carol","item_id":"c","order_time":"2026-05-04T12:00:00Z"}\n'
        )
    )
    report = ingest_day(wh, landing, _spec(), DAY, now=NOW)

    assert report.accounting == {
        "rows_read": 6,
        "rows_accepted": 3,
        "rows_quarantined": 2,
        "rows_duplicate": 1,
    }
    stored = rows(wh, "SELECT order_id, quantity, price FROM orders ORDER BY order_id")
    assert stored["order_id"].tolist() == ["o1", "o2", "o5"]
    assert stored["quantity"].tolist() == [2, 1, 1]
    reasons = rows(wh, "SELECT reason FROM quarantine WHERE source = 'orders' ORDER BY reason")
    assert reasons["reason"].tolist() == [
        "duplicate_order_line",
        "invalid_quantity",
        "wrong_field_count: expected 6, got 5",
    ]
    # Re-running the day replaces it: the same tables.
    before = rows(wh, "SELECT * EXCLUDE (dt) FROM orders ORDER BY ALL")
    ingest_day(wh, landing, _spec(), DAY, now=NOW)
    assert rows(wh, "SELECT * EXCLUDE (dt) FROM orders ORDER BY ALL").equals(before)
    with wh.begin() as conn:
        assert source_accounting(wh, conn, DAY, "orders") == report.accounting


def _export(path: Path, days: int = 40, start: dt.date = dt.date(2026, 3, 1)) -> pd.DataFrame:
    """An export with the shop's own column names, some bad lines among the good ones."""
    lines = []
    for d in range(days):
        for k in range(d % 3 + 1):
            when = dt.datetime.combine(start + dt.timedelta(days=d), dt.time(9 + k))
            lines.append(
                {
                    "Invoice": f"inv{d}-{k}",
                    "Customer ID": f"c{k}",
                    "SKU": f"sku{(d + k) % 5}",
                    "Qty": k + 1,
                    "Unit_Price": 2.5,
                    "created_at": when.isoformat(),
                }
            )
    df = pd.DataFrame(lines)
    df.loc[1, "created_at"] = "not a time"
    text = df.to_csv(index=False) + "inv,c,sku,1\n"  # a line with too few fields
    path.write_text(text)
    return df


def test_an_export_goes_to_the_days_its_lines_were_ordered_and_importing_it_again_changes_nothing(
    wh: Warehouse, tmp_path: Path
) -> None:
    export = tmp_path / "history.csv"
    df = _export(export)
    landing = tmp_path / "landing"
    fm = FieldMap.from_mapping({"Customer ID": "user_id"}, source="orders")
    today = dt.date(2026, 5, 1)

    plan = plan_import(export, fm)
    assert plan.rows_read == len(df) + 1
    assert len(plan.days) == 40 and plan.first_day == dt.date(2026, 3, 1)
    assert len(plan.undated) == 1 and len(plan.unreadable) == 1
    result = write_import(plan, landing, today=today, first_partition=dt.date(2024, 1, 1))
    assert (result.ingest_from, result.ingest_to) == (dt.date(2026, 3, 1), today)
    # The landing sensor leaves the import's files to the import (it ingests them itself).
    assert landing_day_digests(landing, {})[0] == {}

    def ingest_all() -> dict[str, int]:
        days = sorted({*plan.days, today})
        totals = dict.fromkeys(("rows_read", "rows_accepted", "rows_quarantined"), 0)
        for day in days:
            # No lateness rule can refuse a line: each is in the day it was ordered.
            spec = orders_source(
                day,
                PSEUDONYMS,
                fm,
                now=dt.datetime.combine(today, dt.time(8)),
                future_tolerance=dt.timedelta(hours=1),
                max_lateness=dt.timedelta(days=1),
            )
            report = ingest_day(wh, landing, spec, day)
            assert report.accounting is not None
            for k in totals:
                totals[k] += report.accounting[k]
        return totals

    first = ingest_all()
    assert first == {"rows_read": len(df) + 1, "rows_accepted": len(df) - 1, "rows_quarantined": 2}
    units = rows(
        wh, "SELECT CAST(order_time AS DATE) AS day, SUM(quantity) AS u FROM orders GROUP BY 1"
    )
    assert int(units["u"].sum()) == int(df.drop(index=1)["Qty"].sum())
    assert (pd.to_datetime(units["day"]).dt.date >= dt.date(2026, 3, 1)).all()

    files = {p: p.read_bytes() for p in result.files}
    again = write_import(
        plan_import(export, fm), landing, today=today, first_partition=dt.date(2024, 1, 1)
    )
    assert {p: p.read_bytes() for p in again.files} == files
    assert ingest_all() == first
    assert len(rows(wh, "SELECT * FROM orders")) == len(df) - 1


def test_an_export_reaching_before_the_partitions_or_into_the_future_is_refused_unwritten(
    tmp_path: Path,
) -> None:
    export = tmp_path / "history.csv"
    _export(export, days=5, start=dt.date(2026, 3, 1))
    landing = tmp_path / "landing"
    plan = plan_import(export, FieldMap.from_mapping({"Customer ID": "user_id"}, source="orders"))
    with pytest.raises(ExportError, match="FLYWHEEL_PARTITION_START=2026-03-01"):
        write_import(plan, landing, today=dt.date(2026, 5, 1), first_partition=dt.date(2026, 4, 1))
    with pytest.raises(ExportError, match="after today"):
        write_import(plan, landing, today=dt.date(2026, 3, 2), first_partition=dt.date(2024, 1, 1))
    assert not landing.exists()
