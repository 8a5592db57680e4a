"""Reading files from the landing folder: ``<landing_dir>/<source>/dt=YYYY-MM-DD/<files>``.

Every value comes back as ``str`` (or ``None``) so that type checks happen in one place, the
event contract, and a producer's ``"007"`` is never silently turned into ``7``. Each file is
parsed with pyarrow first (fast) and, only when that fails, line by line so a bad line costs
one quarantined row instead of the whole file.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import hashlib
import io
import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

# The 1-based line (row, message) number of each record: the only column the readers add to
# the producer's. Its name holds a NUL, which no producer field name can after the readers
# (they keep a NUL in a name as the text \u0000), so a producer field of any name, even
# "_line_no", is kept as a field like any other.
LINE_NO = "\x00line_no"
MAX_PAYLOAD_CHARS = 10_000
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet",)
IGNORED_PREFIXES = ("_", ".")
IGNORED_SUFFIXES = (".tmp", ".part")
# Floats at or beyond 2**53 may be integers pyarrow rounded; the slow path keeps them exact.
_EXACT_FLOAT_LIMIT = float(2**53)
_BLANK_OR_INDENTED_LINE = re.compile(rb"\n[\n \t\r\x0b\x0c]")
_WHITESPACE_BYTES = np.array([9, 10, 11, 12, 13, 32], dtype=np.uint8)
# What no warehouse text can hold: NUL (PostgreSQL text) and lone surrogates (not UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# A JSON escape of a surrogate (D800-DFFF): lines without one cannot decode to a lone one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_MAX_REASON_VALUE_CHARS = 100
_FAST_JSON_TYPES = (
    pa.types.is_null,
    pa.types.is_boolean,
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_string,
)


class LandingFileError(Exception):
    """A landing file that cannot be read at all; it is never skipped silently."""

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = str(path)
        self.message = message
        super().__init__(
            f"{printable_path(path)}: {storable_text(message)}. Fix the file or move it out of "
            "the landing folder, then re-run the partition."
        )


def storable_text(text: str) -> str:
    """``text`` with what no warehouse text column can hold escaped JSON-style: NUL (refused by
    PostgreSQL) as ``\\u0000`` and lone surrogates (no UTF-8 encoding) as ``\\udXXX``, so a
    JSON payload keeps its meaning; every other character is kept as it is."""
    if "\x00" not in text and (text.isascii() or not _UNSTORABLE.search(text)):
        return text
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def printable_path(path: Path | str) -> str:
    """A path as text that can be shown and stored: bytes of a name that is not UTF-8 (which
    Python holds as surrogate escapes) become ``\\xNN``."""
    text = str(path)
    try:
        return os.fsencode(text).decode("utf-8", errors="backslashreplace")
    except UnicodeError:
        return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class ParsedFile:
    path: str
    sha256: str
    fmt: str  # "jsonl" | "csv" | "parquet"
    records: pd.DataFrame  # the producer's fields (str/None values) plus LINE_NO (int64)
    bad_lines: pd.DataFrame  # line_no, payload, reason

    @property
    def rows_read(self) -> int:
        return len(self.records) + len(self.bad_lines)


def partition_dir(landing_dir: Path, source: str, dt: datetime.date) -> Path:
    return Path(landing_dir) / source / f"dt={dt.isoformat()}"


def list_landing_files(landing_dir: Path, source: str, dt: datetime.date) -> list[Path]:
    """Files of one partition, sorted by name. Unknown extensions are listed on purpose so
    that reading them fails loudly instead of data being dropped."""
    folder = partition_dir(landing_dir, source, dt)
    if not folder.is_dir():
        return []
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file()
            and not p.name.startswith(IGNORED_PREFIXES)
            and not p.name.lower().endswith(IGNORED_SUFFIXES)
        ),
        key=lambda p: p.name,
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def detect_format(path: Path) -> tuple[str, bool]:
    """``(fmt, gzipped)`` from the file name; raises LandingFileError if unsupported."""
    name = Path(path).name.lower()
    gzipped = name.endswith(".gz")
    base = name.removesuffix(".gz")
    if base.endswith(JSONL_SUFFIXES):
        return "jsonl", gzipped
    if base.endswith(CSV_SUFFIXES):
        return "csv", gzipped
    if base.endswith(PARQUET_SUFFIXES) and not gzipped:
        return "parquet", False
    raise LandingFileError(
        path,
        "unsupported file type; expected .jsonl/.ndjson/.json, .csv (optionally .gz) or .parquet",
    )


def read_landing_file(path: Path, *, typed_numbers: bool = False) -> ParsedFile:
    """Read a landing file into records of text (see the module docstring).

    ``typed_numbers``: a Parquet or JSONL column the file already holds as integers or floats
    stays numeric (Arrow int64/float64) instead of being written out as text for the contract
    to parse back: the contract reads either form the same (``contract.normalise_*``), and a
    day of millions of events spent seconds on the round trip. Callers that pass records on
    as text (imports, messages) keep the default.
    """
    path = Path(path)
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        # The path is stored with every row of the file (source_file) and in ingested_files:
        # it must be text. Failing beats guessing an encoding for the producer's bytes.
        raise LandingFileError(
            path,
            "the file name is not UTF-8 text (the bytes that are not are shown as \\xNN); "
            "rename the file (or its folder) to a UTF-8 name",
        ) from None
    fmt, gzipped = detect_format(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LandingFileError(path, f"cannot read file ({exc})") from exc
    sha256 = hashlib.sha256(raw).hexdigest()
    if fmt == "parquet":
        records, bad = _read_parquet(path, raw, typed_numbers), _empty_bad_lines()
    else:
        data = _gunzip(path, raw) if gzipped else raw
        if fmt == "jsonl":
            records, bad = _read_jsonl(path, data, typed_numbers)
        else:
            records, bad = _read_csv(path, data)
    return ParsedFile(path=str(path), sha256=sha256, fmt=fmt, records=records, bad_lines=bad)


# ----- shared helpers ----------------------------------------------------------------------


def _gunzip(path: Path, raw: bytes) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise LandingFileError(path, f"gzip data is corrupt or truncated ({exc})") from exc


def _empty_bad_lines() -> pd.DataFrame:
    return _bad_frame([])


def _bad_frame(rows: list[tuple[int, str, str]]) -> pd.DataFrame:
    """Bad lines from (line_no, payload, reason) rows; payload and reason storable text."""
    return pd.DataFrame(
        {
            "line_no": pd.Series([r[0] for r in rows], dtype="int64"),
            "payload": pd.Series([_truncate(storable_text(r[1])) for r in rows], dtype=object),
            "reason": pd.Series([storable_text(r[2]) for r in rows], dtype=object),
        }
    )


def _records_frame(columns: dict[str, Any], line_nos: Any) -> pd.DataFrame:
    # Arrow-backed string columns (missing = null): the contract's checks run in Arrow compute,
    # so values never become millions of Python str objects on the way.
    data: dict[str, pd.Series] = {}
    for name, values in columns.items():
        key = field_name(name)
        if key in data:
            raise ValueError(f"duplicate column names: {key!r} (a NUL in a name is \\u0000)")
        data[key] = (
            pd.Series(pd.arrays.ArrowExtensionArray(values))
            if isinstance(values, pa.Array) and is_number_type(values.type)
            else string_series(values)
        )
    data[LINE_NO] = pd.Series(np.asarray(line_nos, dtype=np.int64), dtype="int64")
    return pd.DataFrame(data)


def field_name(name: str) -> str:
    """A producer's field name as the readers keep it: NUL (which only the readers' own
    columns have) and lone surrogates escaped JSON-style, the rest verbatim."""
    return storable_text(name)


def string_series(values: Any) -> pd.Series:
    """A pandas Series of Arrow strings from an Arrow array or a sequence of str/None."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        arr = values if values.type == pa.string() else pc.cast(values, pa.string())
    else:
        arr = pa.array([None if v is None or v is pd.NA else v for v in values], type=pa.string())
    return pd.Series(pd.arrays.ArrowExtensionArray(arr))


