"""`flywheel model`, `flywheel rollback`, `flywheel history`: models and the champion."""

from __future__ import annotations

import argparse
import json
import sys

from flywheel_assets.cli.common import open_warehouse_or_exit


def _model(args: argparse.Namespace) -> int:
    from flywheel_assets import registry
    from flywheel_assets.training import challenger

    wh = open_warehouse_or_exit(reading=True)
    try:
        with wh.begin() as conn:
            version = args.version or registry.get_alias(conn, args.alias)
            record = registry.get_model(conn, version) if version else None
        if record is None:
            print(f"no model {version or args.alias!r} in the registry", file=sys.stderr)
            return 1
        if args.action == "show" and args.json:
            import dataclasses

            shown = dataclasses.asdict(record)
            spec_json = shown.pop("training_spec_json", None)
            shown["training_spec"] = json.loads(spec_json) if spec_json else None
            print(json.dumps(shown, indent=2, sort_keys=True, default=str))
            return 0
        if args.action == "show":
            spec = json.loads(record.training_spec_json) if record.training_spec_json else None
            print(f"model {record.model_version} (trained for {record.dt})")
            print(f"  artefact   {record.artefact_uri}")
            print(f"  sha256     {record.sha256}")
            print(f"  objective  {record.objective}, label {record.label}")
            print(f"  code       {record.code_version or '-'}")
            print(f"  champion   {record.champion_at_training or '-'} when trained")
            print(f"  warm start {record.base_model_version or 'no (full retrain)'}")
            print(f"  rows       {record.n_train_rows} train, {record.n_valid_rows} validation")
            for part, n in (record.partition_rows or {}).items():
                print(f"    {part}  {n} rows")
            if spec:
                print(f"  spec       {json.dumps(spec, sort_keys=True)}")
            metrics = {k: v for k, v in record.metrics.items() if v is not None}
            print(f"  metrics    {json.dumps(metrics, sort_keys=True, default=str)}")
            return 0
        try:
            result = challenger.reproduce(wh, record.model_version)
        except challenger.LineageError as exc:
            print(f"cannot reproduce: {exc}", file=sys.stderr)
            return 1
        verdict = "identical" if result.matches else "DIFFERENT"
        print(
            f"{record.model_version}: re-trained from its lineage, SHA-256 {result.sha256} "
            f"({verdict}; registered {record.sha256})"
        )
        return 0 if result.matches else 1
    finally:
        wh.dispose()


def _rollback(args: argparse.Namespace) -> int:
    import getpass

    from flywheel_assets import registry
    from flywheel_assets.platform.clock import utcnow
    from flywheel_assets.platform.settings import FlywheelPaths
    from flywheel_assets.serving.pointer import publish_serving_pointer

    wh = open_warehouse_or_exit()
    actor = args.by or f"{getpass.getuser()} (flywheel rollback)"
    try:
        with wh.begin() as conn:
            before, after = registry.rollback(
                conn,
                to_version=None if args.to in (None, "cold-start") else args.to,
                to_cold_start=args.to == "cold-start",
                reason=args.reason,
                actor=actor,
                now=utcnow(),
            )
        pointer = publish_serving_pointer(wh, FlywheelPaths.from_env().home, "rollback")
    except registry.RollbackError as exc:
        print(f"cannot roll back: {exc}", file=sys.stderr)
        return 1
    finally:
        wh.dispose()
    print(
        f"champion: {before or 'cold-start'} -> {after or 'cold-start'} "
        f"(by {actor}: {args.reason}); serving pointer now names {pointer['model_version'] or 'cold-start'}"
    )
    return 0


def _history(args: argparse.Namespace) -> int:
    from flywheel_assets import registry

    wh = open_warehouse_or_exit(reading=True)
    try:
        with wh.begin() as conn:
            moves = registry.alias_history(conn, args.alias)
    finally:
        wh.dispose()
    rows = [
        {
            "moved_at": str(m.moved_at),
            "day": None if m.dt is None else str(m.dt),
            "from": m.from_version or "cold-start",
            "to": m.to_version or "none",
            "by": m.moved_by,
            "reason": m.reason,
        }
        for m in moves.itertuples(index=False)
    ]
    if args.json:
        print(json.dumps({"alias": args.alias, "moves": rows}, indent=2))
        return 0
    if not rows:
        print(f"the {args.alias} alias has never moved")
        return 0
    from rich.console import Console

    from flywheel_assets.cli.common import compact_table, paragraphs

    # As `flywheel status` lays out decisions: short values in a table (one line per move at
    # 80 columns and in a pipe), who and why as a paragraph per move under it.
    console = Console()
    t = compact_table(f"{args.alias} moves")
    for col in ("moved at", "for day", "from", "to"):
        t.add_column(col, no_wrap=True, overflow="ellipsis")
    for r in rows:
        t.add_row(r["moved_at"][:16], r["day"] or "-", r["from"], r["to"])
    console.print(t)
    console.print("who and why:")
    console.print(paragraphs([(r["moved_at"][:16], f"{r['by']}: {r['reason']}") for r in rows]))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser(
        "model",
        help="show a registered model's lineage, or re-train it from its lineage",
        description="show: parameters, partitions and rows, metrics. reproduce: re-train from "
        "the recorded lineage and compare the SHA-256 (exit 1 if it differs).",
    )
    m.add_argument("action", choices=["show", "reproduce"])
    m.add_argument("version", nargs="?", default=None, help="a model version (default: --alias)")
    m.add_argument("--alias", default="champion", choices=["champion", "challenger"])
    m.add_argument("--json", action="store_true", help="show: the registry record as JSON")
    m.set_defaults(func=_model)

    rb = sub.add_parser(
        "rollback",
        help="restore an earlier champion (the previous one, or --to VERSION); serving follows",
        description="Moves the champion alias back, stops the running experiment, republishes "
        "the serving pointer and writes alias_history and the audit log (who, when, why).",
    )
    rb.add_argument("--to", default=None, help="a registered model version, or 'cold-start'")
    rb.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    rb.add_argument("--by", default=None, help="who (default: the OS user)")
    rb.set_defaults(func=_rollback)

    h = sub.add_parser("history", help="every move of the champion (or challenger) alias")
    h.add_argument("--alias", default="champion", choices=["champion", "challenger"])
    h.add_argument("--json", action="store_true", help="the moves as one JSON object")
    h.set_defaults(func=_history)
