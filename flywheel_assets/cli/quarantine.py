"""`flywheel quarantine`: list, export and release quarantined events."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from flywheel_assets.cli.common import open_warehouse_or_exit, settings_or_exit


def _quarantine(args: argparse.Namespace) -> int:
    from flywheel_assets.ingestion.field_maps import FieldMapError, load_field_maps
    from flywheel_assets.ingestion.settings import IngestionSettings
    from flywheel_assets.platform.clock import utcnow
    from flywheel_assets.platform.settings import PseudonymSettings
    from flywheel_assets.quality import quarantine

    day = dt.date.fromisoformat(args.day)
    wh = open_warehouse_or_exit()
    try:
        if args.action == "list":
            rows = quarantine.open_rows(wh, day, args.reason)
            counts = rows.groupby(["stage", "reason"]).size().reset_index(name="rows")
            print(f"open quarantined events of {day} (ingestion and Kafka stages):")
            print(counts.to_string(index=False) if len(counts) else "  none")
            return 0
        if args.action == "export":
            n = quarantine.export_rows(wh, day, Path(args.out), args.reason)
            print(
                f"wrote {n} rows to {args.out}; fix them, then: flywheel quarantine release "
                f"--day {day} --file {args.out} --by NAME --why TEXT"
            )
            return 0
        key = settings_or_exit(PseudonymSettings).key
        if not key:
            print(
                "FLYWHEEL_PSEUDONYM_KEY is not set: the release must pseudonymise with the "
                "key ingestion uses",
                file=sys.stderr,
            )
            return 2
        config = settings_or_exit(IngestionSettings)
        try:
            field_map = load_field_maps(config.field_map)["events"]
        except FieldMapError as exc:
            print(f"flywheel: {exc}", file=sys.stderr)
            return 2
        try:
            result = quarantine.release(
                wh,
                day,
                Path(args.file),
                key=key,
                released_by=args.by,
                why=args.why,
                now=utcnow(),
                future_tolerance=config.future_tolerance(),
                max_lateness=config.max_lateness(),
                field_map=field_map,
            )
        except quarantine.ReleaseError as exc:
            print(f"release refused, nothing written: {exc}", file=sys.stderr)
            return 1
        print(
            f"released {result.rows} rows of {day} ({result.release_id}): {result.reasons}. "
            "Now re-materialise the day from raw_events on:\n"
            f"  dagster asset materialize -m flywheel_assets.definitions "
            f"--select 'raw_events*' --partition {day}"
        )
        return 0
    finally:
        wh.dispose()


def add_parser(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser(
        "quarantine",
        help="list, export and release (after fixing) quarantined events of a day",
        description="See docs/quality.md, 'Fixing and releasing quarantined rows'.",
    )
    q.add_argument("action", choices=["list", "export", "release"])
    q.add_argument("--day", required=True, help="the partition (YYYY-MM-DD)")
    q.add_argument("--reason", default=None, help="list/export only rows with this reason")
    q.add_argument("--out", default="quarantine.jsonl", help="export: file to write")
    q.add_argument("--file", default="quarantine.jsonl", help="release: the fixed rows")
    q.add_argument("--by", default="", help="release: who releases (audit log)")
    q.add_argument("--why", default="", help="release: why the rows are now right (audit log)")
    q.set_defaults(func=_quarantine)
