"""Fixing and releasing quarantined events (``flywheel quarantine export|release``).

A row quarantined at ingestion (it broke the event contract: a negative price, a bad
timestamp) can be fixed by a person and released:

1. ``export`` writes the day's open quarantined rows as JSONL: the stored payload (personal
   fields already pseudonymised) plus ``_quarantined_file`` and ``_quarantined_line``, which
   name the row being fixed, and ``_reason``.
2. The person corrects the fields in that file (and deletes the lines they do not release).
3. ``release`` validates every line through the same event contract as ingestion (ids that
   are already pseudonyms stay as they are; a raw id is pseudonymised), refuses the whole
   file if any line still fails or names a row that is not open, and otherwise stores the
   fixed rows in ``quarantine_releases`` and one entry in the append-only ``audit_log``, in
   one transaction.
4. Re-materialising the day (``raw_events`` and everything downstream) puts the released
   rows into ``raw_events`` at the file and line of the row they fix; the accounting then
   counts them as raw instead of quarantined. Re-ingesting the day's files keeps them.

Rows quarantined by the quality stage (``unknown_item``, ``event_id_conflict``) are fixed at
the source instead: deliver the missing catalog rows or the corrected events and
re-materialise the day; the relational rules run again over all of the day's raw rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flywheel_assets.ingestion.contract import FieldMap, normalise_events
from flywheel_assets.ingestion.landing import parse_json_messages, storable_text
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import Warehouse, load_sql

REF_FILE = "_quarantined_file"
REF_LINE = "_quarantined_line"
REF_REASON = "_reason"
_PSEUDONYM_RE = re.compile(r"^u_[0-9a-f]{32}$")


class ReleaseError(ValueError):
    """A release was refused; nothing was written. The message lists every problem."""


class _KeepPseudonyms(Pseudonymiser):
    """Pseudonymises raw ids but leaves values that already are pseudonyms, because exported
    payloads carry pseudonyms and hashing them again would detach the user's history."""

    def _digest(self, text: str) -> str:
        return text if _PSEUDONYM_RE.match(text) else super()._digest(text)


@dataclass(frozen=True)
class ReleaseResult:
    release_id: str
    day: dt.date
    rows: int
    reasons: dict[str, int]


def open_rows(wh: Warehouse, day: dt.date, reason: str | None = None) -> pd.DataFrame:
    """The day's open (unreleased) quarantined event rows at the ingestion and Kafka stages."""
    with wh.begin() as conn:
        return wh.query_df(conn, load_sql("quality/open_quarantine"), dt=day, reason=reason)


def export_rows(wh: Warehouse, day: dt.date, out: Path, reason: str | None = None) -> int:
    """Write the open rows of ``day`` to ``out`` as JSONL for fixing; returns the row count."""
    rows = open_rows(wh, day, reason)
    with Path(out).open("w", encoding="utf-8") as f:
        for r in rows.itertuples():
            try:
                obj = json.loads(r.payload)
            except (TypeError, ValueError):
                obj = None
            if not isinstance(obj, dict):
                # An unparseable line: the person rebuilds the event from the text.
                obj = {"_unparsed_line": r.payload}
            obj.update({REF_FILE: r.source_file, REF_LINE: int(r.line_no), REF_REASON: r.reason})
            # A payload can decode to a lone surrogate (an invalid_text row): keep its escape.
            f.write(storable_text(json.dumps(obj, ensure_ascii=False, default=str)) + "\n")
    return len(rows)


