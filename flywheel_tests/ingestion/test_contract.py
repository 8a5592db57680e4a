"""Unit tests for the event contract (flywheel_assets.ingestion.contract)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from flywheel_assets.ingestion.contract import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    MAX_FIELD_CHARS,
    PERSONAL_FIELD_PATTERN,
    USER_COLUMNS,
    FieldMap,
    _has_nul,
    normalise_events,
    normalise_items,
    normalise_users,
    parse_event_time,
    scrub_bad_lines,
)
from flywheel_assets.ingestion.landing import LINE_NO, read_landing_file
from flywheel_assets.platform.pseudonym import Pseudonymiser

PSEUDO = Pseudonymiser("test-key-0123456789abcdef")
START = dt.datetime(2024, 3, 5)
END = dt.datetime(2024, 3, 6)
NOW = dt.datetime(2024, 3, 6, 0, 30)


def _records(rows: list[dict]) -> pd.DataFrame:
    """Records shaped like the landing reader's: str/None values plus _line_no."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    frame = pd.DataFrame({n: pd.Series([r.get(n) for r in rows], dtype=object) for n in names})
    frame[LINE_NO] = np.arange(1, len(rows) + 1, dtype=np.int64)
    return frame


def _event(**overrides: str | None) -> dict:
    row = {
        "event_id": "e1",
        "event_type": "click",
        "event_time": "2024-03-05T10:00:00Z",
        "user_id": "alice",
        "item_id": "i1",
        "session_id": "s1",
        "request_id": "r1",
        "position": "2",
        "propensity": "0.25",
        "model_version": "m1",
        "variant": "treatment",
        "price": "9.99",
    }
    row.update(overrides)
    return row


def _events(rows: list[dict], **kwargs):
    kwargs = {"partition_start": START, "partition_end": END, "now": NOW, **kwargs}
    return normalise_events(_records(rows), pseudonymiser=PSEUDO, **kwargs)


def _everything_as_text(*frames: pd.DataFrame) -> str:
    return "\n".join(f.astype(str).to_csv(index=False) for f in frames)


# ----- accepted rows -----------------------------------------------------------------------


def test_valid_event_is_typed_trimmed_and_pseudonymised() -> None:
    batch = _events([_event(item_id="  i1 ", event_type=" Click ", session_id="")])
    assert batch.rejected.empty
    assert list(batch.rejected.columns) == ["line_no", "payload", "reason"]
    acc = batch.accepted
    assert list(acc.columns) == EVENT_COLUMNS
    row = acc.iloc[0]
    assert row["event_type"] == "click"
    assert row["item_id"] == "i1"
    assert pd.isna(row["session_id"])
    assert row["event_time"] == pd.Timestamp("2024-03-05 10:00:00")
    assert row["user_id"] == PSEUDO.one("alice") != "alice"
    assert row["position"] == 2
    assert row["propensity"] == 0.25 and row["price"] == 9.99
    assert acc.dtypes.astype(str).to_dict() == {
        "event_id": "string[pyarrow]",
        "event_type": "string[pyarrow]",
        "event_time": "datetime64[us]",
        "user_id": "string[pyarrow]",
        "item_id": "string[pyarrow]",
        "session_id": "string[pyarrow]",
        "request_id": "string[pyarrow]",
        "position": "Int64",
        "propensity": "float64",
        "model_version": "string[pyarrow]",
        "variant": "string[pyarrow]",
        "price": "float64",
        "quantity": "Int64",
    }


def test_optional_fields_may_be_absent() -> None:
    minimal = {
        k: _event()[k] for k in ("event_id", "event_type", "event_time", "user_id", "item_id")
    }
    acc = _events([minimal]).accepted
    assert len(acc) == 1
    assert pd.isna(acc["position"].iloc[0]) and np.isnan(acc["price"].iloc[0])
    assert pd.isna(acc["variant"].iloc[0])
    # No quantity is not "zero units": it stays missing, and a purchase without one is one unit.
    assert pd.isna(acc["quantity"].iloc[0])


def test_a_purchase_may_say_how_many_units_it_bought() -> None:
    rows = [
        _event(event_id="a", event_type="purchase", quantity="3"),
        _event(event_id="b", event_type="purchase", quantity="2.0"),
        _event(event_id="c", event_type="purchase"),
    ]
    acc = _events(rows).accepted
    assert acc["quantity"].tolist()[:2] == [3, 2] and pd.isna(acc["quantity"].iloc[2])


def test_accepted_keeps_record_index_for_line_numbers() -> None:
    records = _records(
        [_event(event_id="a"), _event(event_id="b", event_type="nope"), _event(event_id="c")]
    )
    batch = normalise_events(
        records, pseudonymiser=PSEUDO, partition_start=START, partition_end=END, now=NOW
    )
    assert records.loc[batch.accepted.index, LINE_NO].tolist() == [1, 3]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("impression", "impression"),
        ("IMPR", "impression"),
        ("view", "view"),
        ("addtocart", "add_to_cart"),
        ("Add-To-Cart", "add_to_cart"),
        ("cart", "add_to_cart"),
        (" transaction", "purchase"),
        ("order", "purchase"),
        ("purchase", "purchase"),
    ],
)
def test_event_type_aliases(raw: str, canonical: str) -> None:
    assert _events([_event(event_type=raw)]).accepted["event_type"].tolist() == [canonical]


