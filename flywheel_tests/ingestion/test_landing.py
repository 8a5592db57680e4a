"""Unit tests for reading landing files (flywheel_assets.ingestion.landing)."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel_assets.ingestion import landing
from flywheel_assets.ingestion.landing import (
    LINE_NO,
    MAX_PAYLOAD_CHARS,
    LandingFileError,
    file_sha256,
    list_landing_files,
    partition_dir,
    read_landing_file,
)

DAY = dt.date(2024, 3, 5)

ROWS = [
    {"event_id": "e1", "user_id": "007", "position": 3, "price": 2.5, "ok": True, "note": None},
    {"event_id": "e2", "user_id": "u2", "position": 0, "price": 10, "ok": False},
    {"event_id": "e3", "user_id": "u3", "position": 12, "price": 0.1, "note": 'héllo, "q"'},
]
# What every reader must yield for ROWS: strings only, None for absent or null.
EXPECTED = pd.DataFrame(
    {
        "event_id": ["e1", "e2", "e3"],
        "user_id": ["007", "u2", "u3"],
        "position": ["3", "0", "12"],
        "price": ["2.5", "10", "0.1"],
        "ok": ["true", "false", None],
        "note": [None, None, 'héllo, "q"'],
    },
    dtype=object,
)


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _csv_text() -> str:
    return (
        "event_id,user_id,position,price,ok,note\n"
        "e1,007,3,2.5,true,\n"
        "e2,u2,0,10,false,\n"
        'e3,u3,12,0.1,,"héllo, ""q"""\n'
    )


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def _data_columns(records: pd.DataFrame) -> pd.DataFrame:
    """The values as Python str/None (the readers hand them over as Arrow strings)."""
    data = records.drop(columns=LINE_NO)
    assert all(isinstance(t, pd.ArrowDtype) for t in data.dtypes)
    return data.astype(object).where(data.notna(), None)


def _texts(values: pd.Series) -> list[str | None]:
    return values.astype(object).where(values.notna(), None).tolist()


# ----- folder layout -------------------------------------------------------------------------


def test_partition_dir_and_listing_ignore_hidden_and_in_progress_files(tmp_path: Path) -> None:
    folder = partition_dir(tmp_path, "events", DAY)
    assert folder == tmp_path / "events" / "dt=2024-03-05"
    for name in ["b.jsonl", "a.csv", ".hidden.jsonl", "_SUCCESS", "c.jsonl.tmp", "d.csv.part"]:
        _write(folder / name, "x")
    (folder / "subdir").mkdir()
    assert [p.name for p in list_landing_files(tmp_path, "events", DAY)] == ["a.csv", "b.jsonl"]


def test_listing_a_missing_partition_is_empty(tmp_path: Path) -> None:
    assert list_landing_files(tmp_path, "events", DAY) == []


def test_sha256_matches_file_bytes(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl.gz", _jsonl(ROWS))
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == expected
    assert read_landing_file(path).sha256 == expected


# ----- every format ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("f.jsonl", "jsonl"),
        ("f.ndjson", "jsonl"),
        ("f.json", "jsonl"),
        ("f.jsonl.gz", "jsonl"),
        ("f.ndjson.gz", "jsonl"),
        ("f.csv", "csv"),
        ("f.csv.gz", "csv"),
    ],
)
def test_text_formats_yield_strings_only(tmp_path: Path, name: str, fmt: str) -> None:
    content = _csv_text() if fmt == "csv" else _jsonl(ROWS)
    parsed = read_landing_file(_write(tmp_path / name, content))
    assert parsed.fmt == fmt
    assert parsed.path == str(tmp_path / name)
    assert parsed.rows_read == 3 and parsed.bad_lines.empty
    assert parsed.records[LINE_NO].tolist() == ([1, 2, 3])
    assert parsed.records[LINE_NO].dtype == "int64"
    pd.testing.assert_frame_equal(_data_columns(parsed.records), EXPECTED)


