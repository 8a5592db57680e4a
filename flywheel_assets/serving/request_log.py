"""The ranking service's request log: one JSON object per ranking, written by ``flywheel
serve`` to ``FLYWHEEL_LANDING_DIR/requests/dt=D/`` (``ranking_service.py``), loaded into
``served_requests`` by the asset of that name.

Fields: request_id, served_at, user_id, session_id, model_version, variant, experiment_id,
feature_dt, k, epsilon, candidates (a list, or null when the whole catalog was ranked),
latency_ms. The file is the service's own output, so a line that does not parse or lacks a
field is a fault: it is counted by reason (the asset's metadata and a warning), not loaded.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flywheel_assets.ingestion.landing import list_landing_files
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import Warehouse

REQUIRED = ("request_id", "served_at", "user_id", "model_version", "variant", "k", "epsilon",
            "latency_ms")  # fmt: skip
COLUMNS = [
    "request_id", "served_at", "user_id", "session_id", "model_version", "variant",
    "experiment_id", "feature_dt", "k", "epsilon", "n_candidates", "candidates", "latency_ms",
    "source_file",
]  # fmt: skip


@dataclass
class ParsedLog:
    rows: pd.DataFrame
    rejected: dict[str, int]


def parse_request_log(files: list[Path], pseudonymiser: Pseudonymiser) -> ParsedLog:
    records: list[dict] = []
    rejected: collections.Counter[str] = collections.Counter()
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                rejected["malformed_json"] += 1
                continue
            missing = [f for f in REQUIRED if not isinstance(r, dict) or r.get(f) is None]
            if missing:
                rejected[f"missing:{missing[0]}"] += 1
                continue
            cands = r.get("candidates")
            records.append(
                {
                    **{c: r.get(c) for c in COLUMNS if c in r},
                    "n_candidates": len(cands) if isinstance(cands, list) else None,
                    "candidates": json.dumps(cands) if isinstance(cands, list) else None,
                    "source_file": path.name,
                }
            )
    df = pd.DataFrame(records, columns=COLUMNS)
    if df.empty:
        return ParsedLog(df, dict(rejected))
    dups = int(df.duplicated("request_id", keep="last").sum())
    if dups:
        rejected["duplicate_request_id"] += dups  # the latest line of an id is kept
        df = df.drop_duplicates("request_id", keep="last")
    df["user_id"] = pseudonymiser.series(df["user_id"].astype(str))
    df["served_at"] = pd.to_datetime(df["served_at"], utc=True, errors="coerce").dt.tz_localize(
        None
    )
    df["feature_dt"] = pd.to_datetime(df["feature_dt"], errors="coerce").dt.date
    for col in ("k", "n_candidates"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    for col in ("epsilon", "latency_ms"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    bad = df["served_at"].isna() | df["latency_ms"].isna() | df["k"].isna() | df["epsilon"].isna()
    if bad.any():
        rejected["invalid_value"] += int(bad.sum())
        df = df[~bad]
    return ParsedLog(df.reset_index(drop=True), dict(rejected))


@dataclass(frozen=True)
class LoadedLog:
    files: int
    rows: pd.DataFrame  # the rows loaded into served_requests (without dt)
    rejected: dict[str, int]  # lines not loaded, by reason


def load_request_log(
    wh: Warehouse, landing_dir: Path, day: dt.date, pseudonymiser: Pseudonymiser
) -> LoadedLog:
    """Replace ``day``'s served_requests with the day's request-log files, in one
    transaction."""
    files = list_landing_files(landing_dir, "requests", day)
    parsed = parse_request_log(files, pseudonymiser)
    with wh.begin() as conn:
        wh.delete_partition(conn, "served_requests", day)
        wh.insert_df(conn, "served_requests", parsed.rows.assign(dt=day))
    return LoadedLog(len(files), parsed.rows, parsed.rejected)


def latency_by_variant(rows: pd.DataFrame) -> pd.DataFrame:
    """Requests and served latency (median, 99th percentile, ms) per variant."""
    groups = list(rows.groupby("variant"))
    return pd.DataFrame(
        {
            "variant": [v for v, _ in groups],
            "requests": [len(g) for _, g in groups],
            "p50_ms": [g["latency_ms"].median() for _, g in groups],
            "p99_ms": [g["latency_ms"].quantile(0.99) for _, g in groups],
        }
    )