def test_late_events_are_accepted() -> None:
    acc = _events([_event(event_time="2024-02-01T00:00:00Z")]).accepted
    assert acc["event_time"].tolist() == [pd.Timestamp("2024-02-01")]


def test_future_tolerance_is_measured_from_the_earlier_of_now_and_partition_end() -> None:
    rows = [
        _event(event_id="edge", event_time="2024-03-06T01:00:00Z"),  # END + 1h: allowed
        _event(event_id="over", event_time="2024-03-06T01:00:01Z"),
    ]
    batch = _events(rows)
    assert batch.accepted["event_id"].tolist() == ["edge"]
    assert batch.rejected["reason"].tolist() == ["future_event"]
    # A backfill run long after the day still uses the partition end as the limit ...
    assert _events(rows, now=dt.datetime(2025, 1, 1)).rejected["reason"].tolist() == [
        "future_event"
    ]
    # ... and a run during the day uses now.
    early = _events([_event(event_time="2024-03-05T12:00:00Z")], now=dt.datetime(2024, 3, 5, 10))
    assert early.rejected["reason"].tolist() == ["future_event"]


# ----- rejections ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"event_type": "  "}, "missing_required:event_type"),
        ({"event_time": None}, "missing_required:event_time"),
        ({"user_id": ""}, "missing_required:user_id"),
        ({"item_id": None}, "missing_required:item_id"),
        ({"event_type": "hover"}, "invalid_event_type:hover"),
        ({"event_time": "yesterday"}, "invalid_timestamp"),
        ({"event_time": "2024-02-30T00:00:00Z"}, "invalid_timestamp"),
        ({"event_time": "2030-01-01T00:00:00Z"}, "future_event"),
        ({"position": "-1"}, "invalid_position"),
        ({"position": "1.5"}, "invalid_position"),
        ({"position": "first"}, "invalid_position"),
        ({"propensity": "0"}, "invalid_propensity"),
        ({"propensity": "1.01"}, "invalid_propensity"),
        ({"propensity": "nan"}, "invalid_propensity"),
        ({"price": "-0.01"}, "invalid_price"),
        ({"price": "inf"}, "invalid_price"),
        ({"price": "1e400"}, "invalid_price"),
        ({"price": "12,50"}, "invalid_price"),
        ({"quantity": "0"}, "invalid_quantity"),
        ({"quantity": "-1"}, "invalid_quantity"),
        ({"quantity": "1.5"}, "invalid_quantity"),
        ({"quantity": "two"}, "invalid_quantity"),
        ({"quantity": "1e9"}, "invalid_quantity"),
    ],
)
def test_each_rejection_reason(overrides: dict, reason: str) -> None:
    batch = _events([_event(event_id="ok"), _event(**({"event_id": "bad"} | overrides))])
    assert batch.accepted["event_id"].tolist() == ["ok"]
    assert batch.rejected["reason"].tolist() == [reason]
    assert batch.rejected["line_no"].tolist() == [2]


def test_borderline_values_are_valid() -> None:
    rows = [
        _event(event_id="a", position="0", propensity="1", price="0"),
        _event(event_id="b", position="3.0", propensity="1e-3", price="1e2"),
    ]
    acc = _events(rows).accepted
    assert acc["position"].tolist() == [0, 3]
    assert acc["propensity"].tolist() == [1.0, 0.001]
    assert acc["price"].tolist() == [0.0, 100.0]


def test_first_failing_rule_wins() -> None:
    rows = [
        _event(event_id="a", user_id=None, event_type="bogus", price="-1"),
        _event(event_id="b", event_type="bogus", event_time="junk"),
        _event(event_id="c", event_time="junk", position="-1"),
        _event(event_id="d", position="-1", propensity="2", price="-1"),
        _event(event_id="e", propensity="2", price="-1"),
    ]
    assert _events(rows).rejected["reason"].tolist() == [
        "missing_required:user_id",
        "invalid_event_type:bogus",
        "invalid_timestamp",
        "invalid_position",
        "invalid_propensity",
    ]


def test_duplicate_event_ids_keep_the_first_valid_occurrence() -> None:
    rows = [
        _event(event_id="x", event_type="view"),
        _event(event_id="x", event_type="click"),
        _event(event_id="y", event_type="bogus"),  # invalid first copy ...
        _event(event_id="y", event_type="click"),  # ... so this one is kept
        _event(event_id=" x ", event_type="purchase"),
        _event(event_id="x", event_type="view"),  # an exact redelivery of the first
    ]
    batch = _events(rows)
    assert batch.accepted[["event_id", "event_type"]].values.tolist() == [
        ["x", "view"],
        ["y", "click"],
    ]
    # Copies that differ in what happened are id conflicts (a producer bug), not redeliveries.
    assert batch.rejected[["line_no", "reason"]].values.tolist() == [
        [2, "event_id_conflict"],
        [3, "invalid_event_type:bogus"],
        [5, "event_id_conflict"],
        [6, "duplicate_event_id"],
    ]