def test_parquet_values_are_stringified_like_json(tmp_path: Path) -> None:
    table = pa.table(
        {
            "event_id": ["e1", "e2", "e3"],
            "user_id": ["007", "u2", "u3"],
            "position": pa.array([3, 0, 12], pa.int64()),
            "price": [2.5, 10.0, 0.1],
            "ok": [True, False, None],
            "note": [None, None, 'héllo, "q"'],
        }
    )
    path = tmp_path / "f.parquet"
    pq.write_table(table, path)
    parsed = read_landing_file(path)
    assert parsed.fmt == "parquet"
    assert parsed.records[LINE_NO].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(_data_columns(parsed.records), EXPECTED)


def test_parquet_timestamps_become_parseable_text(tmp_path: Path) -> None:
    stamps = pa.array([0, None], pa.timestamp("ms", tz="UTC"))
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"event_time": stamps, "day": pa.array([0, 1], pa.date32())}), path)
    records = read_landing_file(path).records
    assert _texts(records["event_time"]) == ["1970-01-01 00:00:00.000Z", None]
    assert records["day"].tolist() == ["1970-01-01", "1970-01-02"]


def test_empty_files_have_no_records(tmp_path: Path) -> None:
    for name in ["e.jsonl", "e.csv"]:
        parsed = read_landing_file(_write(tmp_path / name, "\n\n"))
        assert parsed.rows_read == 0
        assert list(parsed.records.columns) == [LINE_NO]


# ----- JSONL details -------------------------------------------------------------------------


def test_jsonl_keeps_values_as_text_without_coercion(tmp_path: Path) -> None:
    lines = [
        {"id": "a", "n": 3, "x": 1.5, "big": 9007199254740993, "nested": {"k": [1, "v"]}},
        {"id": "b", "n": -4, "x": 2, "flag": True, "when": "2024-01-01T00:00:00Z"},
        {"id": "c", "n": None, "x": 1e-7, "s": "  padded  "},
    ]
    records = read_landing_file(_write(tmp_path / "a.jsonl", _jsonl(lines))).records
    assert records.to_dict("records") == [
        {"id": "a", "n": "3", "x": "1.5", "big": "9007199254740993", "nested": '{"k":[1,"v"]}',
         "flag": None, "when": None, "s": None, LINE_NO: 1},
        {"id": "b", "n": "-4", "x": "2", "big": None, "nested": None, "flag": "true",
         "when": "2024-01-01T00:00:00Z", "s": None, LINE_NO: 2},
        {"id": "c", "n": None, "x": "1e-07", "big": None, "nested": None, "flag": None,
         "when": None, "s": "  padded  ", LINE_NO: 3},
    ]  # fmt: skip
    assert all(
        records[c].dtype == pd.ArrowDtype(pa.string()) for c in records.columns if c != LINE_NO
    )


def test_blank_lines_are_skipped_but_count_for_line_numbers(tmp_path: Path) -> None:
    content = '\n{"a": "1"}\n   \n\r\n{"a": "2"}\n\n'
    parsed = read_landing_file(_write(tmp_path / "a.jsonl", content))
    assert parsed.records[LINE_NO].tolist() == [2, 5]
    assert parsed.records["a"].tolist() == ["1", "2"]
    assert parsed.rows_read == 2


def test_malformed_lines_become_bad_lines_and_good_lines_survive(tmp_path: Path) -> None:
    content = (
        '{"a": "1"}\n'
        "{broken\n"
        "\n"
        "[1, 2]\n"
        '"just a string"\n'
        '{"a": "2"}\n' + "x" * (MAX_PAYLOAD_CHARS + 50) + "\n"
        '{"a": "3"}\n'
    )
    parsed = read_landing_file(_write(tmp_path / "a.jsonl", content))
    assert parsed.records["a"].tolist() == ["1", "2", "3"]
    assert parsed.records[LINE_NO].tolist() == [1, 6, 8]
    bad = parsed.bad_lines
    assert list(bad.columns) == ["line_no", "payload", "reason"]
    assert bad["line_no"].tolist() == [2, 4, 5, 7]
    assert bad["reason"].str.startswith("malformed_json: ").tolist() == [True, False, False, True]
    assert bad["reason"].tolist()[1:3] == ["not_an_object", "not_an_object"]
    assert bad["payload"].tolist()[:3] == ["{broken", "[1, 2]", '"just a string"']
    assert len(bad["payload"].iloc[3]) == MAX_PAYLOAD_CHARS
    assert parsed.rows_read == 7


