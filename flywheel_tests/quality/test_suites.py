"""Tests for flywheel_assets.quality.suites: GX suites built from reviewed JSON files."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel_assets.quality import suites as quality
from flywheel_assets.quality.suites import (
    SUITES_DIR,
    ExpectationOutcome,
    SuiteOutcome,
    SuiteSpecError,
    UnknownExpectationError,
    load_suite_spec,
    validate_dataframe,
)

# The module's tests share an expensive module fixture: one worker runs them all, so it is built once.
pytestmark = pytest.mark.xdist_group("quality.test_suites")

EVENT_COLUMNS = [
    "event_id", "event_type", "event_time", "user_id", "item_id", "session_id", "request_id",
    "position", "propensity", "model_version", "variant", "price", "quantity", "dt",
]  # fmt: skip
N_ERROR_EXPECTATIONS_EVENTS = 15


def clean_events(n: int = 200) -> pd.DataFrame:
    """A valid accepted_events partition: impressions carry request_id/position/propensity."""
    rng = np.random.default_rng(7)
    types = np.array(["impression", "view", "click", "add_to_cart", "purchase"])
    event_type = types[np.arange(n) % len(types)]
    imp = event_type == "impression"
    df = pd.DataFrame(
        {
            "event_id": [f"e{i:06d}" for i in range(n)],
            "event_type": event_type,
            "event_time": pd.Timestamp("2026-01-01")
            + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
            "user_id": [f"u_{(i % 17) * 7919:032x}" for i in range(n)],
            "item_id": rng.integers(0, 50, n).astype("int64"),
            "session_id": [f"s{i % 9}" for i in range(n)],
            "request_id": pd.Series([f"r{i // 5}" if t else None for i, t in enumerate(imp)]),
            "position": np.where(imp, np.arange(n) % 10, np.nan),
            "propensity": np.where(imp, rng.uniform(0.05, 1.0, n), np.nan),
            "model_version": "m1",
            "variant": "A",
            "price": np.round(rng.uniform(1, 100, n), 2),
            # Purchases say how many units (a missing quantity is one unit).
            "quantity": pd.Series(1 + np.arange(n) % 3, dtype="Int64").where(
                pd.Series(event_type == "purchase"), pd.NA
            ),
            "dt": "2026-01-01",
            # Relational facts computed by sql/quality/events_partition.sql.
            "item_in_catalog_at_event_time": 1,
            "purchase_after_engagement": 1,
        }
    )
    # Boundaries that must pass: position 0 and propensity exactly 1.
    first_imp = int(np.flatnonzero(imp)[0])
    df.loc[first_imp, ["position", "propensity"]] = [0.0, 1.0]
    return df


def only_failure(outcome: SuiteOutcome) -> ExpectationOutcome:
    assert len(outcome.failed_errors) == 1, outcome.summary()
    return outcome.failed_errors[0]


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return clean_events()


def test_clean_events_pass(events: pd.DataFrame) -> None:
    outcome = validate_dataframe(events, "accepted_events")
    assert outcome.passed, outcome.summary()
    assert outcome.rows == len(events)
    assert all(o.success for o in outcome.outcomes), outcome.to_markdown()
    assert outcome.failed_warnings == []
    # Outcomes follow the spec order, whatever order GX evaluates in.
    spec = load_suite_spec("accepted_events")
    assert [o.expectation for o in outcome.outcomes] == [e["type"] for e in spec["expectations"]]
    assert sum(o.severity == "error" for o in outcome.outcomes) == N_ERROR_EXPECTATIONS_EVENTS
    assert outcome.summary().startswith(
        f"accepted_events: all {N_ERROR_EXPECTATIONS_EVENTS} error expectations passed"
    )


def _dup_event_id(df: pd.DataFrame) -> None:
    df.loc[[1, 2], "event_id"] = df.loc[0, "event_id"]


def _unknown_type(df: pd.DataFrame) -> None:
    df.loc[[1, 2], "event_type"] = "hover"


def _negative_price(df: pd.DataFrame) -> None:
    df.loc[[3, 4], "price"] = [-0.01, -5.0]


def _propensity_zero(df: pd.DataFrame) -> None:
    df.loc[5, "propensity"] = 0.0  # row 5 is an impression


def _propensity_too_big(df: pd.DataFrame) -> None:
    df.loc[[5, 10], "propensity"] = 1.5


def _raw_user_id(df: pd.DataFrame) -> None:
    df.loc[[7, 8], "user_id"] = ["alice@example.com", "12345"]


def _null_event_id(df: pd.DataFrame) -> None:
    df.loc[9, "event_id"] = None


def _negative_position(df: pd.DataFrame) -> None:
    df.loc[10, "position"] = -1.0


def _zero_quantity(df: pd.DataFrame) -> None:
    df.loc[[4, 9], "quantity"] = [0, -2]  # rows 4 and 9 are purchases


@pytest.mark.parametrize(
    ("mutate", "expectation", "column", "unexpected", "sample"),
    [
        (_dup_event_id, "expect_column_values_to_be_unique", "event_id", 3, "e000000"),
        (_unknown_type, "expect_column_values_to_be_in_set", "event_type", 2, "hover"),
        (_negative_price, "expect_column_values_to_be_between", "price", 2, -5.0),
        (_propensity_zero, "expect_column_values_to_be_between", "propensity", 1, 0.0),
        (_propensity_too_big, "expect_column_values_to_be_between", "propensity", 2, 1.5),
        (_raw_user_id, "expect_column_values_to_match_regex", "user_id", 2, "12345"),
        (_null_event_id, "expect_column_values_to_not_be_null", "event_id", 1, None),
        (_negative_position, "expect_column_values_to_be_between", "position", 1, -1.0),
        (_zero_quantity, "expect_column_values_to_be_between", "quantity", 2, -2),
    ],
)
def test_injected_violation_fails_the_right_expectation(
    events: pd.DataFrame,
    mutate: Callable[[pd.DataFrame], None],
    expectation: str,
    column: str,
    unexpected: int,
    sample: object,
) -> None:
    df = events.copy()
    mutate(df)
    outcome = validate_dataframe(df, "accepted_events")
    assert not outcome.passed
    failed = only_failure(outcome)
    assert (failed.expectation, failed.column) == (expectation, column)
    assert failed.unexpected_count == unexpected
    assert failed.severity == "error"
    assert failed.exception is None
    assert len(failed.sample) <= quality.SAMPLE_SIZE
    if sample is not None:
        assert sample in failed.sample
    assert outcome.failed_warnings == []


def test_missing_column_fails_column_set_and_reports_it(events: pd.DataFrame) -> None:
    outcome = validate_dataframe(events.drop(columns=["variant"]), "accepted_events")
    failed = only_failure(outcome)
    assert failed.expectation == "expect_table_columns_to_match_set"
    assert "variant" not in failed.observed
    assert "missing ['variant']" in outcome.summary()


def test_missing_checked_column_fails_its_expectations_too(events: pd.DataFrame) -> None:
    outcome = validate_dataframe(events.drop(columns=["price"]), "accepted_events")
    labels = {o.label for o in outcome.failed_errors}
    assert labels == {
        "expect_table_columns_to_match_set()",
        "expect_column_values_to_be_between(price)",
    }
    price = next(o for o in outcome.failed_errors if o.column == "price")
    assert price.exception  # GX could not evaluate it; reported rather than silently passing
    assert "could not run" in outcome.summary()


def test_extra_column_fails_exact_column_set(events: pd.DataFrame) -> None:
    outcome = validate_dataframe(events.assign(email="x@example.com"), "accepted_events")
    failed = only_failure(outcome)
    assert failed.expectation == "expect_table_columns_to_match_set"
    assert "unexpected ['email']" in outcome.summary()


def test_warn_failures_do_not_fail_the_suite(events: pd.DataFrame) -> None:
    df = events.copy()
    assert df.loc[0, "event_type"] == "impression" and df.loc[1, "event_type"] == "view"
    df.loc[0, "request_id"] = None  # impression: warns
    df.loc[1, "request_id"] = None  # view: already null, row_condition excludes it
    df.loc[[5, 10], "propensity"] = np.nan  # impressions without propensity: warns
    outcome = validate_dataframe(df, "accepted_events")
    assert outcome.passed, outcome.summary()
    warned = {o.column: o for o in outcome.failed_warnings}
    assert set(warned) == {"request_id", "propensity"}
    assert warned["request_id"].unexpected_count == 1
    assert warned["propensity"].unexpected_count == 2
    assert warned["request_id"].kwargs["row_condition"]["parameter"] == "impression"
    assert "2 warning(s)" in outcome.summary()


def test_empty_partition_with_right_columns(events: pd.DataFrame) -> None:
    outcome = validate_dataframe(events.iloc[0:0], "accepted_events")
    assert outcome.rows == 0
    assert outcome.passed, outcome.summary()  # only the warn-level row count fails
    assert [o.expectation for o in outcome.failed_warnings] == [
        "expect_table_row_count_to_be_between"
    ]
    assert outcome.failed_warnings[0].observed == 0


def test_markdown_and_summary_name_the_failure(events: pd.DataFrame) -> None:
    df = events.copy()
    _dup_event_id(df)
    outcome = validate_dataframe(df, "accepted_events")
    md = outcome.to_markdown()
    lines = md.splitlines()
    assert lines[0].startswith("| expectation | column | severity | result |")
    assert len(lines) == 2 + len(outcome.outcomes)
    fail_rows = [line for line in lines if "| FAIL |" in line]
    assert len(fail_rows) == 1
    assert "expect_column_values_to_be_unique | event_id | error | FAIL" in fail_rows[0]
    assert "| 3 |" in fail_rows[0]
    summary = outcome.summary()
    assert summary.startswith(
        f"accepted_events: 1 of {N_ERROR_EXPECTATIONS_EVENTS} error expectations failed"
    )
    assert "expect_column_values_to_be_unique(event_id) 3 unexpected" in summary
    assert "gx_suites/accepted_events.json" in summary
    assert "\n" not in summary


def clean_catalog() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": [1, 2, 3],
            "title": ["a", "b", "c"],
            "category": ["shoes", "shoes", "hats"],
            "brand": ["x", None, "y"],
            "price": [10.0, 0.0, 5.5],
            "valid_from": pd.to_datetime(["2026-01-01"] * 3),
            "dt": "2026-01-01",
        }
    )


def test_catalog_items() -> None:
    assert validate_dataframe(clean_catalog(), "catalog_items").passed
    bad = clean_catalog()
    bad.loc[2, "item_id"] = 1
    bad.loc[1, "price"] = np.nan
    outcome = validate_dataframe(bad, "catalog_items")
    failed = {(o.expectation, o.column): o.unexpected_count for o in outcome.failed_errors}
    assert failed == {
        ("expect_column_values_to_be_unique", "item_id"): 2,
        ("expect_column_values_to_not_be_null", "price"): 1,
    }


def clean_training() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": ["r1", "r1", "r2"],
            "user_id": ["u_" + "a" * 32] * 3,
            "item_id": [1, 2, 3],
            "position": [0, 1, 0],
            "propensity": [1.0, 0.5, 0.25],
            "label_click": [1, 0, 0],
            "label_purchase": [0, 0, 0],
            "dt": "2026-01-01",
            "feature_extra": [0.1, 0.2, 0.3],  # extra columns are allowed here
        }
    )


def test_training_examples() -> None:
    assert validate_dataframe(clean_training(), "training_examples").passed
    bad = clean_training()
    bad.loc[0, "label_click"] = 2
    bad.loc[1, "propensity"] = 0.0
    outcome = validate_dataframe(bad, "training_examples")
    failed = {(o.expectation, o.column): o.unexpected_count for o in outcome.failed_errors}
    assert failed == {
        ("expect_column_values_to_be_in_set", "label_click"): 1,
        ("expect_column_values_to_be_between", "propensity"): 1,
    }


def test_training_examples_empty_is_an_error() -> None:
    outcome = validate_dataframe(clean_training().iloc[0:0], "training_examples")
    assert not outcome.passed
    assert [o.expectation for o in outcome.failed_errors] == [
        "expect_table_row_count_to_be_between"
    ]


@pytest.mark.parametrize("path", sorted(SUITES_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_suite_file_loads_and_builds(path: Path) -> None:
    spec = load_suite_spec(path.stem)
    suite = quality.build_suite(spec)
    assert len(suite.expectations) == len(spec["expectations"])


def _write_spec(directory: Path, name: str, expectations: list[dict]) -> None:
    spec = {"suite": name, "expectations": expectations}
    (directory / f"{name}.json").write_text(json.dumps(spec), encoding="utf-8")


def test_unknown_expectation_name_raises(tmp_path: Path) -> None:
    item = {"type": "expect_column_values_to_be_uniq", "kwargs": {"column": "a"}}
    _write_spec(tmp_path, "bad", [{**item, "severity": "error", "why": "typo"}])
    with pytest.raises(UnknownExpectationError, match="expect_column_values_to_be_uniq") as exc:
        load_suite_spec("bad", suites_dir=tmp_path)
    assert "did you mean expect_column_values_to_be_unique" in str(exc.value)
    with pytest.raises(UnknownExpectationError):
        validate_dataframe(pd.DataFrame({"a": [1]}), "bad", suites_dir=tmp_path)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "a"},
          "severity": "fatal", "why": "x"}, "severity"),
        ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "a"},
          "severity": "error"}, "missing \\['why'\\]"),
        ({"type": "expect_column_values_to_be_unique",
          "kwargs": {"column": "a", "result_format": "COMPLETE"},
          "severity": "error", "why": "x"}, "result_format"),
    ],
)  # fmt: skip
def test_malformed_spec_raises(tmp_path: Path, item: dict, message: str) -> None:
    _write_spec(tmp_path, "bad", [item])
    with pytest.raises(SuiteSpecError, match=message):
        load_suite_spec("bad", suites_dir=tmp_path)


def test_bad_kwargs_and_unknown_suite_raise(tmp_path: Path) -> None:
    item = {"type": "expect_column_values_to_be_unique", "kwargs": {"colum": "a"}}
    _write_spec(tmp_path, "bad", [{**item, "severity": "error", "why": "x"}])
    with pytest.raises(SuiteSpecError, match="rejected its kwargs"):
        quality.build_suite(load_suite_spec("bad", suites_dir=tmp_path))
    with pytest.raises(FileNotFoundError, match="known suites"):
        load_suite_spec("no_such_suite")
    with pytest.raises(SuiteSpecError, match="invalid suite name"):
        load_suite_spec("../accepted_events")


def test_writes_nothing_to_cwd_and_needs_no_network(
    events: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    df = events.copy()
    _dup_event_id(df)
    outcome = validate_dataframe(df, "accepted_events")
    assert not outcome.passed
    assert list(tmp_path.iterdir()) == []


def test_narrow_number_columns_are_judged_as_their_wide_forms(tmp_path: Path) -> None:
    # GX compares int64 and float64 vectorised and other widths value by value; the suite
    # widens them first, which must keep every value, count and offending row.
    between = {
        "i32": {"min_value": 0, "max_value": 9},
        "i16": {"min_value": -5},
        "u8": {"max_value": 200},
        "f32": {"min_value": 0.0, "max_value": 1.0, "strict_min": True},
    }
    expectations = [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": c, **kw},
            "severity": "error",
            "why": "bounds",
        }
        for c, kw in between.items()
    ]
    spec = {"suite": "narrow", "row_id": ["rid"], "expectations": expectations}
    (tmp_path / "narrow.json").write_text(json.dumps(spec), encoding="utf-8")
    rng = np.random.default_rng(3)
    n = 5_000
    df = pd.DataFrame(
        {
            "rid": [f"r{i}" for i in range(n)],
            "i32": rng.integers(-3, 12, n).astype("int32"),
            "i16": rng.integers(-9, 9, n).astype("int16"),
            "u8": rng.integers(0, 256, n).astype("uint8"),
            "f32": rng.uniform(-0.2, 1.2, n).astype("float32"),
        }
    )
    widened = quality._widened(df)
    assert [str(t) for t in widened.dtypes.iloc[1:]] == ["int64", "int64", "int64", "float64"]
    assert widened["rid"].dtype == df["rid"].dtype
    for c in between:
        assert (widened[c].to_numpy() == df[c].to_numpy()).all()
    bad = {
        "i32": (df.i32 < 0) | (df.i32 > 9),
        "i16": df.i16 < -5,
        "u8": df.u8 > 200,
        "f32": (df.f32 <= 0) | (df.f32 > 1),
    }
    outcome = validate_dataframe(df, "narrow", suites_dir=tmp_path)
    assert not outcome.passed and len(outcome.failed_errors) == len(between)
    for o in outcome.outcomes:
        assert o.unexpected_count == int(bad[o.column].sum()) > 0, o.column
        offending = set(df.loc[bad[o.column], "rid"])
        assert o.sample_rows and {r["rid"] for r in o.sample_rows} <= offending, o.column


def test_the_frame_is_not_fingerprinted(events: pd.DataFrame, monkeypatch) -> None:
    # GX would hash every row of a day (0.6 s per 1M events) for batch markers nobody reads.
    hashed = []
    real = pd.util.hash_pandas_object

    def counting(*args, **kwargs):
        hashed.append(len(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(pd.util, "hash_pandas_object", counting)
    outcome = validate_dataframe(events, "accepted_events")
    assert outcome.rows == len(events) and len(outcome.outcomes) > 10
    assert not [n for n in hashed if n == len(events)]
