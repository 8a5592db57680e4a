"""The event contract: canonical columns, producer field mapping and row-level validation.

Input is what ``landing.read_landing_file`` yields (every value str or None, plus the readers'
``LINE_NO`` column, named so that no producer field can collide with it; with
``typed_numbers``, a column the file held as integers or floats stays numeric, and reads the
same as its text would). Each row ends up in
exactly one of ``accepted`` (canonical columns, typed, personal ids pseudonymised) or
``rejected`` (with the first failing rule as the reason), so
``len(accepted) + len(rejected) == len(records)`` always holds.

Everything on the accepted path is vectorised (pyarrow compute / numpy); Python loops only
run over rejected rows, to build their JSON payloads.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from flywheel_assets.ingestion.landing import (
    LINE_NO,
    MAX_PAYLOAD_CHARS,
    arrow_to_text,
    is_number_type,
    scalar_to_str,
    storable_text,
)
from flywheel_assets.platform.arrow_compute import repeated_rows
from flywheel_assets.platform.pseudonym import Pseudonymiser

EVENT_TYPES = ("impression", "view", "click", "add_to_cart", "purchase")
EVENT_COLUMNS = [
    "event_id",
    "event_type",
    "event_time",
    "user_id",
    "item_id",
    "session_id",
    "request_id",
    "position",
    "propensity",
    "model_version",
    "variant",
    "price",
    # Units bought, on a purchase (optional; none is one unit): docs/orders.md.
    "quantity",
]
REQUIRED_EVENT_FIELDS = ("event_id", "event_type", "event_time", "user_id", "item_id")
ITEM_COLUMNS = ["item_id", "title", "category", "brand", "price"]
REQUIRED_ITEM_FIELDS = ("item_id", "category", "price")
USER_COLUMNS = ["user_id", "region", "device", "signup_date"]
# One order line: an order of `quantity` units of one item at a unit `price` (docs/orders.md).
ORDER_COLUMNS = ["order_id", "user_id", "item_id", "quantity", "price", "order_time"]
REQUIRED_ORDER_FIELDS = ("order_id", "user_id", "item_id", "order_time")
REJECTED_COLUMNS = ["line_no", "payload", "reason"]

# Column names holding personal data besides user_id: the whole name or an ``_``-suffix
# (customer_email, client_ip), case-insensitive.
PERSONAL_FIELD_PATTERN = re.compile(
    r"(?:^|_)(?:e_?mail|email_address|ip|ip_address|phone|phone_number)$", re.IGNORECASE
)

DEFAULT_FIELD_ALIASES: dict[str, str] = {
    "action": "event_type",
    "type": "event_type",
    "event": "event_type",
    "timestamp": "event_time",
    "ts": "event_time",
    "time": "event_time",
    "event_timestamp": "event_time",
    "visitorid": "user_id",
    "visitor_id": "user_id",
    "customer_id": "user_id",
    "userid": "user_id",
    "itemid": "item_id",
    "product_id": "item_id",
    "sku": "item_id",
    "id": "event_id",
    "eventid": "event_id",
    "sessionid": "session_id",
    # transactionid is deliberately unmapped: it stays in the rejected payload only.
}
DEFAULT_EVENT_TYPE_ALIASES: dict[str, str] = {
    "addtocart": "add_to_cart",
    "add-to-cart": "add_to_cart",
    "cart": "add_to_cart",
    "transaction": "purchase",
    "order": "purchase",
    "impr": "impression",
}

# Order exports' usual names (shop platforms, ERPs, the UCI Online Retail data set), on top of
# the defaults; they apply to the orders source only, where "timestamp" is the order's time.
ORDER_FIELD_ALIASES: dict[str, str] = {
    "timestamp": "order_time",
    "ts": "order_time",
    "time": "order_time",
    "date": "order_time",
    "order_date": "order_time",
    "order_timestamp": "order_time",
    "created_at": "order_time",
    "invoicedate": "order_time",
    "invoice_date": "order_time",
    "orderid": "order_id",
    "order_number": "order_id",
    "invoice": "order_id",
    "invoiceno": "order_id",
    "invoice_no": "order_id",
    "transactionid": "order_id",
    "transaction_id": "order_id",
    "customerid": "user_id",
    "customer": "user_id",
    "stockcode": "item_id",
    "stock_code": "item_id",
    "productid": "item_id",
    "qty": "quantity",
    "units": "quantity",
    "unit_price": "price",
    "unitprice": "price",
}
# The defaults every source starts from, before a field-map file extends them.
SOURCE_DEFAULT_ALIASES: dict[str, dict[str, str]] = {
    "orders": {**DEFAULT_FIELD_ALIASES, **ORDER_FIELD_ALIASES},
}
# Quantities are stored as INTEGER; beyond this an order line is garbage, not a sale.
MAX_QUANTITY = 1_000_000

_NUMBER_RE = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_DATE_RE = r"^\d{4}-\d{2}-\d{2}(?:[T ].*)?$"
_EPOCH_SECONDS_LIMIT = 1e11  # below: epoch seconds; at or above: epoch milliseconds
_MAX_ABS_MICROS = 2.5e17  # about year 9900; beyond that the value is garbage, not a time
_MAX_POSITION = 2**31  # positions are stored as INTEGER
_MAX_REASON_VALUE_CHARS = 100
# Ids and labels longer than this are garbage (or an attack), not data.
MAX_FIELD_CHARS = 1024
_NULL_STR = pa.scalar(None, pa.string())
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_JSON_PAIR_RE = re.compile(
    r'"(?P<key>[^"\\]{1,200})"\s*:\s*(?P<value>"(?:[^"\\]|\\.)*"|[^,}\]\s]+)'
)


@dataclass(frozen=True)
class FieldMap:
    """Producer field name -> canonical name (keys match case-insensitively, trimmed)."""

    aliases: dict[str, str] = field(default_factory=dict)
    event_type_aliases: dict[str, str] = field(
        default_factory=lambda: dict(DEFAULT_EVENT_TYPE_ALIASES)
    )

    @classmethod
    def default(cls, source: str = "events") -> FieldMap:
        """The built-in map of ``source`` (orders know order exports' names too)."""
        aliases = SOURCE_DEFAULT_ALIASES.get(source, DEFAULT_FIELD_ALIASES)
        return cls(dict(aliases), dict(DEFAULT_EVENT_TYPE_ALIASES))

    @classmethod
    def from_mapping(
        cls,
        mapping: Mapping[str, str],
        event_types: Mapping[str, str] | None = None,
        *,
        source: str = "events",
    ) -> FieldMap:
        """``source``'s default map extended (and overridden) by ``mapping`` / ``event_types``."""
        base = SOURCE_DEFAULT_ALIASES.get(source, DEFAULT_FIELD_ALIASES)
        return cls(
            {**base, **{_key(k): v for k, v in mapping.items()}},
            {**DEFAULT_EVENT_TYPE_ALIASES, **{_key(k): v for k, v in (event_types or {}).items()}},
        )

    def canonical(self, name: str, wanted: Sequence[str]) -> str | None:
        """The canonical column ``name`` feeds, if it is one of ``wanted``."""
        key = _key(name)
        if key in wanted:
            return key
        target = {_key(k): v for k, v in self.aliases.items()}.get(key)
        return target if target in wanted else None

    def event_type(self, value: str) -> str | None:
        """The canonical event type for a raw value, or None if it is not one."""
        return _event_type(value, self._event_type_lookup())

    def _event_type_lookup(self) -> dict[str, str]:
        return {_key(k): v for k, v in self.event_type_aliases.items()}


@dataclass(frozen=True)
class NormalisedBatch:
    """``accepted`` keeps the index labels of ``records`` so callers can look up
    ``records.loc[accepted.index, LINE_NO]``."""

    accepted: pd.DataFrame
    rejected: pd.DataFrame  # line_no, payload, reason


# ----- public API ---------------------------------------------------------------------------


def parse_event_time(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC ``datetime64[us]``; NaT where unparseable.

    ISO-8601 with an offset or ``Z`` is converted to UTC, naive ISO is taken as UTC, and a
    purely numeric value is epoch seconds when abs < 1e11, else epoch milliseconds.
    """
    return pd.Series(_parse_time(_clean_arrow(values)), index=values.index, name=values.name)


def normalise_events(
    records: pd.DataFrame,
    *,
    pseudonymiser: Pseudonymiser,
    partition_start: datetime.datetime,
    partition_end: datetime.datetime,
    now: datetime.datetime,
    future_tolerance: datetime.timedelta = datetime.timedelta(hours=1),
    max_lateness: datetime.timedelta | None = None,
    field_map: FieldMap | None = None,
) -> NormalisedBatch:
    """Validate event records against the contract.

    Late events (before ``partition_start``) are legal unless they are more than
    ``max_lateness`` before it (``too_old_event``). A missing ``event_id`` is derived from the
    event's content (``derive_event_ids``). All datetimes are naive UTC.
    """
    fm = field_map or FieldMap.default()
    cols, sources = _canonical_columns(records, fm, EVENT_COLUMNS)
    checks = _Checks(len(records))

    for name in REQUIRED_EVENT_FIELDS:
        if name != "event_id":
            checks.fail(~_present(cols[name]), f"missing_required:{name}")
    _fail_nul(checks, cols)

    for name in _TEXT_EVENT_COLUMNS:
        checks.fail(_too_long(cols[name]), f"field_too_long:{name}")

    raw_type = cols["event_type"]
    event_type = _map_event_types(raw_type, fm)
    bad_type = _present(raw_type) & ~_present(event_type)
    checks.fail(
        bad_type,
        lambda rows: [
            f"invalid_event_type:{v[:_MAX_REASON_VALUE_CHARS]}"
            for v in _to_object(raw_type.filter(pa.array(rows)))
        ],
    )

    event_time = _time_rules(
        checks,
        cols["event_time"],
        "event",
        partition_start=partition_start,
        partition_end=partition_end,
        now=now,
        future_tolerance=future_tolerance,
        max_lateness=max_lateness,
    )

    position = _to_float(cols["position"])
    checks.fail(
        _present(cols["position"])
        & ~(
            np.isfinite(position)
            & (position >= 0)
            & (position < _MAX_POSITION)
            & (np.floor(position) == position)
        ),
        "invalid_position",
    )
    propensity = _to_float(cols["propensity"])
    checks.fail(
        _present(cols["propensity"]) & ~((propensity > 0) & (propensity <= 1)),
        "invalid_propensity",
    )
    price = _to_float(cols["price"])
    checks.fail(_present(cols["price"]) & ~(np.isfinite(price) & (price >= 0)), "invalid_price")
    quantity = _to_float(cols["quantity"])
    checks.fail(
        _present(cols["quantity"]) & ~_whole_quantity(quantity),
        "invalid_quantity",
    )

    # From here on only rows still valid matter: work on them alone, in Arrow.
    valid = pa.array(checks.ok)
    pseudo_users = pseudonymiser.arrow(_kept(cols["user_id"], checks.ok))
    event_ids = _kept(cols["event_id"], checks.ok)
    no_id = ~_present(event_ids)
    if no_id.any():
        mask = pa.array(no_id)
        derived = derive_event_ids(
            _to_object(event_type.filter(valid).filter(mask)),
            event_time[checks.ok][no_id],
            _to_object(pseudo_users.filter(mask)),
            _to_object(cols["item_id"].filter(valid).filter(mask)),
            _to_object(cols["session_id"].filter(valid).filter(mask)),
            _to_object(cols["request_id"].filter(valid).filter(mask)),
            position[checks.ok][no_id],
        )
        event_ids = pc.replace_with_mask(event_ids, mask, pa.array(derived, type=pa.string()))
    dup = repeated_rows(event_ids)
    if dup.any():
        # A copy that differs from the first in what happened is two events sharing an id (a
        # producer bug), not a redelivery: it gets its own reason and counts as a data fault.
        same = (
            pd.DataFrame(
                {
                    "event_id": pd.arrays.ArrowExtensionArray(event_ids),
                    "event_type": pd.arrays.ArrowExtensionArray(event_type.filter(valid)),
                    "event_time": event_time[checks.ok],
                    "user_id": pd.arrays.ArrowExtensionArray(pseudo_users),
                    "item_id": pd.arrays.ArrowExtensionArray(cols["item_id"].filter(valid)),
                    "price": price[checks.ok],
                    "quantity": quantity[checks.ok],
                }
            )
            .duplicated(keep="first")
            .to_numpy()
        )
        rows = np.flatnonzero(checks.ok)
        conflict_rows = np.zeros(len(records), dtype=bool)
        conflict_rows[rows[dup & ~same]] = True
        checks.fail(conflict_rows, "event_id_conflict")
        dup_rows = np.zeros(len(records), dtype=bool)
        dup_rows[rows[dup & same]] = True
        checks.fail(dup_rows, "duplicate_event_id")

    keep = checks.ok
    still = ~dup  # valid rows that survived the duplicate rule
    index = records.index[keep]
    data: dict[str, pd.Series] = {}
    for name in EVENT_COLUMNS:
        if name == "user_id":
            data[name] = _arrow_series(_kept(pseudo_users, still), index)
        elif name == "event_id":
            data[name] = _arrow_series(_kept(event_ids, still), index)
        elif name == "event_type":
            data[name] = _arrow_series(_kept(event_type, keep), index)
        elif name == "event_time":
            data[name] = pd.Series(event_time[keep], index=index, dtype="datetime64[us]")
        elif name in ("position", "quantity"):
            values = position if name == "position" else quantity
            data[name] = pd.Series(values[keep], index=index).astype("Int64")
        elif name in ("propensity", "price"):
            values = propensity if name == "propensity" else price
            data[name] = pd.Series(values[keep], index=index, dtype="float64")
        else:
            data[name] = _arrow_series(_kept(cols[name], keep), index)
    personal = _personal_columns(records, sources["user_id"])
    return NormalisedBatch(
        accepted=pd.DataFrame(data, columns=EVENT_COLUMNS),
        rejected=_rejected(records, checks, personal, pseudonymiser),
    )


def derive_event_ids(
    event_type: np.ndarray,
    event_time: np.ndarray,
    user_pseudonym: np.ndarray,
    item_id: np.ndarray,
    session_id: np.ndarray,
    request_id: np.ndarray,
    position: np.ndarray,
) -> np.ndarray:
    """Deterministic ids for events a producer sent without one: ``d_`` + SHA-256 of the
    canonical content (type, time to the microsecond, user pseudonym, item, session, request,
    position), so a redelivery gets the same id whichever format or field names carried it.
    Two events identical in all of these are one event. The user enters as its pseudonym, so
    the id reveals nothing and changes when the pseudonymisation key is rotated."""
    micros = event_time.astype("datetime64[us]").astype(np.int64)
    out = np.empty(len(micros), dtype=object)
    for i, parts in enumerate(
        zip(
            event_type,
            micros,
            user_pseudonym,
            item_id,
            session_id,
            request_id,
            position,
            strict=True,
        )
    ):
        text = "\x1f".join("" if _missing(p) else str(p) for p in parts)
        out[i] = "d_" + hashlib.sha256(text.encode()).hexdigest()[:32]
    return out


def normalise_items(records: pd.DataFrame, *, field_map: FieldMap | None = None) -> NormalisedBatch:
    """Validate catalog records. A repeated item_id keeps the last valid line (a correction).

    There is no pseudonymiser here, so personal-looking columns are dropped from payloads.
    """
    fm = field_map or FieldMap.default()
    cols, _ = _canonical_columns(records, fm, ITEM_COLUMNS)
    checks = _Checks(len(records))
    text = {c: _to_object(cols[c]) for c in ITEM_COLUMNS if c != "price"}
    for name in REQUIRED_ITEM_FIELDS:
        checks.fail(~_present(cols[name]), f"missing_required:{name}")
    _fail_nul(checks, cols)
    for name in ("item_id", "category", "brand", "title"):
        checks.fail(_too_long(cols[name]), f"field_too_long:{name}")
    price = _to_float(cols["price"])
    checks.fail(~(np.isfinite(price) & (price >= 0)), "invalid_price")
    checks.fail(checks.duplicates(text["item_id"], keep="last"), "duplicate_item_id")

    keep = checks.ok
    index = records.index[keep]
    data = {
        name: (
            pd.Series(price[keep], index=index, dtype="float64")
            if name == "price"
            else pd.Series(text[name][keep], index=index, dtype=object)
        )
        for name in ITEM_COLUMNS
    }
    return NormalisedBatch(
        accepted=pd.DataFrame(data, columns=ITEM_COLUMNS),
        rejected=_rejected(records, checks, _personal_columns(records, []), None),
    )


def normalise_users(
    records: pd.DataFrame, *, pseudonymiser: Pseudonymiser, field_map: FieldMap | None = None
) -> NormalisedBatch:
    """Validate user records. A repeated user_id keeps the last valid line (a correction).

    ``signup_date`` is ``datetime64[us]`` at midnight; a time part after the date is ignored.
    """
    fm = field_map or FieldMap.default()
    cols, sources = _canonical_columns(records, fm, USER_COLUMNS)
    checks = _Checks(len(records))
    text = {c: _to_object(cols[c]) for c in USER_COLUMNS if c != "signup_date"}
    checks.fail(~_present(cols["user_id"]), "missing_required:user_id")
    _fail_nul(checks, cols)
    for name in ("user_id", "region", "device"):
        checks.fail(_too_long(cols[name]), f"field_too_long:{name}")
    signup = _parse_date(cols["signup_date"])
    checks.fail(_present(cols["signup_date"]) & np.isnat(signup), "invalid_date")
    checks.fail(checks.duplicates(text["user_id"], keep="last"), "duplicate_user_id")

    keep = checks.ok
    index = records.index[keep]
    users = pd.Series(text["user_id"][keep], index=index, dtype=object)
    data = {
        "user_id": _object_series(pseudonymiser.series(users), index),
        "region": pd.Series(text["region"][keep], index=index, dtype=object),
        "device": pd.Series(text["device"][keep], index=index, dtype=object),
        "signup_date": pd.Series(signup[keep], index=index, dtype="datetime64[us]"),
    }
    personal = _personal_columns(records, sources["user_id"])
    return NormalisedBatch(
        accepted=pd.DataFrame(data, columns=USER_COLUMNS),
        rejected=_rejected(records, checks, personal, pseudonymiser),
    )


def order_times(records: pd.DataFrame, field_map: FieldMap | None = None) -> np.ndarray:
    """Each record's order time as the contract reads it (naive UTC ``datetime64[us]``, NaT
    where missing or unreadable): what `flywheel import orders` splits an export by."""
    cols, _ = _canonical_columns(records, field_map or FieldMap.default("orders"), ["order_time"])
    return _parse_time(cols["order_time"])


def normalise_orders(
    records: pd.DataFrame,
    *,
    pseudonymiser: Pseudonymiser,
    partition_start: datetime.datetime,
    partition_end: datetime.datetime,
    now: datetime.datetime,
    future_tolerance: datetime.timedelta = datetime.timedelta(hours=1),
    max_lateness: datetime.timedelta | None = None,
    field_map: FieldMap | None = None,
) -> NormalisedBatch:
    """Validate order lines against the contract (docs/orders.md).

    ``quantity`` defaults to 1 and must be a whole number from 1 (a return or a cancellation
    is not a sale: ``invalid_quantity``); ``price`` is per unit, >= 0, and may be missing (the
    catalog price stands in). The time rules are the events': ``future_order`` past the
    delivery day (or now) plus the tolerance, ``too_old_order`` more than ``max_lateness``
    before the delivery day. A line repeated exactly in the same delivery is a redelivery
    (``duplicate_order_line``); two lines of one order for the same item are both kept (exports
    split lines), so the order's units are their sum.
    """
    fm = field_map or FieldMap.default("orders")
    cols, sources = _canonical_columns(records, fm, ORDER_COLUMNS)
    checks = _Checks(len(records))
    for name in REQUIRED_ORDER_FIELDS:
        checks.fail(~_present(cols[name]), f"missing_required:{name}")
    _fail_nul(checks, cols)
    for name in ("order_id", "user_id", "item_id"):
        checks.fail(_too_long(cols[name]), f"field_too_long:{name}")

    order_time = _time_rules(
        checks,
        cols["order_time"],
        "order",
        partition_start=partition_start,
        partition_end=partition_end,
        now=now,
        future_tolerance=future_tolerance,
        max_lateness=max_lateness,
    )

    given = _present(cols["quantity"])
    quantity = np.where(given, _to_float(cols["quantity"]), 1.0)
    checks.fail(~_whole_quantity(quantity), "invalid_quantity")
    price = _to_float(cols["price"])
    checks.fail(_present(cols["price"]) & ~(np.isfinite(price) & (price >= 0)), "invalid_price")

    text = {c: _to_object(cols[c]) for c in ("order_id", "user_id", "item_id")}
    line_key = pd.DataFrame(
        {**text, "quantity": quantity, "price": price, "order_time": order_time}
    )
    repeated = np.zeros(len(records), dtype=bool)
    repeated[checks.ok] = line_key[checks.ok].duplicated(keep="first").to_numpy()
    checks.fail(repeated, "duplicate_order_line")

    keep = checks.ok
    index = records.index[keep]
    users = pd.Series(text["user_id"][keep], index=index, dtype=object)
    data = {
        "order_id": pd.Series(text["order_id"][keep], index=index, dtype=object),
        "user_id": _object_series(pseudonymiser.series(users), index),
        "item_id": pd.Series(text["item_id"][keep], index=index, dtype=object),
        "quantity": pd.Series(quantity[keep], index=index).astype("int64"),
        "price": pd.Series(price[keep], index=index, dtype="float64"),
        "order_time": pd.Series(order_time[keep], index=index, dtype="datetime64[us]"),
    }
    personal = _personal_columns(records, sources["user_id"])
    return NormalisedBatch(
        accepted=pd.DataFrame(data, columns=ORDER_COLUMNS),
        rejected=_rejected(records, checks, personal, pseudonymiser),
    )


def scrub_bad_lines(
    bad_lines: pd.DataFrame,
    *,
    pseudonymiser: Pseudonymiser,
    field_map: FieldMap | None = None,
) -> pd.DataFrame:
    """Best-effort pseudonymising of raw unparseable lines before they are stored.

    A malformed JSON line still shows ``"key": value`` pairs; values under user-id or
    personal keys, and any e-mail address anywhere, are replaced by pseudonyms. A CSV row's
    positional user id cannot be recognised, so store these payloads with care.
    """
    fm = field_map or FieldMap.default()

    def scrub(text: str) -> str:
        def pair(match: re.Match[str]) -> str:
            key = match.group("key")
            if fm.canonical(key, ["user_id"]) is None and not PERSONAL_FIELD_PATTERN.search(key):
                return match.group(0)
            raw = match.group("value")
            value = raw[1:-1] if raw.startswith('"') else raw
            start = match.start("value") - match.start(0)
            return f'{match.group(0)[:start]}"{pseudonymiser.one(value.strip())}"'

        text = _JSON_PAIR_RE.sub(pair, text)
        return _EMAIL_RE.sub(lambda m: str(pseudonymiser.one(m.group(0))), text)

    out = bad_lines.copy()
    out["payload"] = pd.Series(
        [scrub(p) if isinstance(p, str) else p for p in bad_lines["payload"]],
        index=bad_lines.index,
        dtype=object,
    )
    return out


# ----- helpers ------------------------------------------------------------------------------


def _whole_quantity(quantity: np.ndarray) -> np.ndarray:
    """A quantity of units sold: a whole number from 1 to MAX_QUANTITY (a return or a
    cancellation is not a sale)."""
    with np.errstate(invalid="ignore"):
        return (
            np.isfinite(quantity)
            & (quantity >= 1)
            & (quantity <= MAX_QUANTITY)
            & (np.floor(quantity) == quantity)
        )


# Fields the contract reads as numbers or times: a numeric column stays numeric for them.
_NUMERIC_FIELDS = frozenset(
    {"position", "propensity", "price", "quantity", "event_time", "order_time"}
)
_TYPED_EVENT_COLUMNS = ("event_time", "position", "propensity", "price", "quantity")
_TEXT_EVENT_COLUMNS = tuple(c for c in EVENT_COLUMNS if c not in _TYPED_EVENT_COLUMNS)


class _Checks:
    """First-failing-rule bookkeeping: a row keeps the first reason it was given."""

    def __init__(self, n: int) -> None:
        self.ok = np.ones(n, dtype=bool)
        self.reason = np.full(n, None, dtype=object)

    def fail(self, mask: Any, reason: str | Callable[[np.ndarray], list[str]]) -> None:
        hit = np.asarray(mask, dtype=bool) & self.ok
        if hit.any():
            # a callable builds labels for the hit rows only (labels that quote the value)
            self.reason[hit] = reason if isinstance(reason, str) else reason(hit)
            self.ok &= ~hit

    def duplicates(self, ids: np.ndarray, *, keep: Literal["first", "last"]) -> np.ndarray:
        """Repeats among rows still valid, so a bad first copy does not shadow a good one."""
        dup = np.zeros(len(ids), dtype=bool)
        dup[self.ok] = pd.Series(ids[self.ok], dtype=object).duplicated(keep=keep).to_numpy()
        return dup


def _time_rules(
    checks: _Checks,
    text: pa.Array,
    what: str,
    *,
    partition_start: datetime.datetime,
    partition_end: datetime.datetime,
    now: datetime.datetime,
    future_tolerance: datetime.timedelta,
    max_lateness: datetime.timedelta | None,
) -> np.ndarray:
    """Parse a row's time and apply the delivery day's rules: ``invalid_timestamp``,
    ``future_<what>`` and ``too_old_<what>``; returns the times (NaT where unparseable)."""
    times = _parse_time(text)
    checks.fail(_present(text) & np.isnat(times), "invalid_timestamp")
    cutoff = np.datetime64(min(_naive_utc(now), _naive_utc(partition_end)) + future_tolerance, "us")
    checks.fail(times > cutoff, f"future_{what}")
    if max_lateness is not None:
        oldest = np.datetime64(_naive_utc(partition_start) - max_lateness, "us")
        checks.fail(times < oldest, f"too_old_{what}")
    return times


def _naive_utc(value: datetime.datetime) -> datetime.datetime:
    # The contract is naive UTC; tolerate an aware datetime rather than mis-compare it.
    if value.tzinfo is None:
        return value
    return value.astimezone(datetime.UTC).replace(tzinfo=None)


def _key(name: object) -> str:
    return str(name).strip().lower()


def _event_type(value: str, lookup: dict[str, str]) -> str | None:
    key = _key(value)
    key = lookup.get(key, key)
    return key if key in EVENT_TYPES else None


def _clean_arrow(values: pd.Series) -> pa.Array:
    """Trimmed strings with empty -> null, as an arrow array (fast vectorised string ops); a
    reader's numeric column (``read_landing_file(typed_numbers=True)``) as it is."""
    if _is_number_column(values):
        return pa.array(values)
    if isinstance(values.dtype, pd.ArrowDtype) and pa.types.is_string(values.dtype.pyarrow_dtype):
        return _trimmed_or_null(pa.array(values))  # the landing readers' columns: no copy
    raw = values.to_numpy(dtype=object)
    try:
        arr = pa.array(raw, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Hand-built frames may hold numbers or timestamps; stringify like the landing reader.
        arr = pa.array([None if _missing(v) else scalar_to_str(v) for v in raw], type=pa.string())
    return _trimmed_or_null(arr)


def _trimmed_or_null(arr: pa.Array) -> pa.Array:
    """``arr`` trimmed of whitespace, empty values null. A clean column (the usual one) has
    nothing to trim and nothing empty: that is read off its offsets and end bytes, and the
    column is returned as it is instead of rewritten twice."""
    trimmed = arr if _nothing_to_trim(arr) else pc.utf8_trim_whitespace(arr)
    shortest = pc.min(pc.binary_length(trimmed)).as_py()
    if shortest is None or shortest > 0:
        return trimmed
    return pc.if_else(pc.equal(trimmed, ""), _NULL_STR, trimmed)


def _nothing_to_trim(arr: pa.Array) -> bool:
    """True when every value starts and ends with printable ASCII (0x21-0x7E), which no
    whitespace is; any other end byte (a control byte, or part of a multi-byte character
    that may be Unicode whitespace) sends the column through the trim."""
    if not isinstance(arr, pa.Array) or not pa.types.is_string(arr.type):
        return False  # a chunked column (hand-built frames) takes the trim
    if arr.buffers()[2] is None:
        return False
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[
        arr.offset : arr.offset + len(arr) + 1
    ]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    starts, ends = offsets[:-1], offsets[1:]
    filled = ends > starts  # null slots and empty values have no end bytes
    for byte in (data[starts[filled]], data[ends[filled] - 1]):
        if ((byte < 0x21) | (byte > 0x7E)).any():
            return False
    return True


def _is_number_column(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.ArrowDtype) and is_number_type(values.dtype.pyarrow_dtype)


def _as_text(values: pa.Array) -> pa.Array:
    """A numeric column as the text the reader would have given (``scalar_to_str``)."""
    return values if pa.types.is_string(values.type) else arrow_to_text(values)


def _fail_nul(checks: _Checks, cols: dict[str, pa.Array]) -> None:
    """``nul_in_text:<field>`` for a NUL (U+0000) in any contract field: PostgreSQL cannot
    store one, and no id, label, number or time has one (DuckDB would keep it: the backends
    must agree)."""
    for name, arr in cols.items():
        checks.fail(_has_nul(arr), f"nul_in_text:{name}")


def _has_nul(arr: pa.Array) -> np.ndarray:
    """Rows holding a NUL. A column's characters are one buffer: a scan of it for a zero byte
    (in UTF-8 only NUL itself is one) rules out the usual column at memory speed."""
    if is_number_type(arr.type):
        return np.zeros(len(arr), dtype=bool)
    if isinstance(arr, pa.Array) and (
        pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    ):
        data = arr.buffers()[2]
        if data is None or np.frombuffer(data, dtype=np.uint8).all():
            return np.zeros(len(arr), dtype=bool)
    return pc.fill_null(pc.match_substring(arr, "\x00"), False).to_numpy(zero_copy_only=False)


def _kept(arr: pa.Array, mask: np.ndarray) -> pa.Array:
    """The rows of ``arr`` where ``mask``; the array itself when that is every row (the usual
    clean file), not a copy."""
    return arr if mask.all() else arr.filter(pa.array(mask))


def _too_long(arr: pa.Array) -> np.ndarray:
    # A value has at most as many characters as bytes: when no value has more bytes than the
    # limit (read off the offsets, no decoding), none is too long.
    if (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) and (
        arr.null_count == len(arr) or pc.max(pc.binary_length(arr)).as_py() <= MAX_FIELD_CHARS
    ):
        return np.zeros(len(arr), dtype=bool)
    return pc.fill_null(pc.greater(pc.utf8_length(arr), MAX_FIELD_CHARS), False).to_numpy(
        zero_copy_only=False
    )


def _arrow_series(arr: pa.Array, index: pd.Index) -> pd.Series:
    """Arrow strings as a pandas column without a copy (missing values are null)."""
    return pd.Series(pd.arrays.ArrowExtensionArray(arr), index=index)


def _map_event_types(values: pa.Array, fm: FieldMap) -> pa.Array:
    """Canonical event types (null where not one): each distinct value mapped once."""
    encoded = pc.dictionary_encode(values)
    lookup = fm._event_type_lookup()
    mapped = pa.array(
        [_event_type(u, lookup) for u in encoded.dictionary.to_pylist()], type=pa.string()
    )
    return mapped.take(encoded.indices)


def _to_object(arr: pa.Array) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False)


def _object_series(values: pd.Series, index: pd.Index) -> pd.Series:
    return pd.Series(values.to_numpy(dtype=object), index=index, dtype=object)


def _present(arr: pa.Array) -> np.ndarray:
    return pc.is_valid(arr).to_numpy(zero_copy_only=False)


def _matches(arr: pa.Array, pattern: str) -> np.ndarray:
    return pc.fill_null(pc.match_substring_regex(arr, pattern), False).to_numpy(
        zero_copy_only=False
    )


def _to_float(arr: pa.Array) -> np.ndarray:
    """Numbers as float64; NaN where absent or not a plain decimal number (``_NUMBER_RE``).

    Arrow's parser reads every plain decimal number as the regex-then-cast path does, and
    more: "nan", "inf", "infinity" and the like, and numbers too large for a double as inf.
    So a column it reads whole is taken from it, and only its non-finite rows are checked
    against the regex; a column it cannot read whole takes the regex path (tested equal).
    A numeric column is its values (read as text, each would parse back to itself; NaN and
    infinities fail every rule that a "nan" or "inf" text fails).
    """
    if is_number_type(arr.type):
        # + 0.0 makes -0.0 the 0.0 its text "0" reads as; NaN stays NaN
        return pc.cast(arr, pa.float64(), safe=False).to_numpy(zero_copy_only=False) + 0.0
    try:
        values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _to_float_checked(arr)
    odd = ~np.isfinite(values) & _present(arr)
    if odd.any():
        values = values.copy() if not values.flags.writeable else values
        values[odd] = _to_float_checked(arr.filter(pa.array(odd)))
    return values


def _to_float_checked(arr: pa.Array) -> np.ndarray:
    numeric = pa.array(_matches(arr, _NUMBER_RE))
    return pc.cast(pc.if_else(numeric, arr, _NULL_STR), pa.float64()).to_numpy(zero_copy_only=False)


def _parse_time(text: pa.Array) -> np.ndarray:
    """See ``parse_event_time``; ``text`` is already trimmed with empty -> null."""
    out = np.full(len(text), np.datetime64("NaT", "us"))
    numeric = _present(text) if is_number_type(text.type) else _numeric_text(text)
    if numeric.any():
        nums = pc.cast(pc.filter(text, pa.array(numeric)), pa.float64(), safe=False).to_numpy()
        micros = np.where(np.abs(nums) < _EPOCH_SECONDS_LIMIT, nums * 1e6, nums * 1e3)
        finite = np.isfinite(micros) & (np.abs(micros) < _MAX_ABS_MICROS)
        stamps = np.full(len(nums), np.datetime64("NaT", "us"))
        stamps[finite] = np.round(micros[finite]).astype(np.int64).view("datetime64[us]")
        out[numeric] = stamps
    textual = ~numeric & pc.is_valid(text).to_numpy(zero_copy_only=False)
    if textual.any():
        strings = pc.filter(text, pa.array(textual))
        out[textual] = _parse_iso(strings)
    return out


def _numeric_text(text: pa.Array) -> np.ndarray:
    """``_matches(text, _NUMBER_RE)``, the regex run only on values without a colon: no number
    has one and almost every time written as text does (a substring scan, not a regex)."""
    colon = pc.fill_null(pc.match_substring(text, ":"), True).to_numpy(zero_copy_only=False)
    if colon.all():
        return np.zeros(len(text), dtype=bool)
    out = np.zeros(len(text), dtype=bool)
    out[~colon] = _matches(text.filter(pa.array(~colon)), _NUMBER_RE)
    return out


def _parse_iso(strings: pa.Array) -> np.ndarray:
    """ISO-8601 text as naive UTC datetime64[us] (NaT where unparseable). Arrow's parser
    takes the usual all-offset or all-naive columns at C speed; anything else (mixed, odd
    shapes, invalid dates) goes through pandas' ISO-8601 parser, value by value."""
    for target in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        try:
            parsed = pc.cast(strings, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        naive = parsed.cast(pa.timestamp("us")) if target.tz else parsed
        return naive.to_numpy(zero_copy_only=False).astype("datetime64[us]")
    series = pd.Series(strings.to_numpy(zero_copy_only=False))
    parsed = pd.to_datetime(series, format="ISO8601", utc=True, errors="coerce")
    return parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[us]")


def _parse_date(arr: pa.Array) -> np.ndarray:
    out = np.full(len(arr), np.datetime64("NaT", "us"))
    dated = _matches(arr, _DATE_RE)
    if dated.any():
        first10 = pc.utf8_slice_codeunits(pc.filter(arr, pa.array(dated)), 0, 10)
        strings = pd.Series(first10.to_numpy(zero_copy_only=False), dtype=object)
        parsed = pd.to_datetime(strings, format="%Y-%m-%d", errors="coerce")
        out[dated] = parsed.to_numpy(dtype="datetime64[us]")
    return out


def _canonical_columns(
    records: pd.DataFrame, fm: FieldMap, wanted: list[str]
) -> tuple[dict[str, pa.Array], dict[str, list[str]]]:
    """Canonical columns (canonical name first, then aliases, coalesced row by row) and,
    for each, the producer columns that fed it."""
    sources: dict[str, list[str]] = {name: [] for name in wanted}
    for col in records.columns:
        if col == LINE_NO:
            continue
        target = fm.canonical(col, wanted)
        if target is not None:
            sources[target].append(col)
    columns: dict[str, pa.Array] = {}
    for name in wanted:
        ordered = sorted(sources[name], key=lambda c, n=name: _key(c) != n)
        merged: pa.Array | None = None
        for col in ordered:
            values = _clean_arrow(records[col])
            if is_number_type(values.type) and (name not in _NUMERIC_FIELDS or len(ordered) > 1):
                values = _as_text(values)  # a text field, or one coalesced with text
            merged = values if merged is None else pc.coalesce(merged, values)
        columns[name] = merged if merged is not None else pa.nulls(len(records), pa.string())
    return columns, sources


def _personal_columns(records: pd.DataFrame, user_id_sources: list[str]) -> set[str]:
    return set(user_id_sources) | {
        c for c in records.columns if c != LINE_NO and PERSONAL_FIELD_PATTERN.search(str(c))
    }


def _missing(value: Any) -> bool:
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and value != value)
    )