def test_rejected_payload_is_the_original_record_with_personal_fields_pseudonymised() -> None:
    rows = [
        _event(event_type="bogus", user_id=" bob ")
        | {"customer_email": "bob@example.com", "ip": "10.0.0.1"}
    ]
    payload = json.loads(_events(rows).rejected["payload"].iloc[0])
    assert payload["event_type"] == "bogus"
    assert payload["user_id"] == PSEUDO.one("bob")
    assert payload["customer_email"] == PSEUDO.one("bob@example.com")
    assert payload["ip"] == PSEUDO.one("10.0.0.1")
    assert LINE_NO not in payload


def test_personal_columns_never_reach_accepted() -> None:
    rows = [_event() | {"email": "a@example.com", "phone": "+4912345"}]
    acc = _events(rows).accepted
    assert list(acc.columns) == EVENT_COLUMNS
    assert "a@example.com" not in _everything_as_text(acc)


def test_personal_field_pattern() -> None:
    for name in [
        "email",
        "E_Mail",
        "customer_email",
        "ip",
        "client_ip",
        "ip_address",
        "phone",
        "mobile_phone",
    ]:
        assert PERSONAL_FIELD_PATTERN.search(name), name
    for name in ["zip", "shipping", "description", "emails_sent", "tip"]:
        assert not PERSONAL_FIELD_PATTERN.search(name), name


# ----- timestamps ----------------------------------------------------------------------------


def test_parse_event_time_forms() -> None:
    values = pd.Series(
        [
            "2024-03-05T12:00:00+02:00",  # offset -> UTC
            "2024-03-05T10:00:00Z",
            "2024-03-05T10:00:00.250Z",
            "2024-03-05 10:00:00",  # naive -> taken as UTC
            "2024-03-05",
            "1709632800",  # epoch seconds
            "1709632800.5",
            "1709632800000",  # epoch milliseconds
            "1709632800123.5",
            " 1709632800 ",
            "not a time",
            "",
            None,
            "99999999999999999999999",
        ],
        dtype=object,
    )
    parsed = parse_event_time(values)
    assert str(parsed.dtype) == "datetime64[us]"
    ten = pd.Timestamp("2024-03-05 10:00:00")
    assert parsed.tolist() == [
        ten,
        ten,
        ten + pd.Timedelta(milliseconds=250),
        ten,
        pd.Timestamp("2024-03-05"),
        ten,
        ten + pd.Timedelta(milliseconds=500),
        ten,
        ten + pd.Timedelta(microseconds=123_500),
        ten,
        pd.NaT,
        pd.NaT,
        pd.NaT,
        pd.NaT,
    ]


def test_parse_event_time_mixes_forms_in_one_column() -> None:
    parsed = parse_event_time(pd.Series(["1709632800", "2024-03-05T11:00:00+01:00"], dtype=object))
    assert parsed.nunique() == 1


# ----- field mapping -------------------------------------------------------------------------


def test_retailrocket_style_producer_is_mapped(tmp_path: Path) -> None:
    # RetailRocket: timestamp (epoch ms),visitorid,event,itemid,transactionid
    path = tmp_path / "events.csv"
    path.write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1709632800000,257597,view,355908,\n"
        "1709632860000,257597,addtocart,355908,\n"
        "1709632920000,257597,transaction,355908,4000\n"
        "1709632980000,992329,explode,248676,\n"
    )
    parsed = read_landing_file(path)
    field_map = FieldMap.from_mapping({"transactionid": "transaction_id"})
    records = parsed.records.assign(id=[f"rr-{n}" for n in parsed.records[LINE_NO]])
    batch = normalise_events(
        records,
        pseudonymiser=PSEUDO,
        partition_start=START,
        partition_end=END,
        now=NOW,
        field_map=field_map,
    )
    acc = batch.accepted
    assert acc["event_type"].tolist() == ["view", "add_to_cart", "purchase"]
    assert acc["event_time"].tolist() == [
        pd.Timestamp("2024-03-05 10:00:00"),
        pd.Timestamp("2024-03-05 10:01:00"),
        pd.Timestamp("2024-03-05 10:02:00"),
    ]
    assert acc["item_id"].tolist() == ["355908"] * 3
    assert acc["user_id"].tolist() == [PSEUDO.one("257597")] * 3
    assert acc["event_id"].tolist() == ["rr-1", "rr-2", "rr-3"]
    assert batch.rejected["reason"].tolist() == ["invalid_event_type:explode"]
    payload = json.loads(batch.rejected["payload"].iloc[0])
    assert payload["visitorid"] == PSEUDO.one("992329")
    assert "992329" not in batch.rejected["payload"].iloc[0]