def test_invalid_utf8_line_is_a_bad_line(tmp_path: Path) -> None:
    content = b'{"a": "1"}\n{"a": "\xff"}\n{"a": "2"}\n'
    parsed = read_landing_file(_write(tmp_path / "a.jsonl", content))
    assert parsed.records["a"].tolist() == ["1", "2"]
    assert parsed.bad_lines["line_no"].tolist() == [2]
    assert parsed.bad_lines["reason"].iloc[0].startswith("invalid_utf8")


def _tricky_lines(n: int) -> list[str]:
    """Good lines that exercise every conversion the fast path does."""
    lines = []
    for i in range(n):
        row: dict = {"event_id": f"e{i}", "user_id": "00" + str(i % 7), "n": i}
        row["x"] = i / 4 if i % 3 else i  # ints and floats mixed in one column
        if i % 5 == 0:
            row["flag"] = i % 2 == 0
        if i % 4 == 0:
            row["event_time"] = f"2024-01-01T00:00:{i % 60:02d}Z"  # pyarrow infers timestamps
        if i >= 1500:
            row["late_time"] = "2024-01-02 10:00:00"  # first seen after the key sample
        row["label"] = None if i % 6 == 0 else f"ü{i}"
        lines.append(json.dumps(row))
    return lines


def test_fast_and_slow_jsonl_paths_give_identical_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = ("\n".join(_tricky_lines(2000)) + "\n").encode()
    slow_records, slow_bad = landing._jsonl_slow(data)

    def no_slow_path(data: bytes) -> None:
        raise AssertionError("the fast path should have handled this file")

    monkeypatch.setattr(landing, "_jsonl_slow", no_slow_path)
    fast = read_landing_file(_write(tmp_path / "a.jsonl", data))
    pd.testing.assert_frame_equal(fast.records, slow_records)
    assert slow_bad.empty and fast.bad_lines.empty
    assert fast.records["late_time"].iloc[1500] == "2024-01-02 10:00:00"
    assert fast.records["x"].iloc[:4].tolist() == ["0", "0.25", "0.5", "3"]


def test_jsonl_with_bad_lines_matches_the_line_by_line_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _tricky_lines(3000)
    lines[17] = '{"event_id": "broken'
    lines[2500] = "[]"
    lines.insert(1000, "")
    data = ("\n".join(lines) + "\n").encode()
    slow_records, slow_bad = landing._jsonl_slow(data)

    def no_slow_path(data: bytes) -> None:
        raise AssertionError("a few bad lines should not force the line-by-line reader")

    # Bad lines are located with pyarrow; the rest of the file stays on the fast path.
    monkeypatch.setattr(landing, "_jsonl_slow", no_slow_path)
    parsed = read_landing_file(_write(tmp_path / "a.jsonl", data))
    pd.testing.assert_frame_equal(parsed.records, slow_records)
    pd.testing.assert_frame_equal(parsed.bad_lines, slow_bad)
    assert parsed.bad_lines["line_no"].tolist() == [18, 2502]
    assert parsed.rows_read == 3000


def test_jsonl_with_types_pyarrow_cannot_unify_still_reads_every_line(tmp_path: Path) -> None:
    content = _jsonl([{"a": 1, "b": "x"}, {"a": "one", "b": {"k": 1}}, {"a": True, "b": [1]}])
    records = read_landing_file(_write(tmp_path / "a.jsonl", content)).records
    assert records["a"].tolist() == ["1", "one", "true"]
    assert records["b"].tolist() == ["x", '{"k":1}', "[1]"]


