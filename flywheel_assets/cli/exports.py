"""`flywheel export purchase-likelihood`: a day's scores for a campaign, governed and audited."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from pathlib import Path

from flywheel_assets.cli.common import open_warehouse_or_exit


def _export_likelihood(args: argparse.Namespace) -> int:
    from flywheel_assets.likelihood.export import ExportRefused, export_scores
    from flywheel_assets.platform.clock import utcnow

    wh = open_warehouse_or_exit()
    try:
        result = export_scores(
            wh,
            dt.date.fromisoformat(args.day),
            Path(args.out),
            actor=args.by or getpass.getuser(),
            why=args.why,
            now=utcnow(),
        )
    except ExportRefused as exc:
        print(f"export refused: {exc}", file=sys.stderr)
        return 1
    finally:
        wh.dispose()
    print(
        f"wrote {result.rows:,} users' purchase likelihood of {args.day} "
        f"({result.model_version}) to {result.path}; sha256 {result.sha256}; "
        f"recorded in the audit trail as {result.actor}"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export governed data sets (audited)")
    what = p.add_subparsers(dest="what", required=True)
    e = what.add_parser(
        "purchase-likelihood",
        help="a day's p_7d, p_30d and decile per user pseudonym, as CSV or Parquet",
        description=(
            "Writes the day's purchase_likelihood rows (user pseudonyms) to FILE (.csv or "
            ".parquet, readable by its owner only) and records the export in the audit trail. "
            "On PostgreSQL the login must be allowed to read purchase_likelihood."
        ),
    )
    e.add_argument("--day", required=True, help="the scoring day, YYYY-MM-DD")
    e.add_argument("--out", required=True, help="the file to write (.csv or .parquet)")
    e.add_argument("--why", required=True, help="what the export is for (audited)")
    e.add_argument("--by", help="who exports (audited; default: the OS user)")
    e.set_defaults(func=_export_likelihood)