def _rejected(
    records: pd.DataFrame,
    checks: _Checks,
    personal: set[str],
    pseudonymiser: Pseudonymiser | None,
) -> pd.DataFrame:
    """Rejected rows with their original record as compact JSON, personal fields
    pseudonymised (or dropped when no pseudonymiser is available)."""
    rows = np.flatnonzero(~checks.ok)
    subset = records.iloc[rows]
    if LINE_NO in records.columns:
        line_no = subset[LINE_NO].to_numpy(dtype=np.int64)
    else:
        line_no = rows.astype(np.int64) + 1
    names: list[str] = []
    columns: list[np.ndarray] = []
    for col in records.columns:
        if col == LINE_NO or (col in personal and pseudonymiser is None):
            continue
        values = subset[col]
        if _is_number_column(values):  # the payload holds the line's text, as it always has
            values = pd.Series(pd.arrays.ArrowExtensionArray(_as_text(pa.array(values))))
        if col in personal and pseudonymiser is not None:
            cleaned = pd.Series(_to_object(_clean_arrow(values)), dtype=object)
            values = pseudonymiser.series(cleaned)
        names.append(str(col))
        columns.append(values.to_numpy(dtype=object))
    # Nulls are left out: JSONL records only get them from other lines' keys.
    payloads = [
        json.dumps(
            {k: v for k, v in zip(names, row, strict=True) if not _missing(v)},
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        for row in zip(*columns, strict=True)
    ]
    if not columns:
        payloads = ["{}"] * len(rows)
    # json.dumps escapes NUL itself; a lone surrogate (only in hand-built frames: the readers
    # quarantine those lines) is escaped here, so every payload and reason can be stored.
    payloads = [storable_text(p)[:MAX_PAYLOAD_CHARS] for p in payloads]
    reasons = [storable_text(str(r)) for r in checks.reason[rows]]
    return pd.DataFrame(
        {
            "line_no": pd.Series(line_no, dtype="int64"),
            "payload": pd.Series(payloads, dtype=object),
            "reason": pd.Series(reasons, dtype=object),
        },
        columns=REJECTED_COLUMNS,
    )