def test_multi_line_object_is_not_silently_merged(tmp_path: Path) -> None:
    content = '{"a": "1"}\n{"a":\n "2"}\n{"a": "3"}\n'
    parsed = read_landing_file(_write(tmp_path / "a.jsonl", content))
    assert parsed.records["a"].tolist() == ["1", "3"]
    assert parsed.records[LINE_NO].tolist() == [1, 4]
    assert parsed.bad_lines["line_no"].tolist() == [2, 3]


# ----- CSV details ---------------------------------------------------------------------------


def test_csv_keeps_text_and_maps_only_empty_cells_to_none(tmp_path: Path) -> None:
    content = "id,code,amount,blank\n1,007,1.50, \n2,,1e3,\n"
    records = read_landing_file(_write(tmp_path / "a.csv", content)).records
    assert _texts(records["code"]) == ["007", None]
    assert records["amount"].tolist() == ["1.50", "1e3"]
    assert _texts(records["blank"]) == [" ", None]


def test_csv_rows_with_wrong_field_count_become_bad_lines(tmp_path: Path) -> None:
    content = "a,b,c\n1,2,3\n4,5\n\n6,7,8\n9,10,11,12\n13,14,15\n"
    parsed = read_landing_file(_write(tmp_path / "a.csv", content))
    assert parsed.records["a"].tolist() == ["1", "6", "13"]
    assert parsed.records[LINE_NO].tolist() == [1, 3, 5]
    assert parsed.bad_lines.to_dict("records") == [
        {"line_no": 2, "payload": "4,5", "reason": "wrong_field_count: expected 3, got 2"},
        {"line_no": 4, "payload": "9,10,11,12", "reason": "wrong_field_count: expected 3, got 4"},
    ]
    assert parsed.rows_read == 5


def test_csv_short_row_after_a_quoted_newline_uses_the_exact_reader(tmp_path: Path) -> None:
    content = 'a,b\n"multi\nline",2\nshort\n3,4\n'
    parsed = read_landing_file(_write(tmp_path / "a.csv", content))
    assert parsed.records["a"].tolist() == ["multi\nline", "3"]
    assert parsed.records[LINE_NO].tolist() == [1, 3]
    assert parsed.bad_lines[["line_no", "payload"]].to_dict("records") == [
        {"line_no": 2, "payload": "short"}
    ]


def test_csv_fast_and_exact_readers_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = "".join(f'{i},"v, {i}",{"" if i % 3 else "x"}\r\n' for i in range(500))
    data = ("a,b,c\r\n" + rows + "1,2\r\n" + rows).encode()
    exact_records, exact_bad = landing._csv_slow(data)

    def no_exact_reader(data: bytes) -> None:
        raise AssertionError("pyarrow should have placed the short row itself")

    monkeypatch.setattr(landing, "_csv_slow", no_exact_reader)
    parsed = read_landing_file(_write(tmp_path / "a.csv", data))
    pd.testing.assert_frame_equal(parsed.records, exact_records)
    pd.testing.assert_frame_equal(parsed.bad_lines, exact_bad)
    assert parsed.bad_lines["line_no"].tolist() == [501]


# ----- unreadable files fail loudly ------------------------------------------------------------


def test_corrupt_gzip_raises(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage that is not deflate")
    with pytest.raises(LandingFileError, match="gzip") as info:
        read_landing_file(path)
    assert info.value.path == str(path)
    assert "move it out of the landing folder" in str(info.value)


def test_truncated_gzip_raises(tmp_path: Path) -> None:
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(_csv_text().encode() * 50)[:-30])
    with pytest.raises(LandingFileError, match="corrupt or truncated"):
        read_landing_file(path)


