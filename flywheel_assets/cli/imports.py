"""`flywheel import orders FILE`: a shop's order history, one export, into its days."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from flywheel_assets.cli.common import settings_or_exit


def _import_orders(args: argparse.Namespace) -> int:
    from flywheel_assets.ingestion.contract import FieldMap
    from flywheel_assets.ingestion.field_maps import FieldMapError, load_field_maps
    from flywheel_assets.ingestion.imports import ExportError, plan_import, write_import
    from flywheel_assets.ingestion.landing import LandingFileError
    from flywheel_assets.ingestion.settings import IngestionSettings
    from flywheel_assets.platform.clock import utcnow
    from flywheel_assets.platform.settings import CycleSettings, FlywheelPaths

    config = settings_or_exit(IngestionSettings)
    try:
        field_map: FieldMap = load_field_maps(args.field_map or config.field_map)["orders"]
    except FieldMapError as exc:
        print(f"flywheel: {exc}", file=sys.stderr)
        return 2
    landing = FlywheelPaths.from_env().landing_dir
    first_partition = settings_or_exit(CycleSettings).partition_start
    try:
        plan = plan_import(Path(args.file), field_map)
        result = write_import(
            plan,
            landing,
            today=utcnow().date(),
            first_partition=dt.date.fromisoformat(first_partition),
        )
    except (LandingFileError, ExportError) as exc:
        print(f"import refused, nothing written: {exc}", file=sys.stderr)
        return 1
    print(
        f"{plan.export}: {plan.rows_read:,} lines; {sum(len(f) for f in plan.days.values()):,} "
        f"order lines on {len(plan.days)} days ({plan.first_day} to {plan.last_day}); "
        f"{len(plan.undated):,} without a readable order time and {len(plan.unreadable):,} "
        f"unreadable lines go to {result.day_of_rest} for quarantine"
    )
    print(f"wrote {len(result.files)} landing files under {landing / 'orders'}")
    days = f"{result.ingest_from.isoformat()}...{result.ingest_to.isoformat()}"
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "flywheel_assets.definitions",
        "--select",
        "orders",
        "--partition-range",
        days,
        # The import prints its own summary; the run's step log stays in the instance (the UI).
        "--config-json",
        '{"loggers": {"console": {"config": {"log_level": "WARNING"}}}}',
    ]
    if args.no_ingest:
        print("ingest them in one run with:\n  dagster " + " ".join(command[3:-2]))
        return 0
    print(f"ingesting {days} in one run of the orders asset (it shows in the Dagster UI)")
    done = subprocess.run(command, env=os.environ.copy(), check=False)
    if done.returncode != 0:
        print(
            "the orders run failed (see its log above or in the Dagster UI); the landing files "
            "are written: fix the cause and re-run the import, or run:\n  dagster asset "
            f"materialize -m flywheel_assets.definitions --select orders --partition-range {days}",
            file=sys.stderr,
        )
        return 1
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="load a shop's history from one export (orders: CSV, JSONL or Parquet)",
        description=(
            "Split an export of order lines by the day each was ordered into the landing "
            "folder, then ingest those days in one run. Importing the same file again changes "
            "nothing (docs/orders.md)."
        ),
    )
    what = p.add_subparsers(dest="what", required=True)
    o = what.add_parser("orders", help="an export of order lines")
    o.add_argument("file", help="the export: .csv, .jsonl/.ndjson/.json (.gz allowed), .parquet")
    o.add_argument(
        "--field-map",
        help="a field-map file for the export's own column names (default FLYWHEEL_FIELD_MAP)",
    )
    o.add_argument(
        "--no-ingest",
        action="store_true",
        help="only write the landing files and print the command that ingests them",
    )
    o.set_defaults(func=_import_orders)