def release(
    wh: Warehouse,
    day: dt.date,
    fixes: Path,
    *,
    key: str,
    released_by: str,
    why: str,
    now: dt.datetime,
    future_tolerance: dt.timedelta = dt.timedelta(hours=1),
    max_lateness: dt.timedelta | None = None,
    field_map: FieldMap | None = None,
) -> ReleaseResult:
    """Validate the fixed rows in ``fixes`` and record their release (all or nothing)."""
    if not released_by.strip() or not why.strip():
        raise ReleaseError("a release needs who (--by) and why (--why): both go to the audit log")
    if "\x00" in released_by + why:
        # PostgreSQL cannot store NUL (DuckDB can): refused the same way on both backends.
        raise ReleaseError("who (--by) and why (--why) cannot contain a NUL character (U+0000)")
    raw = Path(fixes).read_bytes()
    lines = [ln for ln in raw.splitlines() if ln.strip()]
    if not lines:
        raise ReleaseError(f"{fixes} has no rows to release")
    records, bad = parse_json_messages(lines)
    problems = [f"line {int(b.line_no)}: {b.reason}" for b in bad.itertuples()]
    if problems:
        raise ReleaseError("not JSON objects: " + "; ".join(problems))
    for col in (REF_FILE, REF_LINE):
        if col not in records.columns:
            raise ReleaseError(
                f"every line needs {REF_FILE} and {REF_LINE} (as written by export): "
                f"{col} is missing"
            )
    files = records[REF_FILE].astype(object)
    line_nos = pd.to_numeric(records[REF_LINE].astype(object), errors="coerce")
    open_ = open_rows(wh, day)
    reason_of = {
        (str(f), int(n)): str(r)
        for f, n, r in zip(open_["source_file"], open_["line_no"], open_["reason"], strict=True)
    }
    refs: list[tuple[str, int]] = []
    for i, (f, n) in enumerate(zip(files, line_nos, strict=True), start=1):
        if f is None or pd.isna(n):
            problems.append(f"line {i}: {REF_FILE}/{REF_LINE} missing")
            continue
        ref = (str(f), int(n))
        if ref in refs:
            problems.append(f"line {i}: {ref[0]}:{ref[1]} is released twice in this file")
        elif ref not in reason_of:
            problems.append(
                f"line {i}: {ref[0]}:{ref[1]} is not an open quarantined event of {day} "
                "(already released, never quarantined, or of another day)"
            )
        refs.append(ref)
    if problems:
        raise ReleaseError("; ".join(problems))

    start = dt.datetime.combine(day, dt.time())
    end = start + dt.timedelta(days=1)
    event_records = records.drop(
        columns=[c for c in records.columns if c in (REF_FILE, REF_LINE, REF_REASON)]
    )
    batch = normalise_events(
        event_records,
        pseudonymiser=_KeepPseudonyms(key),
        partition_start=start,
        partition_end=end,
        now=max(now, end),
        future_tolerance=future_tolerance,
        max_lateness=max_lateness,
        field_map=field_map,
    )
    if len(batch.rejected):
        fails = "; ".join(f"line {int(r.line_no)}: {r.reason}" for r in batch.rejected.itertuples())
        raise ReleaseError(f"still invalid, nothing released: {fails}")

    release_id = f"r{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
    accepted = batch.accepted.astype(object).where(batch.accepted.notna(), None)
    reasons: dict[str, int] = {}
    with wh.begin() as conn:
        for pos, row in zip(accepted.index, accepted.to_dict("records"), strict=True):
            ref = refs[int(records.index.get_loc(pos))]
            reason = reason_of[ref]
            reasons[reason] = reasons.get(reason, 0) + 1
            wh.run(
                conn,
                "quality/insert_release",
                release_id=release_id,
                dt=day,
                source_file=ref[0],
                line_no=ref[1],
                reason=reason,
                released_at=now,
                released_by=released_by,
                why=why,
                **{k: _plain(v) for k, v in row.items()},
            )
        wh.run(
            conn,
            "platform/audit/insert_audit",
            logged_at=now,
            actor=released_by,
            action="quarantine_release",
            subject=f"events {day}",
            details=json.dumps(
                {
                    "release_id": release_id,
                    "rows": len(accepted),
                    "reasons": reasons,
                    "file_sha256": hashlib.sha256(raw).hexdigest(),
                },
                sort_keys=True,
            ),
            why=why,
        )
    return ReleaseResult(release_id, day, len(accepted), reasons)


def _plain(v: object) -> object:
    """Database-friendly scalars (numpy and pandas types to Python)."""
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if hasattr(v, "item"):
        return v.item()
    return v