def test_corrupt_parquet_raises(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.parquet", b"PAR1 this is not really parquet PAR1")
    with pytest.raises(LandingFileError, match="Parquet"):
        read_landing_file(path)


def test_unsupported_extension_raises(tmp_path: Path) -> None:
    path = _write(tmp_path / "notes.txt", "hello")
    with pytest.raises(LandingFileError, match="unsupported file type"):
        read_landing_file(path)


def test_csv_with_duplicate_header_raises(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.csv", "a,a\n1,2\n")
    with pytest.raises(LandingFileError, match="duplicate column names"):
        read_landing_file(path)


# ----- text no warehouse can hold, names the readers use ------------------------------------


def test_a_lone_surrogate_escape_quarantines_its_line_and_the_rest_stays_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``"\\ud800"`` is valid JSON but no character: pyarrow refuses it and json.loads gives a
    str no UTF-8 can hold. Only that line is a bad line; a proper pair is just a character."""
    lines = _tricky_lines(3000)
    lines[5] = '{"event_id": "s1", "session_id": "a\\ud800\'; DROP TABLE events; --"}'
    lines[1200] = '{"event_id": "s2", "nested": {"k": ["\\udc00"]}}'
    lines[2000] = '{"event_id": "s3", "bad\\uDFFFname": "x"}'
    lines[2001] = '{"event_id": "pair", "emoji": "\\ud83d\\ude00", "text": "\\\\ud800"}'
    data = ("\n".join(lines) + "\n").encode()
    slow_records, slow_bad = landing._jsonl_slow(data)

    def no_slow_path(data: bytes) -> None:
        raise AssertionError("a few bad lines should not force the line-by-line reader")

    monkeypatch.setattr(landing, "_jsonl_slow", no_slow_path)
    parsed = read_landing_file(_write(tmp_path / "a.jsonl", data))
    pd.testing.assert_frame_equal(parsed.records, slow_records)
    pd.testing.assert_frame_equal(parsed.bad_lines, slow_bad)
    bad = parsed.bad_lines
    assert bad["line_no"].tolist() == [6, 1201, 2001]
    assert bad["reason"].tolist() == [
        "invalid_text:session_id",
        "invalid_text:nested",
        "invalid_text:bad\\udfffname",  # the name itself, escaped
    ]
    assert bad["payload"].iloc[0] == lines[5]  # the line as read (its escape is ASCII)
    assert parsed.rows_read == 3000
    pair = parsed.records[parsed.records["event_id"] == "pair"]
    assert _texts(pair["emoji"]) == ["\U0001f600"] and _texts(pair["text"]) == ["\\ud800"]


def test_lone_surrogates_in_messages_are_bad_lines_on_both_message_paths() -> None:
    values = [
        b'{"event_id": "1"}',
        b'{"event_id": "2", "session_id": "\\ud800"}',  # one line: with the others via pyarrow
        b'{"event_id": "3",\n "session_id": "\\ud800"}',  # multi-line: parsed alone
        b'{"event_id": "4"}',
    ]
    records, bad = landing.parse_json_messages(values)
    assert records["event_id"].tolist() == ["1", "4"]
    assert records[LINE_NO].tolist() == [1, 4]
    assert bad["line_no"].tolist() == [2, 3]
    assert bad["reason"].tolist() == ["invalid_text:session_id"] * 2


def test_nul_in_unparseable_lines_is_escaped_in_payloads(tmp_path: Path) -> None:
    """A raw 0x00 makes a JSON line malformed and can sit in a CSV row of the wrong width: the
    stored payload shows it as the text \\u0000 (PostgreSQL cannot hold NUL)."""
    jsonl = read_landing_file(_write(tmp_path / "a.jsonl", b'{"a": "1"}\n{"a": "x\x00y"}\n'))
    assert jsonl.bad_lines["payload"].tolist() == ['{"a": "x\\u0000y"}']
    assert jsonl.bad_lines["reason"].iloc[0].startswith("malformed_json")
    csv_ = read_landing_file(_write(tmp_path / "a.csv", b"a,b\n1,2,x\x00y\n3,4\n"))
    assert csv_.bad_lines["payload"].tolist() == ["1,2,x\\u0000y"]
    assert csv_.records["a"].tolist() == ["3"]
    messages = landing.parse_json_messages([b'{"a": "x\x00y"}', b'{"a":\n "\x00"}'])[1]
    assert messages["payload"].tolist() == ['{"a": "x\\u0000y"}', '{"a":\n "\\u0000"}']
    for payload in [*jsonl.bad_lines["payload"], *csv_.bad_lines["payload"]]:
        assert "\x00" not in payload


def test_nul_in_values_is_read_verbatim_for_the_contract_to_judge(tmp_path: Path) -> None:
    jsonl = read_landing_file(_write(tmp_path / "a.jsonl", '{"a": "x\\u0000y"}\n'))
    csv_ = read_landing_file(_write(tmp_path / "a.csv", b"a\nx\x00y\n"))
    assert _texts(jsonl.records["a"]) == _texts(csv_.records["a"]) == ["x\x00y"]


@pytest.mark.parametrize("name", ["a.jsonl", "b.jsonl", "c.csv", "d.csv", "e.parquet"])
def test_a_producer_field_named_like_an_internal_column_is_kept(tmp_path: Path, name: str) -> None:
    """Producer fields of any name are fields: ``_line_no`` (the readers' column's old name),
    ``line_no``, ``source_file`` and even the reserved name itself (it holds a NUL, which a
    producer's name keeps as the text \\u0000) never replace the line numbers, nor they them."""
    header = ["_line_no", "line_no", LINE_NO, "source_file"]
    rows = [["mine\n1", "7", "nul-1", "f"], ["mine-2", "8", "nul-2", "g"]]
    if name == "a.jsonl":  # no NUL in a name: pyarrow reads it
        header, rows = header[:2] + header[3:], [r[:2] + r[3:] for r in rows]
    path = tmp_path / name
    if name.endswith(".jsonl"):  # b: a NUL in a name, read line by line
        _write(path, _jsonl([dict(zip(header, r, strict=True)) for r in rows]))
    elif name == "c.csv":  # pyarrow's reader
        rows[0][0] = "mine-1"
        _write(path, "\n".join(",".join(r) for r in [header, *rows]) + "\n")
    elif name == "d.csv":  # a quoted newline: the exact reader
        _write(path, "\n".join(",".join(f'"{v}"' for v in r) for r in [header, *rows]) + "\n")
    else:
        columns = {k: [r[i] for r in rows] for i, k in enumerate(header)}
        pq.write_table(pa.table(columns), path)
    parsed = read_landing_file(path)
    names = [k.replace(LINE_NO, "\\u0000line_no") for k in header]
    assert [c for c in parsed.records.columns if c != LINE_NO] == names
    assert {k: _texts(parsed.records[k]) for k in names} == {
        k: [r[i] for r in rows] for i, k in enumerate(names)
    }
    assert parsed.records[LINE_NO].tolist() == [1, 2]


def test_messages_keep_a_field_named_like_an_internal_column() -> None:
    values = [b'{"_line_no": "a"}', b'{"_line_no":\n "b"}', b'{"\\u0000line_no": "c"}']
    records, bad = landing.parse_json_messages(values)
    assert bad.empty
    assert records[LINE_NO].tolist() == [1, 3, 2]
    assert _texts(records["_line_no"]) == ["a", None, "b"]
    assert _texts(records["\\u0000line_no"]) == [None, "c", None]


def test_a_file_name_that_is_not_utf8_raises_naming_it_escaped(tmp_path: Path) -> None:
    """A Latin-1 name (Python holds its byte as a surrogate escape) cannot be stored as the
    rows' source_file: the file fails the day loudly, its name shown with the byte as \\xe9."""
    path = tmp_path / os.fsdecode(b"caf\xe9'; DROP TABLE events; --.jsonl")
    path.write_text('{"a": "1"}\n')
    with pytest.raises(LandingFileError) as info:
        read_landing_file(path)
    message = str(info.value)
    message.encode("utf-8")  # the message itself is text that can be logged and stored
    assert "caf\\xe9'; DROP TABLE events; --.jsonl" in message
    assert "not UTF-8" in message and "rename" in message and "re-run the partition" in message
    assert info.value.path == str(path)