def test_field_map_default_and_extension() -> None:
    default = FieldMap.default()
    assert default.canonical("Timestamp", EVENT_COLUMNS) == "event_time"
    assert default.canonical("product_id", EVENT_COLUMNS) == "item_id"
    assert default.canonical("transactionid", EVENT_COLUMNS) is None
    assert default.event_type(" AddToCart ") == "add_to_cart"
    extended = FieldMap.from_mapping({"Kind": "event_type"}, event_types={"buy": "purchase"})
    assert extended.canonical("kind", EVENT_COLUMNS) == "event_type"
    assert extended.canonical("visitorid", EVENT_COLUMNS) == "user_id"  # defaults kept
    assert extended.event_type("BUY") == "purchase"
    assert default.event_type("buy") is None


def test_canonical_column_wins_over_alias_and_alias_fills_gaps() -> None:
    rows = [
        _event(event_id="a", event_time="2024-03-05T10:00:00Z") | {"ts": "1709600000"},
        _event(event_id="b", event_time=None) | {"ts": "1709632800"},
    ]
    acc = _events(rows).accepted
    assert acc["event_time"].tolist() == [
        pd.Timestamp("2024-03-05 10:00"),
        pd.Timestamp("2024-03-05 10:00"),
    ]


def test_hand_built_frames_with_numbers_are_accepted() -> None:
    records = pd.DataFrame(
        {
            "event_id": [1, 2],
            "event_type": ["view", "click"],
            "event_time": [1709632800, 1709632801],
            "user_id": [42, 43],
            "item_id": [7.0, 8.0],
            "position": [0, 1],
        }
    )
    acc = normalise_events(
        records, pseudonymiser=PSEUDO, partition_start=START, partition_end=END, now=NOW
    ).accepted
    assert acc["event_id"].tolist() == ["1", "2"]
    assert acc["item_id"].tolist() == ["7", "8"]
    assert acc["user_id"].tolist() == [PSEUDO.one("42"), PSEUDO.one("43")]


# ----- items and users -----------------------------------------------------------------------


def test_normalise_items() -> None:
    rows = [
        {"item_id": "i1", "title": "Old", "category": "shoes", "brand": "b", "price": "10"},
        {"item_id": "i2", "category": None, "price": "5"},
        {"item_id": "i3", "category": "hats", "price": None},
        {"item_id": "i4", "category": "hats", "price": "-1", "contact_email": "x@shop.com"},
        {"item_id": "i1", "title": "New", "category": "shoes", "brand": "b", "price": "12.5"},
        {"sku": "i5", "category": "socks", "price": "3"},
    ]
    batch = normalise_items(_records(rows))
    acc = batch.accepted
    assert list(acc.columns) == ITEM_COLUMNS
    assert acc[["item_id", "title", "price"]].values.tolist() == [
        ["i1", "New", 12.5],
        ["i5", None, 3.0],
    ]
    assert acc["price"].dtype == "float64"
    assert batch.rejected[["line_no", "reason"]].values.tolist() == [
        [1, "duplicate_item_id"],
        [2, "missing_required:category"],
        [3, "missing_required:price"],
        [4, "invalid_price"],
    ]
    assert "x@shop.com" not in _everything_as_text(batch.rejected)


def test_normalise_users() -> None:
    rows = [
        {
            "user_id": "u1",
            "email": "u1@example.com",
            "region": "north",
            "signup_date": "2024-01-02",
        },
        {"user_id": "u2", "email": "u2@example.com", "signup_date": "2024-02-31"},
        {"user_id": None, "email": "ghost@example.com"},
        {
            "user_id": "u1",
            "email": "u1@example.com",
            "region": "south",
            "device": "mobile",
            "signup_date": "2024-01-03T08:00:00Z",
        },
        {"customer_id": "u3"},
    ]
    batch = normalise_users(_records(rows), pseudonymiser=PSEUDO)
    acc = batch.accepted
    assert list(acc.columns) == USER_COLUMNS
    assert acc["user_id"].tolist() == [PSEUDO.one("u1"), PSEUDO.one("u3")]
    assert acc["region"].tolist() == ["south", None]
    assert acc["device"].tolist() == ["mobile", None]
    assert str(acc["signup_date"].dtype) == "datetime64[us]"
    assert acc["signup_date"].tolist() == [pd.Timestamp("2024-01-03"), pd.NaT]
    assert batch.rejected[["line_no", "reason"]].values.tolist() == [
        [1, "duplicate_user_id"],
        [2, "invalid_date"],
        [3, "missing_required:user_id"],
    ]
    text = _everything_as_text(acc, batch.rejected)
    for raw in ["u1@example.com", "u2@example.com", "ghost@example.com", '"u1"', '"u2"']:
        assert raw not in text
    assert json.loads(batch.rejected["payload"].iloc[1])["email"] == PSEUDO.one("u2@example.com")