def scalar_to_str(value: Any) -> str | None:
    """The single stringification rule shared by every reader, so paths cannot disagree."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # pyarrow widens 3 to 3.0 when a column mixes ints and floats; print both as "3".
        if value.is_integer() and abs(value) < _EXACT_FLOAT_LIMIT:
            return str(int(value))
        return repr(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def arrow_to_text(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """An arrow column as Arrow strings, following ``scalar_to_str``."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    typ = column.type
    if pa.types.is_dictionary(typ):
        return arrow_to_text(pc.cast(column, typ.value_type))
    if pa.types.is_null(typ):
        return pa.nulls(len(column), pa.string())
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        # pyarrow's JSON and CSV readers do not check UTF-8; this raises on a bad byte, which
        # sends the file to the line-by-line reader that quarantines just that line.
        column.validate(full=True)
        return pc.cast(column, pa.string())
    if pa.types.is_integer(typ):
        return pc.cast(column, pa.string())
    if pa.types.is_boolean(typ):
        return pc.if_else(column, pa.scalar("true"), pa.scalar("false"))
    if (
        pa.types.is_timestamp(typ)
        or pa.types.is_date(typ)
        or pa.types.is_time(typ)
        or pa.types.is_decimal(typ)
    ):
        return pc.cast(column, pa.string())
    if pa.types.is_floating(typ):
        # Arrow's shortest round-trip formatting equals Python's repr (hence scalar_to_str) for
        # magnitudes in [1e-4, 1e9) and for +0; only other values take the Python path, each
        # distinct value once.
        out = pc.cast(column, pa.string())
        values = column.to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            magnitude = np.abs(values)
            usual = ((magnitude >= 1e-4) & (magnitude < 1e9)) | (
                (values == 0) & ~np.signbit(values)
            )
        odd = ~usual & pc.is_valid(column).to_numpy(zero_copy_only=False)
        if odd.any():
            codes, uniques = pd.factorize(values[odd], use_na_sentinel=False)
            fixed = np.array([scalar_to_str(float(u)) for u in uniques], dtype=object)[codes]
            out = pc.replace_with_mask(out, pa.array(odd), pa.array(fixed, type=pa.string()))
        return out
    return pa.array([scalar_to_str(v) for v in column.to_pylist()], type=pa.string())


