"""Validate a warehouse partition (a pandas DataFrame) against a reviewed Great Expectations suite.

Suites live under version control as JSON in ``flywheel_assets/gx_suites/<suite_name>.json``::

    {
      "suite": "accepted_events",            # must equal the file name stem
      "description": "free text",             # optional
      "row_id": ["event_id"],                 # optional: columns naming a row in samples
      "expectations": [
        {
          "type": "expect_column_values_to_be_unique",   # GX snake_case expectation name
          "kwargs": {"column": "event_id"},              # keyword arguments of that GX class
          "severity": "error",                           # "error" fails the check, "warn" only reports
          "why": "one line: what breaks downstream if this fails"
        }
      ]
    }

``kwargs`` are passed unchanged to the ``gx.expectations`` class named by ``type``;
``result_format`` and ``meta`` are set here and may not appear. ``row_condition`` takes GX's own
serialised Condition dict, e.g. ``{"type": "comparison", "column": {"name": "event_type"},
"operator": "==", "parameter": "impression"}`` (works with the pandas engine in GX 1.24; string
conditions are deprecated). Every expectation is validated with result_format "SUMMARY".

Bounds that depend on the day (volume against the trailing days, freshness) are GX suite
parameters: write ``{"$PARAMETER": "volume_min"}`` in kwargs and pass ``parameters=`` to
:func:`validate_dataframe`. A failed row-level expectation carries a sample of the offending
rows, named by the suite's ``row_id`` columns (warehouse rows: ids are already pseudonyms).

Dagster asset checks call :func:`validate_partition` (a day's rows of a partition query,
validated) and turn the :class:`SuiteOutcome` into an ``AssetCheckResult`` (``passed``,
``summary()``, ``to_markdown()``).
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from flywheel_assets.platform.warehouse import Warehouse, load_sql, named_params

SUITES_DIR: Path = Path(__file__).resolve().parent / "gx_suites"
SEVERITIES: tuple[str, ...] = ("error", "warn")
SAMPLE_SIZE = 5

_SUITE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_SPEC_KEYS = {"suite", "description", "row_id", "expectations"}
_EXPECTATION_KEYS = {"type", "kwargs", "severity", "why"}
_RESERVED_KWARGS = {"result_format", "meta"}
# Meta key carrying the spec index, so results map back to spec entries whatever order GX uses.
_INDEX_META = "flywheel_spec_index"

_gx_module: ModuleType | None = None
_expectation_classes: dict[str, type] | None = None


class SuiteSpecError(ValueError):
    """A suite file is malformed."""


class UnknownExpectationError(SuiteSpecError):
    """A suite names an expectation type that GX does not provide."""


def _gx() -> ModuleType:
    """Import GX once, lazily: the import costs seconds and most callers never validate."""
    global _gx_module
    if _gx_module is None:
        # Must be set before the import; GX reads it at import/context time.
        os.environ["GX_ANALYTICS_ENABLED"] = "false"
        import great_expectations
        from great_expectations.execution_engine import pandas_execution_engine

        # GX fingerprints every frame under 1 GB (MD5 over pandas' row hashes, 0.6 s per 1M
        # events) into batch markers that flywheel never reads: a threshold of 0 skips it.
        pandas_execution_engine.HASH_THRESHOLD = 0
        _gx_module = great_expectations
    return _gx_module


def _expectation_class_map() -> dict[str, type]:
    """snake_case name -> concrete gx.expectations class, built once."""
    global _expectation_classes
    if _expectation_classes is None:
        gx = _gx()
        from great_expectations.util import camel_to_snake

        base = gx.expectations.Expectation
        _expectation_classes = {
            camel_to_snake(name): obj
            for name, obj in vars(gx.expectations).items()
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base
        }
    return _expectation_classes


def expectation_class(type_name: str, *, where: str = "") -> type:
    """Resolve a GX snake_case expectation name to its class, or raise UnknownExpectationError."""
    classes = _expectation_class_map()
    try:
        return classes[type_name]
    except KeyError:
        close = difflib.get_close_matches(type_name, classes, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownExpectationError(
            f"{where}unknown expectation type {type_name!r}: not in gx.expectations "
            f"(great_expectations {_gx().__version__}){hint}"
        ) from None


def _check_spec(spec: Any, suite_name: str) -> None:
    """Structural checks, so a typo in a reviewed file fails loudly rather than skipping a check."""
    if not isinstance(spec, dict):
        raise SuiteSpecError(f"suite {suite_name!r}: top level must be a JSON object")
    extra = set(spec) - _SPEC_KEYS
    if extra:
        raise SuiteSpecError(f"suite {suite_name!r}: unknown top-level keys {sorted(extra)}")
    if spec.get("suite") != suite_name:
        raise SuiteSpecError(
            f"suite {suite_name!r}: 'suite' is {spec.get('suite')!r}, must equal the file name"
        )
    row_id = spec.get("row_id", [])
    if not isinstance(row_id, list) or not all(isinstance(c, str) for c in row_id):
        raise SuiteSpecError(f"suite {suite_name!r}: 'row_id' must be a list of column names")
    items = spec.get("expectations")
    if not isinstance(items, list) or not items:
        raise SuiteSpecError(f"suite {suite_name!r}: 'expectations' must be a non-empty list")
    for i, item in enumerate(items):
        where = f"suite {suite_name!r} expectation #{i}: "
        if not isinstance(item, dict):
            raise SuiteSpecError(f"{where}must be an object")
        missing = _EXPECTATION_KEYS - set(item)
        extra = set(item) - _EXPECTATION_KEYS
        if missing or extra:
            raise SuiteSpecError(
                f"{where}keys must be {sorted(_EXPECTATION_KEYS)}; "
                f"missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        if not isinstance(item["type"], str):
            raise SuiteSpecError(f"{where}'type' must be a string")
        if not isinstance(item["kwargs"], dict):
            raise SuiteSpecError(f"{where}'kwargs' must be an object")
        reserved = _RESERVED_KWARGS & set(item["kwargs"])
        if reserved:
            raise SuiteSpecError(f"{where}kwargs {sorted(reserved)} are set by quality.py")
        if item["severity"] not in SEVERITIES:
            raise SuiteSpecError(f"{where}'severity' must be one of {SEVERITIES}")
        if not isinstance(item["why"], str) or not item["why"].strip():
            raise SuiteSpecError(f"{where}'why' must be a non-empty string")


def load_suite_spec(suite_name: str, *, suites_dir: Path | None = None) -> dict:
    """Read and check ``<suites_dir>/<suite_name>.json``.

    Raises FileNotFoundError, SuiteSpecError, or UnknownExpectationError (names are resolved here
    so a bad file fails before any data is touched).
    """
    if not _SUITE_NAME_RE.match(suite_name):
        raise SuiteSpecError(f"invalid suite name {suite_name!r} (lowercase, digits, underscores)")
    directory = SUITES_DIR if suites_dir is None else Path(suites_dir)
    path = directory / f"{suite_name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.json"))
        raise FileNotFoundError(f"no suite file {path}; known suites: {known}")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SuiteSpecError(f"suite {suite_name!r}: {path} is not valid JSON: {exc}") from exc
    _check_spec(spec, suite_name)
    for i, item in enumerate(spec["expectations"]):
        expectation_class(item["type"], where=f"suite {suite_name!r} expectation #{i}: ")
    return spec


def build_suite(spec: dict) -> Any:
    """Build a ``gx.ExpectationSuite`` from a checked spec (see load_suite_spec)."""
    gx = _gx()
    name = spec["suite"]
    expectations = []
    for i, item in enumerate(spec["expectations"]):
        where = f"suite {name!r} expectation #{i}: "
        cls = expectation_class(item["type"], where=where)
        try:
            expectations.append(cls(**item["kwargs"], meta={_INDEX_META: i}))
        except Exception as exc:  # pydantic errors are verbose; prefix them with the location
            raise SuiteSpecError(f"{where}{item['type']} rejected its kwargs: {exc}") from exc
    return gx.ExpectationSuite(name=name, expectations=expectations)


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str | None
    kwargs: dict
    severity: str
    success: bool
    observed: object
    unexpected_count: int | None
    unexpected_percent: float | None
    sample: list
    why: str
    # GX's message when the expectation could not be evaluated (e.g. its column is missing).
    exception: str | None = None
    # Whole offending rows (at most SAMPLE_SIZE), found through the suite's row_id columns.
    sample_rows: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.expectation}({self.column or ''})"

    def describe_failure(self) -> str:
        """Short human text for a failed outcome, used in summaries."""
        if self.exception:
            return f"{self.label} could not run: {_first_line(self.exception)}"
        if self.expectation == "expect_table_columns_to_match_set" and isinstance(
            self.observed, list
        ):
            expected = set(self.kwargs.get("column_set") or [])
            actual = set(self.observed)
            parts = []
            if expected - actual:
                parts.append(f"missing {sorted(expected - actual)}")
            if self.kwargs.get("exact_match", True) and actual - expected:
                parts.append(f"unexpected {sorted(actual - expected)}")
            return f"{self.label} {', '.join(parts) or 'mismatch'}"
        if self.unexpected_count is not None:
            pct = f" ({self.unexpected_percent:.3g}%)" if self.unexpected_percent else ""
            sample = f", e.g. {_fmt(self.sample, 60)}" if self.sample else ""
            return f"{self.label} {self.unexpected_count} unexpected{pct}{sample}"
        bounds = ""
        if "min_value" in self.kwargs or "max_value" in self.kwargs:
            lo, hi = self.kwargs.get("min_value"), self.kwargs.get("max_value")
            bounds = f" (expected {'' if lo is None else lo}..{'' if hi is None else hi})"
        return f"{self.label} observed {_fmt(self.observed, 60)}{bounds}"


@dataclass(frozen=True)
class SuiteOutcome:
    suite: str
    rows: int
    outcomes: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failed_errors

    @property
    def failed_errors(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.severity == "error" and not o.success]

    @property
    def failed_warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.severity == "warn" and not o.success]

    @property
    def severity(self) -> str | None:
        """ "error" if an error expectation failed, else "warn" if a warning did, else None."""
        if self.failed_errors:
            return "error"
        return "warn" if self.failed_warnings else None

    def samples_markdown(self) -> str:
        """The offending rows of each failed expectation, as markdown tables."""
        parts = []
        for o in self.outcomes:
            if o.success or not o.sample_rows:
                continue
            cols = list(o.sample_rows[0])
            lines = [
                f"**{o.label}** ({o.severity}, {o.unexpected_count} rows; first "
                f"{len(o.sample_rows)})",
                "",
                "| " + " | ".join(cols) + " |",
                "|" + "---|" * len(cols),
            ]
            lines += [
                "| " + " | ".join(_md_cell(_fmt(r.get(c), 40)) for c in cols) + " |"
                for r in o.sample_rows
            ]
            parts.append("\n".join(lines))
        return "\n\n".join(parts) or "_(no offending rows)_"

    def to_markdown(self) -> str:
        header = (
            "| expectation | column | severity | result | observed | unexpected count | sample |\n"
            "|---|---|---|---|---|---|---|"
        )
        lines = [header]
        for o in self.outcomes:
            observed = o.observed if o.exception is None else f"error: {_first_line(o.exception)}"
            cells = [
                o.expectation,
                o.column or "",
                o.severity,
                "pass" if o.success else "FAIL",
                "" if observed is None else _fmt(observed, 80),
                "" if o.unexpected_count is None else str(o.unexpected_count),
                _fmt(o.sample, 80) if o.sample else "",
            ]
            lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
        return "\n".join(lines)

    def summary(self) -> str:
        n_errors = sum(1 for o in self.outcomes if o.severity == "error")
        warns = self.failed_warnings
        warn_text = (
            f" {len(warns)} warning(s): " + "; ".join(o.describe_failure() for o in warns) + "."
            if warns
            else ""
        )
        if self.passed:
            return (
                f"{self.suite}: all {n_errors} error expectations passed on {self.rows} rows."
                f"{warn_text}"
            )
        errors = self.failed_errors
        return (
            f"{self.suite}: {len(errors)} of {n_errors} error expectations failed on "
            f"{self.rows} rows: " + "; ".join(o.describe_failure() for o in errors) + "."
            f"{warn_text} Fix the upstream producer and re-materialise the partition; if the "
            f"change is intended, update flywheel_assets/gx_suites/{self.suite}.json in a "
            "reviewed change."
        )


def validate_dataframe(
    df: pd.DataFrame,
    suite_name: str,
    *,
    parameters: dict[str, Any] | None = None,
    suites_dir: Path | None = None,
) -> SuiteOutcome:
    """Validate one partition against a suite, in a fresh in-memory GX context.

    ``parameters`` fill the suite's ``{"$PARAMETER": name}`` placeholders.
    """
    spec = load_suite_spec(suite_name, suites_dir=suites_dir)
    suite = build_suite(spec)
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # Ephemeral: nothing written to disk, and a fresh context avoids datasource name clashes.
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (
        context.data_sources.add_pandas("flywheel")
        .add_dataframe_asset(suite_name)
        .add_batch_definition_whole_dataframe("partition")
    )
    # A ValidationDefinition loads the batch once; batch_definition.get_batch().validate() loads
    # (and fingerprint-hashes) the whole frame twice, ~0.6 s extra per 1M rows.
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(
            name=f"{suite_name}_partition",
            data=batch_definition,
            suite=context.suites.add(suite),
        )
    )
    row_id = [c for c in spec.get("row_id", []) if c in df.columns]
    result_format: dict[str, Any] = {"result_format": "SUMMARY"}
    if row_id:
        result_format["unexpected_index_column_names"] = row_id
    result = validation.run(
        batch_parameters={"dataframe": _widened(df)},
        expectation_parameters=parameters or {},
        result_format=result_format,
    )

    by_index: dict[int, Any] = {}
    for r in result.results:
        by_index[int(r.expectation_config.meta[_INDEX_META])] = r
    outcomes = [
        _outcome(item, by_index.get(i), suite_name, i, df, row_id)
        for i, item in enumerate(spec["expectations"])
    ]
    return SuiteOutcome(suite=suite_name, rows=len(df), outcomes=outcomes)


# (warehouse, connection, day) -> (suite parameters, a note on what they were built from)
SuiteParameters = Callable[[Warehouse, Connection, dt.date], tuple[dict[str, object], str]]


@dataclass(frozen=True)
class PartitionValidation:
    outcome: SuiteOutcome
    parameters: dict[str, object]
    note: str  # how the parameters were found; "" without parameters


def validate_partition(
    wh: Warehouse,
    day: dt.date,
    rows: str,
    suite_name: str,
    parameters: SuiteParameters | None = None,
) -> PartitionValidation:
    """Validate ``day``'s rows of ``rows`` against ``suite_name``: a table (its day's
    partition), or a reviewed query ``sql/<rows>.sql`` (a name with its folder).
    ``parameters`` computes the day's suite parameters from the warehouse."""
    with wh.begin() as conn:
        if "/" in rows:  # a query: binds :dt, and :prev_dt when it looks at the day before
            sql = load_sql(rows)
            bounds = {"dt": day, "prev_dt": day - dt.timedelta(days=1)}
            df = wh.query_df(conn, sql, **named_params(sql, bounds))
        else:
            df = wh.read_partition(conn, rows, day)
        params, note = parameters(wh, conn, day) if parameters else ({}, "")
    return PartitionValidation(validate_dataframe(df, suite_name, parameters=params), params, note)