# ----- landing -> normalise ------------------------------------------------------------------


def test_pipeline_accounts_for_every_row_and_leaks_no_personal_data(tmp_path: Path) -> None:
    lines = [
        json.dumps(_event(event_id="e1", user_id="raw-user-1") | {"email": "raw1@example.com"}),
        json.dumps(_event(event_id="e2", user_id="raw-user-2", event_type="bogus")),
        '{"event_id": "e3", "user_id": "raw-user-3", "email": "raw3@example.com"',  # malformed
        "",
        json.dumps(_event(event_id="e1", user_id="raw-user-1")),  # duplicate
        json.dumps(_event(event_id="e4", user_id="raw-user-4", position=7, price=3)),
        "[1, 2, 3]",
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    parsed = read_landing_file(path)
    batch = normalise_events(
        parsed.records, pseudonymiser=PSEUDO, partition_start=START, partition_end=END, now=NOW
    )
    bad = scrub_bad_lines(parsed.bad_lines, pseudonymiser=PSEUDO)
    assert parsed.rows_read == 6
    assert len(batch.accepted) + len(batch.rejected) + len(bad) == parsed.rows_read
    assert batch.accepted["event_id"].tolist() == ["e1", "e4"]
    assert batch.accepted["position"].tolist() == [2, 7]
    assert sorted(batch.rejected["line_no"].tolist() + bad["line_no"].tolist()) == [2, 3, 5, 7]
    text = _everything_as_text(batch.accepted, batch.rejected, bad)
    for raw in ["raw-user-1", "raw-user-2", "raw-user-3", "raw-user-4", "raw1@", "raw3@"]:
        assert raw not in text
    assert PSEUDO.one("raw-user-3") in bad["payload"].iloc[0]


def test_normalise_200k_rows() -> None:
    n = 200_000
    idx = np.arange(n)
    records = pd.DataFrame(
        {
            "event_id": pd.Series([f"e{i}" for i in idx], dtype=object),
            "event_type": pd.Series(
                np.array(["view", "click", "addtocart"], dtype=object)[idx % 3]
            ),
            "event_time": pd.Series([str(1709632800 + i % 3600) for i in idx], dtype=object),
            "user_id": pd.Series([f"u{i % 5000}" for i in idx], dtype=object),
            "item_id": pd.Series([f"i{i % 700}" for i in idx], dtype=object),
            "position": pd.Series([str(i % 10) for i in idx], dtype=object),
            "price": pd.Series(["19.99"] * n, dtype=object),
            LINE_NO: idx + 1,
        }
    )
    batch = normalise_events(
        records, pseudonymiser=PSEUDO, partition_start=START, partition_end=END, now=NOW
    )
    assert len(batch.accepted) == n and batch.rejected.empty
    assert batch.accepted["user_id"].nunique() == 5000


# ----- derived ids and lateness ------------------------------------------------------------


def test_missing_event_id_is_derived_from_content_whatever_the_format() -> None:
    """A producer without ids (RetailRocket style) still gets exactly-once: the same event
    delivered as ISO text or as epoch milliseconds gets the same derived id."""
    iso = _event(event_id=None, event_time="2024-03-05T10:00:00Z")
    millis = _event(event_id=None, event_time="1709632800000")
    other = _event(event_id=None, item_id="i2")
    batch = _events([iso, millis, other])
    ids = batch.accepted["event_id"].tolist()
    assert len(ids) == 2 and all(i.startswith("d_") for i in ids)
    assert batch.rejected["reason"].tolist() == ["duplicate_event_id"]
    again = _events([other])
    assert again.accepted["event_id"].tolist() == [ids[1]]
    # the raw user id is not recoverable from the derived id: it enters as its pseudonym
    other_key = normalise_events(
        _records([other]),
        pseudonymiser=Pseudonymiser("another-key-of-sixteen-bytes"),
        partition_start=START,
        partition_end=END,
        now=NOW,
    )
    assert other_key.accepted["event_id"].tolist() != [ids[1]]


def test_events_older_than_max_lateness_are_quarantined() -> None:
    late = _event(event_id="late", event_time=(START - dt.timedelta(days=3)).isoformat())
    ancient = _event(event_id="old", event_time=(START - dt.timedelta(days=40)).isoformat())
    batch = _events([late, ancient], max_lateness=dt.timedelta(days=30))
    assert batch.accepted["event_id"].tolist() == ["late"]
    assert batch.rejected["reason"].tolist() == ["too_old_event"]
    # without a limit, late is late, never lost
    assert len(_events([late, ancient]).accepted) == 2


# ----- NUL: no warehouse text can hold it ----------------------------------------------------

NUL = "a\x00'; DROP TABLE events; --"


@pytest.mark.parametrize("field", EVENT_COLUMNS)
def test_a_nul_in_any_event_field_is_quarantined_with_its_name(field: str) -> None:
    """PostgreSQL cannot store NUL and DuckDB can: the contract refuses it in every field, so
    both backends keep the same rows. The payload shows it escaped, JSON-style."""
    batch = _events([_event(event_id="ok"), _event(event_id="bad") | {field: NUL}])
    assert batch.accepted["event_id"].tolist() == ["ok"]
    assert batch.rejected["reason"].tolist() == [f"nul_in_text:{field}"]
    assert batch.rejected["line_no"].tolist() == [2]
    payload = batch.rejected["payload"].iloc[0]
    assert "\x00" not in payload
    assert ("\\u0000" in payload) == (field != "user_id")  # a user id is its pseudonym
    expected = PSEUDO.one(NUL) if field == "user_id" else NUL
    assert json.loads(payload)[field] == expected


def test_a_nul_in_an_alias_or_an_unknown_field_only_reaches_the_payload_escaped() -> None:
    rows = [_event(event_id="a") | {"note": NUL}, _event(event_id="b", event_type="bogus\x00")]
    batch = _events(rows)
    # "note" is no contract field: never stored, so the row is accepted.
    assert batch.accepted["event_id"].tolist() == ["a"]
    assert batch.rejected["reason"].tolist() == ["nul_in_text:event_type"]
    assert "\x00" not in _everything_as_text(batch.accepted, batch.rejected)


def test_nul_reasons_come_after_missing_fields_and_before_the_other_rules() -> None:
    rows = [
        _event(event_id="a", user_id=None, session_id=NUL),
        _event(event_id="b", event_type="bogus", session_id=NUL, price="-1"),
        _event(event_id="c", session_id="x" * (MAX_FIELD_CHARS + 1), variant=NUL),
    ]
    assert _events(rows).rejected["reason"].tolist() == [
        "missing_required:user_id",
        "nul_in_text:session_id",
        "nul_in_text:variant",
    ]


def test_a_nul_in_arrow_columns_from_the_readers_is_found(tmp_path: Path) -> None:
    """The readers' Arrow columns are checked with one scan of their character buffer; a NUL
    anywhere in it (here after many clean rows, and in a CSV's raw bytes) is still found."""
    rows = [_event(event_id=f"e{i}") for i in range(5000)]
    rows[4321]["model_version"] = "m\x00"
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    batch = _events_from(read_landing_file(path).records)
    assert batch.rejected[["line_no", "reason"]].values.tolist() == [
        [4322, "nul_in_text:model_version"]
    ]
    csv = tmp_path / "a.csv"
    csv.write_bytes(
        b"event_id,event_type,event_time,user_id,item_id,session_id\n"
        b"c1,view,2024-03-05T10:00:00Z,u,i1,a\x00b\nc2,view,2024-03-05T10:00:00Z,u,i1,ab\n"
    )
    batch = _events_from(read_landing_file(csv).records)
    assert batch.accepted["event_id"].tolist() == ["c2"]
    assert batch.rejected["reason"].tolist() == ["nul_in_text:session_id"]
    assert json.loads(batch.rejected["payload"].iloc[0])["session_id"] == "a\x00b"


def test_the_nul_scan_of_a_sliced_column_flags_only_its_own_rows() -> None:
    arr = pa.array(["a\x00", "b", "c", "d\x00e"]).slice(1, 2)
    assert _has_nul(arr).tolist() == [False, False]
    assert _has_nul(pa.array(["x", None, "y\x00", ""])).tolist() == [False, False, True, False]
    assert _has_nul(pa.nulls(3, pa.string())).tolist() == [False] * 3


def _events_from(records: pd.DataFrame):
    return normalise_events(
        records, pseudonymiser=PSEUDO, partition_start=START, partition_end=END, now=NOW
    )


def test_a_nul_in_catalog_and_user_fields_is_quarantined() -> None:
    items = normalise_items(
        _records(
            [
                {"item_id": "i1", "category": "c", "price": "1", "title": NUL},
                {"item_id": "i2", "category": "c", "price": "1", "brand": "b\x00"},
                {"item_id": "i3\x00", "category": "c", "price": "1"},
                {"item_id": "i4", "category": "c", "price": "1\x00"},
                {"item_id": "i5", "category": "c", "price": "1", "colour": NUL},
            ]
        )
    )
    assert items.accepted["item_id"].tolist() == ["i5"]
    assert items.rejected["reason"].tolist() == [
        "nul_in_text:title",
        "nul_in_text:brand",
        "nul_in_text:item_id",
        "nul_in_text:price",
    ]
    users = normalise_users(
        _records(
            [
                {"user_id": "u1", "region": NUL},
                {"user_id": "u2", "device": "d\x00"},
                {"user_id": "u3\x00"},
                {"user_id": "u4", "signup_date": "2024-01-02T\x00"},
                {"user_id": "u5", "region": "r"},
            ]
        ),
        pseudonymiser=PSEUDO,
    )
    assert users.accepted["user_id"].tolist() == [PSEUDO.one("u5")]
    assert users.rejected["reason"].tolist() == [
        "nul_in_text:region",
        "nul_in_text:device",
        "nul_in_text:user_id",
        "nul_in_text:signup_date",
    ]
    assert "\x00" not in _everything_as_text(items.rejected, users.rejected)


def test_payloads_and_reasons_of_hand_built_frames_are_storable_text() -> None:
    """A hand-built frame can hold what no reader yields (a lone surrogate): the rejected row
    still comes out as text any warehouse stores, the character escaped."""
    batch = _events([_event(event_type="bogus", note="x\ud800")])
    payload = batch.rejected["payload"].iloc[0]
    payload.encode("utf-8")
    assert json.loads(payload)["note"] == "x\ud800"


def _fuzz_texts(seed: int, n: int) -> list[str]:
    """Short strings from the characters that make or break a number."""
    rng = np.random.default_rng(seed)
    alphabet = list("0123456789+-.eE") + ["nan", "inf", "NaN", "Infinity", "x", " ", ":", "_"]
    return ["".join(rng.choice(alphabet, rng.integers(1, 7))) for _ in range(n)]


def test_number_parsing_fast_path_equals_the_regex_definition() -> None:
    from flywheel_assets.ingestion.contract import (
        _NUMBER_RE,
        _matches,
        _numeric_text,
        _to_float,
        _to_float_checked,
    )

    texts = _fuzz_texts(11, 20_000) + ["1e999", "-1e999", "1.", ".5", "-.5", "+3", "00", "1e5"]
    assert _matches(pa.array(texts), _NUMBER_RE).any()  # the fuzz does reach numbers
    whole = pa.array([*texts, None])
    np.testing.assert_array_equal(_to_float(whole), _to_float_checked(whole))
    np.testing.assert_array_equal(_numeric_text(whole), _matches(whole, _NUMBER_RE))
    for text in dict.fromkeys(texts[-3000:]):  # one at a time: Arrow reads a column whole
        one = pa.array([text, None])
        np.testing.assert_array_equal(_to_float(one), _to_float_checked(one), err_msg=text)
        np.testing.assert_array_equal(_numeric_text(one), _matches(one, _NUMBER_RE), err_msg=text)


def test_trimming_fast_path_equals_trim_then_empty_to_null() -> None:
    from flywheel_assets.ingestion.contract import _NULL_STR, _trimmed_or_null

    def plain(arr: pa.Array) -> pa.Array:
        trimmed = pa.compute.utf8_trim_whitespace(arr)
        return pa.compute.if_else(pa.compute.equal(trimmed, ""), _NULL_STR, trimmed)

    rng = np.random.default_rng(5)
    pieces = ["a", "Z", "9", "-", " ", "\t", "\n", "\x1c", "\x85", "\u00a0", "\u2003", "\u3000"]
    pieces += ["é", "日", "~", "!"]
    fuzz = ["".join(rng.choice(pieces, rng.integers(0, 5))) for _ in range(5000)]
    clean = [f"id-{i}" for i in range(1000)]
    for values in (fuzz, clean, [*clean, ""], [*clean, None], [None, None], []):
        arr = pa.array(values, type=pa.string())
        assert _trimmed_or_null(arr).equals(plain(arr)), values[:5]
        if len(arr) > 4:  # a slice shares its parent's buffers at an offset
            part = arr.slice(2, len(arr) - 4)
            assert _trimmed_or_null(part).equals(plain(part))
    clean_arr = pa.array(clean)
    assert _trimmed_or_null(clean_arr) is clean_arr  # the fast path: not rewritten at all


def _numeric_landing_table() -> pa.Table:
    """Events whose numbers, ids and times a producer wrote as numbers, every edge included."""
    t0 = int(dt.datetime(2024, 3, 5, 10, tzinfo=dt.UTC).timestamp())
    ints = [2, 0, -1, 3, 2**60, 7, 1, 4, 5, 6, 8, 9]
    floats = [0.25, 1.0, 0.0, float("nan"), float("inf"), -0.5, 1e-05, 1e300, 3.0, 0.5, 2.5, 1.5]
    n = len(ints)
    return pa.table(
        {
            "event_id": [f"e{i}" for i in range(n - 1)] + ["e0"],  # the last repeats the first
            "event_type": ["click"] * n,
            "event_time": pa.array(
                [t0, t0 * 1000, t0 + 1, -5, t0, t0, t0, t0, t0, t0, 10**18, t0], pa.int64()
            ),
            "user_id": pa.array([10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21], pa.int64()),
            "item_id": pa.array([100.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 1.0, 2.0, 3.0]),
            "position": pa.array(ints, pa.int64()),
            "propensity": pa.array(floats),
            "price": pa.array(
                [9.99, -1.0, 0.0, 1e-4, 5.0, float("nan"), 2.0, 3.0, 4.0] + [1.0] * 3
            ),
            "quantity": pa.array([1, 2, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1], pa.int32()),
            "customer_email": pa.array(list(range(n)), pa.int64()),  # personal, in the payload
        }
    )


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_numbers_kept_numeric_by_the_reader_give_the_same_rows_and_rejections(
    tmp_path: Path, fmt: str
) -> None:
    import pyarrow.parquet as pq

    table = _numeric_landing_table()
    path = tmp_path / f"events.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        # JSON has no NaN or infinity, and a huge float sends the file to the exact reader
        # (tested in test_landing): those values are left out
        finite = [
            {
                k: v
                for k, v in r.items()
                if not (isinstance(v, float) and not (np.isfinite(v) and abs(v) < 1e15))
            }
            for r in table.to_pylist()
        ]
        path.write_text("".join(json.dumps(r) + "\n" for r in finite))
    text = read_landing_file(path)
    typed = read_landing_file(path, typed_numbers=True)
    # numbers came through as numbers (the fast readers), or as text by default
    assert str(typed.records["position"].dtype) == "int64[pyarrow]"
    assert str(typed.records["propensity"].dtype) == "double[pyarrow]"
    assert str(text.records["position"].dtype) == "string[pyarrow]"
    batches = [
        normalise_events(
            p.records, pseudonymiser=PSEUDO, partition_start=START, partition_end=END, now=NOW
        )
        for p in (text, typed)
    ]
    assert len(batches[0].accepted) >= 3 and len(batches[0].rejected) >= 5
    pd.testing.assert_frame_equal(batches[0].accepted, batches[1].accepted)
    pd.testing.assert_frame_equal(batches[0].rejected, batches[1].rejected)


def test_numeric_order_and_catalog_columns_read_the_same_as_their_text(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from flywheel_assets.ingestion.contract import normalise_orders

    t0 = int(dt.datetime(2024, 3, 5, 9, tzinfo=dt.UTC).timestamp())
    orders = pa.table(
        {
            "order_id": pa.array([1, 2, 3, 4, 5, 5], pa.int64()),
            "user_id": pa.array([7.0, 8.5, 9.0, 7.0, 8.0, 8.0]),
            "item_id": pa.array([1, 2, 3, 4, 5, 5], pa.int16()),
            "quantity": pa.array([2.0, 0.5, None, -1.0, 3.0, 3.0]),
            "price": pa.array([10, 0, -3, 4, 5, 5], pa.int8()),
            "order_time": pa.array([t0, t0 * 1000, t0, 2**62, t0, t0], pa.int64()),
        }
    )
    items = pa.table(
        {
            "item_id": pa.array([1, 2, 3], pa.uint64()),
            "category": ["a", "b", "c"],
            # float32: its text is "0.1", not the widened 0.10000000149011612
            "price": pa.array([0.1, float("nan"), 2.0], pa.float32()),
        }
    )
    for name, table, normalise in (
        (
            "orders",
            orders,
            lambda r: normalise_orders(
                r, pseudonymiser=PSEUDO, partition_start=START, partition_end=END, now=NOW
            ),
        ),
        ("items", items, normalise_items),
    ):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path)
        text, typed = (read_landing_file(path, typed_numbers=t).records for t in (False, True))
        kept = "int64[pyarrow]" if name == "orders" else "string[pyarrow]"  # float32: text
        assert str(typed["price"].dtype) == kept
        a, b = normalise(text), normalise(typed)
        assert len(a.accepted) > 0
        assert len(a.rejected) > 0 or name == "items"  # bad quantities and a repeated line
        pd.testing.assert_frame_equal(a.accepted, b.accepted)
        pd.testing.assert_frame_equal(a.rejected, b.rejected)


def test_chunked_columns_and_negative_zero_read_as_before(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "items.parquet"
    pq.write_table(
        pa.table({"item_id": ["a", "b", " c", "d"], "category": ["x"] * 4, "price": ["1"] * 4}),
        path,
        row_group_size=2,
    )
    chunked = pd.read_parquet(path, dtype_backend="pyarrow")  # one Arrow chunk per row group
    batch = normalise_items(chunked)
    assert batch.accepted["item_id"].tolist() == ["a", "b", "c", "d"]
    # a numeric -0.0 reads as its text "0" does: 0.0, not -0.0
    table = _numeric_landing_table()
    price = table.column("price").to_pylist()
    price[0] = -0.0  # row e0, otherwise valid
    table = table.set_column(table.schema.get_field_index("price"), "price", pa.array(price))
    pq.write_table(table, tmp_path / "events.parquet")
    typed = read_landing_file(tmp_path / "events.parquet", typed_numbers=True).records
    accepted = normalise_events(
        typed, pseudonymiser=PSEUDO, partition_start=START, partition_end=END, now=NOW
    ).accepted
    zero = accepted.loc[accepted["event_id"] == "e0", "price"].to_numpy()
    assert len(zero) == 1 and zero[0] == 0 and not np.signbit(zero[0])