def is_number_type(typ: pa.DataType) -> bool:
    """The Arrow types a record column may keep instead of text: integers and floats (not
    booleans, decimals or times, whose text the contract reads)."""
    return pa.types.is_integer(typ) or pa.types.is_floating(typ)


def _table_to_records(table: pa.Table, line_nos: Any, typed_numbers: bool = False) -> pd.DataFrame:
    names = table.column_names
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate column names: {names}")
    columns: dict[str, pa.Array] = {}
    for name in names:
        column = table.column(name).combine_chunks()
        if typed_numbers and _kept_numeric(column.type):
            columns[name] = column if column.type.bit_width == 64 else pc.cast(column, pa.int64())
        else:
            columns[name] = arrow_to_text(column)
    return _records_frame(columns, line_nos)


def _kept_numeric(typ: pa.DataType) -> bool:
    # Not float32 or float16: their text is their shortest decimal ("0.1"), which reads back as
    # another double than the widened value (0.10000000149011612); they take the text path.
    return pa.types.is_integer(typ) or pa.types.is_float64(typ)


def _truncate(text: str) -> str:
    return text[:MAX_PAYLOAD_CHARS]


# ----- JSONL -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lines:
    """Byte spans and 1-based numbers of the non-blank lines of a text file."""

    starts: np.ndarray
    ends: np.ndarray
    numbers: np.ndarray

    def chunk(self, data: bytes, lo: int, hi: int) -> bytes:
        return data[self.starts[lo] : self.ends[hi - 1]]


def _simple_line_numbers(data: bytes) -> np.ndarray | None:
    """1..n when no line is blank or starts with whitespace (the usual file), found with a few
    byte searches instead of a per-byte scan; None when the exact scan is needed."""
    if not data or data[:1] in b" \t\r\n\x0b\x0c":
        return None
    if _BLANK_OR_INDENTED_LINE.search(data):
        return None
    n = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    return np.arange(1, n + 1, dtype=np.int64)


