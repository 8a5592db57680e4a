"""The governed export of a day's purchase likelihood for a CRM or campaign tool.

The rows carry user pseudonyms, which a shop's CRM can join to its own customer ids through
its own copy of the keyed mapping; that is exactly why not everyone may take them out. So:

- on PostgreSQL the login must be allowed to read ``purchase_likelihood`` (the owner and the
  training role are; the analyst role, which reads masked views only, is not); otherwise the
  export is refused before anything is read or written;
- the file is written beside its target and renamed into place (never half a file), readable
  by its owner only;
- every export is recorded in the audit trail: who, why, the login, which day, how many rows,
  the model version and the file's SHA-256. The file is renamed into place inside the
  transaction that writes the record, and removed if that transaction fails: nothing leaves
  without its record.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flywheel_assets.platform.warehouse import Warehouse, load_sql

ACTION = "export_purchase_likelihood"
FORMATS = {".csv": "csv", ".parquet": "parquet"}


class ExportRefused(Exception):
    """The export cannot or may not run; nothing was written."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    sha256: str
    model_version: str
    actor: str


def export_scores(
    wh: Warehouse, day: dt.date, out: Path, *, actor: str, why: str, now: dt.datetime
) -> ExportResult:
    """Write ``day``'s purchase_likelihood rows to ``out`` (.csv or .parquet) and audit it."""
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ExportRefused(f"{out}: the file must end in .csv or .parquet")
    if not why.strip():
        raise ExportRefused("say why the scores leave the warehouse (--why): it is audited")
    with wh.begin() as conn:
        postgres = wh.dialect == "postgresql"
        login = (
            str(wh.scalar(conn, load_sql("platform/admin/current_login")))
            if postgres
            else getpass.getuser()
        )
        if postgres and not wh.scalar(conn, load_sql("likelihood/can_read_scores")):
            raise ExportRefused(
                f"{login} may not read purchase_likelihood (it holds user pseudonyms): run the "
                "export as a login in the owner or training role, or have an administrator "
                "grant it; nothing was exported"
            )
        rows = wh.read_partition(conn, "purchase_likelihood", day)
    if rows.empty:
        raise ExportRefused(
            f"no purchase likelihood for {day}: materialise purchase_likelihood for that day"
        )
    rows = rows.sort_values(["decile", "p_30d", "user_id"], ascending=[True, False, True])
    data = _encode(rows.reset_index(drop=True), fmt)
    sha = hashlib.sha256(data).hexdigest()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    version = str(rows["model_version"].iloc[0])
    placed = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # The record and the file go together: the rename happens inside the transaction
        # that writes the audit row, so a failed record leaves no new file, and a file in
        # place means its record is being committed.
        with wh.begin() as conn:
            wh.run(
                conn,
                "platform/audit/insert_audit",
                logged_at=now,
                actor=actor,
                action=ACTION,
                subject=f"purchase_likelihood {day}",
                details=json.dumps(
                    {
                        "day": str(day),
                        "login": login,
                        "rows": len(rows),
                        "file": str(out.resolve()),
                        "format": fmt,
                        "sha256": sha,
                        "model_version": version,
                    },
                    sort_keys=True,
                ),
                why=why,
            )
            os.replace(tmp, out)
            placed = True
    except BaseException:
        if placed:  # the commit failed after the rename: no file without its record
            out.unlink(missing_ok=True)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(out, len(rows), sha, version, actor)


def _encode(rows: pd.DataFrame, fmt: str) -> bytes:
    frame = rows[["dt", "user_id", "p_7d", "p_30d", "decile", "model_version"]]
    if fmt == "csv":
        return frame.to_csv(index=False).encode()
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()