def _widened(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with narrower integer and float columns as int64 and float64: GX's pandas engine
    compares only those two (of numbers) vectorised, and any other width one Python call per
    value, several times per expectation (an int32 position cost 10M calls for a 1M-row day).
    Widening keeps every value, so every comparison's result is the same (an aggregate such as
    a mean would be computed in double, not single, precision: no suite has one on a float32)."""
    wide = {
        c: "int64" if t.kind in "iu" else "float64"
        for c, t in df.dtypes.items()
        if isinstance(t, np.dtype) and t.kind in "iuf" and t.itemsize < 8
    }
    return df.astype(wide) if wide else df


def _sample_rows(df: pd.DataFrame, row_id: list[str], index_list: list) -> list[dict]:
    """Whole rows for the first offending rows GX named by their row_id values."""
    keys = [tuple(entry.get(c) for c in row_id) for entry in index_list[:SAMPLE_SIZE]]
    if not keys or not row_id:
        return []
    wanted = pd.MultiIndex.from_tuples(keys, names=row_id)
    mask = pd.MultiIndex.from_frame(df[row_id]).isin(wanted)
    rows = df.loc[mask].head(SAMPLE_SIZE)
    return [
        {k: (None if _missing(v) else v) for k, v in rec.items()}
        for rec in rows.astype(object).to_dict("records")
    ]


def _missing(v: object) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _outcome(
    item: dict, r: Any, suite_name: str, index: int, df: pd.DataFrame, row_id: list[str]
) -> ExpectationOutcome:
    # The kwargs GX evaluated: suite parameters substituted by their values.
    evaluated = dict(r.expectation_config.kwargs) if r is not None else dict(item["kwargs"])
    kwargs = {k: v for k, v in evaluated.items() if k not in ("column", "batch_id")}
    column = item["kwargs"].get("column")
    if r is None:
        # Should not happen; failing closed beats silently dropping a check.
        return ExpectationOutcome(
            expectation=item["type"],
            column=column,
            kwargs=kwargs,
            severity=item["severity"],
            success=False,
            observed=None,
            unexpected_count=None,
            unexpected_percent=None,
            sample=[],
            why=item["why"],
            exception=f"GX returned no result for {suite_name} expectation #{index}",
        )
    res = r.result or {}
    info = r.exception_info or {}
    exception = None
    if info.get("raised_exception"):
        exception = info.get("exception_message") or "exception during validation"
    else:
        # Multi-metric failures nest per-metric dicts instead of the flat form.
        for v in info.values():
            if isinstance(v, dict) and v.get("raised_exception"):
                exception = v.get("exception_message") or "exception during validation"
                break
    unexpected_count = res.get("unexpected_count")
    unexpected_percent = res.get("unexpected_percent")
    return ExpectationOutcome(
        expectation=item["type"],
        column=column,
        kwargs=kwargs,
        severity=item["severity"],
        success=bool(r.success),
        observed=res.get("observed_value"),
        unexpected_count=None if unexpected_count is None else int(unexpected_count),
        unexpected_percent=None if unexpected_percent is None else float(unexpected_percent),
        sample=list(res.get("partial_unexpected_list") or [])[:SAMPLE_SIZE],
        why=item["why"],
        exception=exception,
        sample_rows=[]
        if r.success
        else _sample_rows(df, row_id, list(res.get("partial_unexpected_index_list") or [])),
    )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _fmt(value: object, limit: int) -> str:
    if isinstance(value, float) and math.isnan(value):
        text = "NaN"
    else:
        text = json.dumps(value, default=str) if isinstance(value, list | dict) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _md_cell(text: str) -> str:
    # Pipes and newlines would break the table layout.
    return text.replace("|", "\\|").replace("\n", " ")