def _read_jsonl(
    path: Path, data: bytes, typed_numbers: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    numbers = _simple_line_numbers(data)
    lines: _Lines | None = None
    if numbers is None:
        lines = _non_blank_lines(data)
        numbers = lines.numbers
    if len(numbers) == 0:
        return _records_frame({}, []), _empty_bad_lines()
    order, string_keys = _sample_keys(data)
    try:
        return _jsonl_fast(data, numbers, order, string_keys, typed_numbers), _empty_bad_lines()
    except _NotExact:
        return _jsonl_slow(data)
    except Exception:  # pyarrow refused the file: a bad line, or types it cannot unify
        pass
    if lines is None:
        lines = _non_blank_lines(data)
    # Bad lines are usually few: find them with pyarrow on ever smaller chunks, parse only
    # those with json.loads, and keep the fast path for the rest. Anything surprising falls
    # back to the exact line-by-line reader.
    bad_idx = _locate_bad_lines(data, lines, string_keys)
    if bad_idx is None:
        return _jsonl_slow(data)
    parsed = [_parse_line(int(lines.numbers[i]), lines.chunk(data, i, i + 1)) for i in bad_idx]
    bad_rows = [row for row in parsed if isinstance(row, tuple)]
    if len(bad_rows) != len(parsed):
        return _jsonl_slow(data)  # json.loads accepts what pyarrow refused (e.g. duplicate keys)
    bad = _bad_frame(bad_rows)
    keep = np.ones(len(lines.numbers), dtype=bool)
    keep[bad_idx] = False
    bounds = np.concatenate(([-1], bad_idx, [len(keep)]))
    good = b"\n".join(
        lines.chunk(data, lo + 1, hi)
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        if hi > lo + 1
    )
    if not keep.any():
        return _records_frame({}, []), bad
    try:
        return _jsonl_fast(good, lines.numbers[keep], order, string_keys, typed_numbers), bad
    except Exception:
        return _jsonl_slow(data)


def _non_blank_lines(data: bytes) -> _Lines:
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buf)]))
    blank = ends == starts
    # Only lines starting with whitespace can be blank-but-not-empty; they are rare, so a
    # Python check of just those stays cheap.
    first = buf[np.minimum(starts, len(buf) - 1)] if len(buf) else np.zeros(1, np.uint8)
    for i in np.flatnonzero(~blank & np.isin(first, _WHITESPACE_BYTES)):
        blank[i] = not data[starts[i] : ends[i]].strip()
    solid = np.flatnonzero(~blank)
    return _Lines(starts[solid], ends[solid], solid + 1)


def _sample_keys(data: bytes, max_lines: int = 1000) -> tuple[list[str], list[str]]:
    """Keys of the first lines in first-appearance order, and those holding strings."""
    keys: dict[str, None] = {}
    string_keys: dict[str, None] = {}
    for raw in data[: 1 << 20].split(b"\n")[:max_lines]:
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            if _SURROGATE_ESCAPE.search(raw) and _invalid_text_field(obj) is not None:
                continue  # a line to quarantine; its names cannot even name an Arrow field
            for key, value in obj.items():
                keys.setdefault(key)
                if isinstance(value, str):
                    string_keys.setdefault(key)
    return list(keys), list(string_keys)


def _read_json_table(data: bytes, as_text: list[str]) -> pa.Table:
    options = pa_json.ParseOptions(
        explicit_schema=pa.schema([(name, pa.string()) for name in as_text]),
        unexpected_field_behavior="infer",
    )
    return pa_json.read_json(
        io.BytesIO(data), read_options=_JSON_READ_OPTIONS, parse_options=options
    )


# pyarrow parses blocks in parallel; its default 1 MiB blocks cost a fifth more time than 4 MiB
# ones on a 2M-line file (bench/ingest, decision 89). A line longer than a block fails the
# fast path, as before, and is read by the exact path.
_JSON_READ_OPTIONS = pa_json.ReadOptions(block_size=4 << 20)


class _NotExact(Exception):
    """pyarrow parsed the data but its result could differ from json.loads'."""


def _jsonl_fast(
    data: bytes,
    line_nos: np.ndarray,
    sample_order: list[str],
    string_keys: list[str],
    typed_numbers: bool = False,
) -> pd.DataFrame:
    """Records via pyarrow. Raises pyarrow's error, or _NotExact."""
    # pyarrow turns ISO-looking strings into timestamps; declaring the string fields seen in
    # a sample as strings avoids that (and a second parse) in the common case.
    table = _read_json_table(data, string_keys)
    late = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    if late:
        table = _read_json_table(data, string_keys + late)
    # Explicit fields come first in pyarrow's result; restore first-appearance order (the
    # sample is a prefix of the data, so its keys precede every later-seen key).
    in_sample = set(sample_order)
    order = [n for n in sample_order if n in table.column_names]
    order += [n for n in table.column_names if n not in in_sample]
    if len(order) != table.num_columns:
        raise _NotExact("duplicate column names")
    table = table.select(order)
    if table.num_rows != len(line_nos):
        raise _NotExact("a multi-line object or several objects on one line")
    if any("\x00" in name for name in order):
        raise _NotExact("a NUL in a field name")  # escaped per object, as json.loads reads it
    for fld in table.schema:
        if not any(check(fld.type) for check in _FAST_JSON_TYPES):
            raise _NotExact("nested values")  # struct null-filling would differ
        if pa.types.is_floating(fld.type):
            values = table.column(fld.name).to_numpy(zero_copy_only=False)
            if np.any(np.isfinite(values) & (np.abs(values) >= _EXACT_FLOAT_LIMIT)):
                raise _NotExact("integers beyond float precision")
    return _table_to_records(table, line_nos, typed_numbers)


def _locate_bad_lines(data: bytes, lines: _Lines, string_keys: list[str]) -> np.ndarray | None:
    """Indexes of the lines pyarrow refuses, by splitting failing chunks 16 ways; None when
    the failure is not line-local (a type conflict across lines) or costs too much."""
    budget = 4 * len(data)
    spent = 0
    bad: list[int] = []
    pending = [(0, len(lines.numbers))]  # known to fail
    while pending:
        lo, hi = pending.pop()
        if hi - lo == 1:
            bad.append(lo)
            continue
        edges = np.unique(np.linspace(lo, hi, 17).astype(int))
        failed = []
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            chunk = lines.chunk(data, a, b)
            spent += len(chunk)
            try:
                _read_json_table(chunk, string_keys)
            except Exception:
                failed.append((int(a), int(b)))
        if not failed or spent > budget:
            return None
        pending.extend(failed)
    return np.array(sorted(bad), dtype=np.int64)


def _parse_line(line_no: int, raw: bytes) -> dict[str, Any] | tuple[int, str, str]:
    """The JSON object on a line, or a (line_no, payload, reason) bad-line row."""
    raw = raw.rstrip(b"\r")
    if line_no == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        payload = raw.decode("utf-8", errors="replace")
        return line_no, _truncate(payload), f"invalid_utf8: {exc}"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return line_no, _truncate(text), f"malformed_json: {exc}"
    except RecursionError:
        return line_no, _truncate(text), "malformed_json: nested too deeply"
    if not isinstance(obj, dict):
        return line_no, _truncate(text), "not_an_object"
    if _SURROGATE_ESCAPE.search(raw):
        field = _invalid_text_field(obj)
        if field is not None:
            return line_no, _truncate(text), f"invalid_text:{_reason_value(field)}"
    if "\\u0000" in text and any("\x00" in key for key in obj):
        # Escaped like every field name; a name colliding with it then is a repeated key,
        # and the later one wins as json.loads does.
        obj = {field_name(key): value for key, value in obj.items()}
    return obj


def _invalid_text_field(obj: dict[str, Any]) -> str | None:
    """The first field whose name or value holds a lone surrogate: JSON can escape one
    (``"\\ud800"``), but it is no Unicode character and no UTF-8 text can hold it."""
    for key, value in obj.items():
        if not _is_text(key):
            return key
        if isinstance(value, str):
            if not _is_text(value):
                return key
        elif isinstance(value, dict | list) and not _is_text(json.dumps(value, ensure_ascii=False)):
            return key
    return None


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _reason_value(value: str) -> str:
    """A producer's value quoted in a reason: storable and short."""
    return storable_text(value[:_MAX_REASON_VALUE_CHARS])


def _jsonl_slow(data: bytes) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The exact reference reader: json.loads line by line."""
    objects: list[dict[str, Any]] = []
    good_nos: list[int] = []
    bad_rows: list[tuple[int, str, str]] = []
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        parsed = _parse_line(line_no, raw)
        if isinstance(parsed, dict):
            objects.append(parsed)
            good_nos.append(line_no)
        else:
            bad_rows.append(parsed)

    names: dict[str, None] = {}  # ordered set: first appearance, as pyarrow orders columns
    for obj in objects:
        for key in obj:
            names.setdefault(key)
    columns = {
        k: [v if type(v) is str else scalar_to_str(v) for v in (o.get(k) for o in objects)]
        for k in names
    }
    return _records_frame(columns, good_nos), _bad_frame(bad_rows)


# ----- CSV ---------------------------------------------------------------------------------


def _read_csv(path: Path, data: bytes) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not data.strip():
        return _records_frame({}, []), _empty_bad_lines()
    fast = _csv_fast(data)
    if fast is not None:
        return fast
    try:
        return _csv_slow(data)
    except (UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise LandingFileError(path, f"cannot parse CSV ({exc})") from exc


def _csv_header(data: bytes) -> list[str]:
    first = data.lstrip(b"\r\n").split(b"\n", 1)[0].decode("utf-8-sig")
    return next(csv.reader([first]), [])


def _wrong_field_count(expected: int, got: int) -> str:
    return f"wrong_field_count: expected {expected}, got {got}"


def _csv_fast(data: bytes) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """pyarrow's reader with every column typed string, or None to use the exact reader."""
    try:
        header = _csv_header(data)
        if len(set(header)) != len(header):
            return None  # let the slow path produce the precise error
        convert = pa_csv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()),
            strings_can_be_null=True,
            null_values=[""],
        )
        invalid: list[tuple[int | None, str, int]] = []

        def on_invalid(row: Any) -> str:
            invalid.append((row.number, row.text, row.actual_columns))
            return "skip"

        def read(threads: bool) -> pa.Table:
            invalid.clear()
            return pa_csv.read_csv(
                io.BytesIO(data),
                read_options=pa_csv.ReadOptions(use_threads=threads),
                parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid),
                convert_options=convert,
            )

        table = read(threads=True)
        if table.column_names != header:
            return None  # header misread (e.g. a quoted newline): pyarrow would infer types
        if not invalid:
            return _table_to_records(table, np.arange(1, table.num_rows + 1)), _empty_bad_lines()
        # Row numbers of skipped rows are only reported when reading single-threaded.
        table = read(threads=False)
        return _csv_fast_with_bad_rows(data, table, invalid, len(header))
    except Exception:  # any pyarrow complaint just means "use the slow path"
        return None


def _csv_fast_with_bad_rows(
    data: bytes, table: pa.Table, invalid: list[tuple[int | None, str, int]], n_cols: int
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Place pyarrow's skipped rows; None unless every placement is verified."""
    n_rows = table.num_rows + len(invalid)
    lines = _non_blank_lines(data)
    # Only without multi-line rows is row k exactly non-blank line k (line 0 is the header),
    # which lets each skipped row's number be checked against the file's own text.
    if len(lines.numbers) - 1 != n_rows:
        return None
    bad_rows: list[tuple[int, str, str]] = []
    for number, text, got in invalid:
        # pyarrow numbers rows from the header = 1, skipping blank lines
        if number is None or not 2 <= number <= n_rows + 1:
            return None
        line = lines.chunk(data, number - 1, number).rstrip(b"\r")
        if line.decode("utf-8", errors="replace") != text.rstrip("\r"):
            return None
        bad_rows.append((number - 1, _truncate(text.rstrip("\r")), _wrong_field_count(n_cols, got)))
    bad_nos = np.array([row[0] for row in bad_rows], dtype=np.int64)
    good_nos = np.setdiff1d(np.arange(1, n_rows + 1), bad_nos)
    return _table_to_records(table, good_nos), _bad_frame(bad_rows)


class _LineTap:
    """Feeds csv.reader line by line and remembers the raw text of the current row."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.taken: list[str] = []

    def __iter__(self) -> _LineTap:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.taken.append(line)
        return line


def _csv_slow(data: bytes) -> tuple[pd.DataFrame, pd.DataFrame]:
    tap = _LineTap(iter(io.StringIO(data.decode("utf-8-sig"), newline="")))
    reader = csv.reader(tap)
    header = next((row for row in reader if row), [])  # blank lines before it are skipped
    if len(set(header)) != len(header):
        raise ValueError(f"duplicate column names in header: {header}")
    tap.taken.clear()
    rows: list[list[str]] = []
    good_nos: list[int] = []
    bad_rows: list[tuple[int, str, str]] = []
    row_no = 0
    for row in reader:
        raw = "".join(tap.taken).rstrip("\r\n")
        tap.taken.clear()
        if not row:  # blank line: skipped and not counted, like pyarrow does
            continue
        row_no += 1
        if len(row) != len(header):
            bad_rows.append((row_no, _truncate(raw), _wrong_field_count(len(header), len(row))))
            continue
        rows.append(row)
        good_nos.append(row_no)
    columns = {
        name: [row[i] if row[i] != "" else None for row in rows] for i, name in enumerate(header)
    }
    return _records_frame(columns, good_nos), _bad_frame(bad_rows)


# ----- Parquet -----------------------------------------------------------------------------


def _read_parquet(path: Path, raw: bytes, typed_numbers: bool = False) -> pd.DataFrame:
    try:
        table = pq.read_table(pa.BufferReader(raw))
    except Exception as exc:  # pyarrow raises several exception types for corrupt files
        raise LandingFileError(path, f"cannot read Parquet ({exc})") from exc
    try:
        return _table_to_records(table, np.arange(1, table.num_rows + 1), typed_numbers)
    except ValueError as exc:
        raise LandingFileError(path, str(exc)) from exc


# ----- messages (Kafka) ----------------------------------------------------------------------


def parse_json_messages(values: list[bytes | None]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """JSON-object messages as (records, bad lines), like a JSONL file whose line numbers are
    the 1-based positions in ``values``. Single-line messages go through the fast JSONL reader
    in one piece; empty and multi-line ones are parsed one by one."""
    simple: list[int] = []
    special: list[int] = []
    for i, value in enumerate(values):
        if value and b"\n" not in value and b"\r" not in value and value.strip():
            simple.append(i)
        else:
            special.append(i)
    if simple:
        blob = b"\n".join(values[i] for i in simple)  # type: ignore[misc]
        records, bad = _read_jsonl(Path("<messages>"), blob)
        numbers = np.asarray(simple, dtype=np.int64) + 1  # blob line k is message simple[k-1]
        records[LINE_NO] = numbers[records[LINE_NO].to_numpy(dtype=np.int64) - 1]
        if not bad.empty:
            bad["line_no"] = numbers[bad["line_no"].to_numpy(dtype=np.int64) - 1]
    else:
        records, bad = _records_frame({}, []), _empty_bad_lines()
    if not special:
        return records, bad
    extra_rows: list[dict[str, Any]] = []
    extra_nos: list[int] = []
    bad_rows: list[tuple[int, str, str]] = []
    for i in special:
        value = values[i]
        if value is None or not value.strip():
            bad_rows.append((i + 1, "", "empty_message"))
            continue
        parsed = _parse_line(i + 1, value.strip())
        if isinstance(parsed, dict):
            extra_rows.append(parsed)
            extra_nos.append(i + 1)
        else:
            bad_rows.append(parsed)
    if extra_rows:
        names = dict.fromkeys(k for obj in extra_rows for k in obj)
        extra = _records_frame(
            {k: [scalar_to_str(o.get(k)) for o in extra_rows] for k in names}, extra_nos
        )
        records = pd.concat([records, extra], ignore_index=True)
        for col in records.columns:
            if col != LINE_NO:
                column = records[col].astype(object)
                records[col] = string_series(column.where(column.notna(), None).tolist())
    if bad_rows:
        bad = pd.concat([bad, _bad_frame(bad_rows)], ignore_index=True)
    return records, bad
