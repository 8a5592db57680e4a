"""The `flywheel` command line."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from flywheel_assets.simulation.demo import COLUMNS, run_demo


def _demo(args: argparse.Namespace) -> int:
    home = (
        Path(args.home)
        if args.home
        else Path(".flywheel") / f"demo-seed{args.seed}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    )
    widths = {
        "day": 10,
        "events": 7,
        "quarantined": 11,
        "champion": 18,
        "challenger": 18,
        "decision": 13,
    }

    def fmt(v: object, col: str) -> str:
        w = widths.get(col, 14)
        if isinstance(v, float):
            return f"{v:>{w}.4f}"
        return f"{'-' if v is None else v!s:>{w}}"

    if not args.json:
        print(" ".join(f"{c:>{widths.get(c, 14)}}" for c in COLUMNS), flush=True)

    def on_day(row: dict[str, object]) -> None:
        if args.json:
            print(json.dumps({c: row[c] for c in COLUMNS}), flush=True)
        else:
            print(" ".join(fmt(row[c], c) for c in COLUMNS), flush=True)

    run_demo(
        days=args.days,
        seed=args.seed,
        start=dt.date.fromisoformat(args.start),
        home=home.resolve(),
        fmt=args.format,
        on_day=on_day,
        warehouse_url=args.warehouse_url,
        kafka=args.kafka,
        dagster_storage=args.dagster_storage,
    )
    print(f"done; home: {home.resolve()} (open the UI: see README, 'Open the UI')", file=sys.stderr)
    return 0


def _warehouse():
    """The configured warehouse, its schema current (created on first use on the embedded
    default; with least-privilege roles it must have been migrated by `flywheel migrate`)."""
    from flywheel_assets.platform.config import SettingsError
    from flywheel_assets.platform.connect import open_warehouse
    from flywheel_assets.platform.warehouse import WarehouseError

    try:
        return open_warehouse()
    except (SettingsError, WarehouseError) as exc:
        raise SystemExit(f"flywheel: {exc}") from exc


def _settings(cls):  # noqa: ANN001, ANN202 - any Settings class
    """A stage's settings by the one rule, or exit saying which variable is wrong."""
    from flywheel_assets.platform.config import SettingsError

    try:
        return cls.resolve()
    except SettingsError as exc:
        raise SystemExit(f"flywheel: {exc}") from exc


def _warehouse_url(args: argparse.Namespace) -> str:
    from flywheel_assets.platform.connect import warehouse_url

    return getattr(args, "url", None) or warehouse_url()


def _migrate(args: argparse.Namespace) -> int:
    import getpass

    from flywheel_assets.platform.governance import Roles
    from flywheel_assets.platform.settings import WarehouseSettings
    from flywheel_assets.platform.warehouse import Warehouse, WarehouseError

    wh = Warehouse(_warehouse_url(args))
    try:
        if args.status:
            with wh.begin() as conn:
                applied = wh.applied_migrations(conn)
            pending = wh.pending_migrations()
            print(f"applied: {len(applied)}; pending: {len(pending)}")
            for m in pending:
                print(f"  pending {m.version}")
            return 1 if pending else 0
        prefix = _settings(WarehouseSettings).roles
        owner = Roles(prefix).name("owner") if prefix else None
        actor = args.by or f"{getpass.getuser()} (flywheel migrate)"
        done = wh.migrate(applied_by=actor, owner_role=owner)
    except WarehouseError as exc:
        print(f"flywheel migrate: {exc}", file=sys.stderr)
        return 1
    finally:
        wh.dispose()
    print(f"applied {len(done)} migration(s)" + "".join(f"\n  {v}" for v in done))
    return 0


def _encrypt_warehouse(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from flywheel_assets.platform.settings import WarehouseSettings
    from flywheel_assets.platform.warehouse import (
        ENCRYPTION_KEY_ENV,
        WarehouseError,
        encrypt_duckdb_file,
    )

    settings = _settings(WarehouseSettings)
    key = settings.encryption_key
    url = sa.engine.make_url(_warehouse_url(args))
    if url.get_backend_name() != "duckdb" or not url.database:
        print("flywheel encrypt-warehouse: only the embedded DuckDB file is encrypted here "
              "(PostgreSQL: the server's disk encryption and TLS)", file=sys.stderr)  # fmt: skip
        return 1
    if not key:
        print(f"flywheel encrypt-warehouse: set {ENCRYPTION_KEY_ENV} (the new file's key)",
              file=sys.stderr)  # fmt: skip
        return 1
    source, target = Path(url.database), Path(args.out)
    try:
        encrypt_duckdb_file(source, target, key, settings.duckdb_unsafe_crypto)
    except WarehouseError as exc:
        print(f"flywheel encrypt-warehouse: {exc}", file=sys.stderr)
        return 1
    print(
        f"encrypted copy of {source} written to {target}. Stop every flywheel process, move it "
        f"into place (mv {target} {source}), keep {ENCRYPTION_KEY_ENV} set for every process "
        "from now on, and delete the old file's backups you no longer need."
    )
    return 0


def _grants(args: argparse.Namespace) -> int:
    import getpass

    from flywheel_assets.platform.governance import STAGES, Roles, apply_grants
    from flywheel_assets.platform.settings import WarehouseSettings
    from flywheel_assets.platform.warehouse import Warehouse, WarehouseError

    logins: dict[str, list[str]] = {}
    for spec in args.login or []:
        name, _, kinds = spec.partition("=")
        logins[name] = [k for k in kinds.split(",") if k] if kinds else list(STAGES)
    wh = Warehouse(_warehouse_url(args))
    try:
        roles = Roles(args.prefix or _settings(WarehouseSettings).roles or "flywheel")
        details = apply_grants(
            wh,
            roles,
            actor=args.by or f"{getpass.getuser()} (flywheel grants)",
            why=args.why,
            logins=logins,
        )
    except WarehouseError as exc:
        print(f"flywheel grants: {exc}", file=sys.stderr)
        return 1
    finally:
        wh.dispose()
    print(json.dumps(details, indent=2))
    if not details["schema_ready"]:
        print(
            "the warehouse has no schema yet: roles and members are in place; run "
            "`flywheel migrate` (as a member of the owner role), then `flywheel grants` again",
            file=sys.stderr,
        )
    return 0


def _quarantine(args: argparse.Namespace) -> int:
    from flywheel_assets.ingestion.field_maps import FieldMapError, load_field_maps
    from flywheel_assets.ingestion.settings import IngestionSettings
    from flywheel_assets.platform.clock import utcnow
    from flywheel_assets.platform.settings import PseudonymSettings
    from flywheel_assets.quality import quarantine

    day = dt.date.fromisoformat(args.day)
    wh = _warehouse()
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
        key = _settings(PseudonymSettings).key
        if not key:
            print(
                "FLYWHEEL_PSEUDONYM_KEY is not set: the release must pseudonymise with the "
                "key ingestion uses",
                file=sys.stderr,
            )
            return 2
        config = _settings(IngestionSettings)
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


def _model(args: argparse.Namespace) -> int:
    from flywheel_assets import registry
    from flywheel_assets.training import challenger

    wh = _warehouse()
    try:
        with wh.begin() as conn:
            version = args.version or registry.get_alias(conn, args.alias)
            record = registry.get_model(conn, version) if version else None
        if record is None:
            print(f"no model {version or args.alias!r} in the registry", file=sys.stderr)
            return 1
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

    wh = _warehouse()
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

    wh = _warehouse()
    try:
        with wh.begin() as conn:
            moves = registry.alias_history(conn, args.alias)
    finally:
        wh.dispose()
    if moves.empty:
        print(f"the {args.alias} alias has never moved")
        return 0
    for m in moves.itertuples(index=False):
        day = "" if m.dt is None or m.dt != m.dt else f" [{m.dt}]"
        print(
            f"{m.moved_at}{day} {m.from_version or 'cold-start'} -> {m.to_version or 'none'} "
            f"by {m.moved_by}: {m.reason}"
        )
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    # Workers are separate processes: they read their settings from the environment.
    for var, value in (
        ("FLYWHEEL_SERVE_EPSILON", args.epsilon),
        ("FLYWHEEL_SERVE_SINK", args.sink),
        ("FLYWHEEL_SERVE_RELOAD_SECONDS", args.reload_seconds),
    ):
        if value is not None:
            os.environ[var] = str(value)
    from flywheel_assets.platform.settings import PseudonymSettings
    from flywheel_assets.serving.settings import ServingSettings

    _settings(ServingSettings)  # a wrong FLYWHEEL_SERVE_* fails here, not in every worker
    if not _settings(PseudonymSettings).key:
        print(
            "FLYWHEEL_PSEUDONYM_KEY is not set: the service needs the key ingestion uses, to "
            "find users' features and assign experiment arms",
            file=sys.stderr,
        )
        return 2
    uvicorn.run(
        "flywheel_assets.serving.app:create_app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
    )
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import httpx

    from flywheel_assets.platform.settings import FlywheelPaths
    from flywheel_assets.simulation.live_shop import LiveShopError, simulate_day
    from flywheel_assets.simulation.simulator import ShopSimulator, SimulatorConfig

    config = SimulatorConfig(seed=args.seed)
    if args.sessions:
        config = SimulatorConfig(seed=args.seed, sessions_per_day=args.sessions)
    sim = ShopSimulator(config, start=dt.date.fromisoformat(args.start))
    first = dt.date.fromisoformat(args.from_day) if args.from_day else sim.start
    landing = None if args.no_exports else (
        Path(args.landing_dir) if args.landing_dir else FlywheelPaths.from_env().landing_dir
    )  # fmt: skip
    print(
        f"{'sim day':>10} {'requests':>8} {'events':>7} {'oracle':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7}  versions",
        flush=True,
    )
    with httpx.Client(base_url=args.url.rstrip("/"), timeout=args.timeout) as client:
        try:
            ready = client.get("/readyz")
        except httpx.TransportError as exc:
            print(f"cannot reach {args.url}: {exc}; is `flywheel serve` running?", file=sys.stderr)
            return 2
        if ready.status_code != 200:
            print(f"{args.url} is not ready: {ready.text}", file=sys.stderr)
            return 2
        for i in range(args.days):
            day = first + dt.timedelta(days=i)
            try:
                r = simulate_day(
                    client, sim, day, landing_dir=landing, concurrency=args.concurrency
                )
            except LiveShopError as exc:
                print(f"{day}: {exc}", file=sys.stderr)
                return 1
            versions = ", ".join(f"{v} x{n}" for v, n in r.versions.items())
            print(
                f"{day!s:>10} {r.requests:>8} {r.impressions + r.feedback:>7} "
                f"{r.oracle_share:>7.3f} {r.p50_ms:>7.1f} {r.p99_ms:>7.1f}  {versions}",
                flush=True,
            )
    return 0


def _status(args: argparse.Namespace) -> int:
    from rich.console import Console

    from flywheel_assets.cli.status import render, status_for_home

    today = dt.date.fromisoformat(args.as_of) if args.as_of else dt.datetime.now(dt.UTC).date()
    status = status_for_home(today=today, days=args.days, decisions=args.decisions)
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        render(status, Console())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flywheel", description="A data flywheel for e-commerce on Dagster."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="run the flywheel on the shop simulator, day after day, on a fresh embedded home",
    )
    demo.add_argument("--days", type=int, default=10)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--start", default="2026-01-01", help="first simulated day (YYYY-MM-DD)")
    demo.add_argument(
        "--home", default=None, help="a fresh folder for the demo (default: ./.flywheel/demo-...)"
    )
    demo.add_argument(
        "--format", choices=["jsonl", "csv", "parquet"], default="jsonl", help="landing file format"
    )
    demo.add_argument(
        "--warehouse-url",
        default=None,
        help="an empty warehouse to use instead of DuckDB in the home (e.g. PostgreSQL)",
    )
    demo.add_argument(
        "--kafka",
        action="store_true",
        help="send the events through a Kafka topic (a local Tansu broker) instead of files",
    )
    demo.add_argument(
        "--dagster-storage",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="Dagster's runs and event logs: SQLite in the home, or PostgreSQL as in production "
        "(dagster.production.yaml; server from DAGSTER_PG_HOST, _PORT, _USERNAME, _PASSWORD, _DB)",
    )
    demo.add_argument("--json", action="store_true", help="one JSON object per day on stdout")
    demo.set_defaults(func=_demo)

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

    m = sub.add_parser(
        "model",
        help="show a registered model's lineage, or re-train it from its lineage",
        description="show: parameters, partitions and rows, metrics. reproduce: re-train from "
        "the recorded lineage and compare the SHA-256 (exit 1 if it differs).",
    )
    m.add_argument("action", choices=["show", "reproduce"])
    m.add_argument("version", nargs="?", default=None, help="a model version (default: --alias)")
    m.add_argument("--alias", default="champion", choices=["champion", "challenger"])
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

    mg = sub.add_parser(
        "migrate",
        help="apply the warehouse's pending schema migrations (sql/schema), recorded and checked",
        description="Applies every migration file not yet applied, in order and in one "
        "transaction, recording each with its SHA-256 in schema_migrations; refuses files changed "
        "after they were applied. With FLYWHEEL_WAREHOUSE_ROLES set, new tables belong to the "
        "owner role. Run it before new code runs (docs/deploy.md).",
    )
    mg.add_argument("--url", default=None, help="warehouse URL (default FLYWHEEL_WAREHOUSE_URL)")
    mg.add_argument("--status", action="store_true", help="only list pending migrations")
    mg.add_argument("--by", default=None, help="who (default: the OS user)")
    mg.set_defaults(func=_migrate)

    enc = sub.add_parser(
        "encrypt-warehouse",
        help="copy the embedded DuckDB warehouse into an encrypted file (key from the environment)",
        description="Writes an AES-GCM encrypted copy of the DuckDB warehouse, keyed by "
        "FLYWHEEL_WAREHOUSE_ENCRYPTION_KEY; with the key set, flywheel opens the warehouse "
        "encrypted (docs/security.md).",
    )
    enc.add_argument("--url", default=None, help="warehouse URL (default: the configured one)")
    enc.add_argument("--out", required=True, help="the new encrypted file")
    enc.set_defaults(func=_encrypt_warehouse)

    gr = sub.add_parser(
        "grants",
        help="PostgreSQL: create the least-privilege roles and apply sql/platform/governance",
        description="Creates the roles <prefix>_owner, _ingestion, _transformation, _training, "
        "_serving and _analyst if missing, hands flywheel's tables to the owner role, applies "
        "sql/platform/governance and records it in the audit log. Idempotent: re-run after each "
        "migration. Run as an administrator that may create roles (docs/security.md).",
    )
    gr.add_argument("--url", default=None, help="warehouse URL (default FLYWHEEL_WAREHOUSE_URL)")
    gr.add_argument(
        "--prefix",
        default=None,
        help="role name prefix (default FLYWHEEL_WAREHOUSE_ROLES or flywheel)",
    )
    gr.add_argument(
        "--login",
        action="append",
        help="an existing login role to make a member: NAME (the four stage roles: the "
        "pipeline), NAME=owner (runs flywheel migrate), NAME=analyst, or "
        "NAME=ingestion,transformation; repeatable",
    )
    gr.add_argument("--why", required=True, help="why (kept in the audit trail)")
    gr.add_argument("--by", default=None, help="who (default: the OS user)")
    gr.set_defaults(func=_grants)

    h = sub.add_parser("history", help="every move of the champion (or challenger) alias")
    h.add_argument("--alias", default="champion", choices=["champion", "challenger"])
    h.set_defaults(func=_history)

    st = sub.add_parser(
        "status",
        help="what serves, the last decisions, missing or stale days, quarantine, alerts",
    )
    st.add_argument("--days", type=int, default=14, help="days to show (default 14)")
    st.add_argument("--decisions", type=int, default=7, help="decisions to show (default 7)")
    st.add_argument(
        "--as-of", default=None, help="the date to judge staleness by (default today, UTC)"
    )
    st.add_argument("--json", action="store_true", help="the same as one JSON object")
    st.set_defaults(func=_status)

    sv = sub.add_parser(
        "serve",
        help="the ranking service over HTTP (POST /rank, /events; /docs for the API)",
        description="Serves the published champion (and the experiment's challenger for its "
        "share of users), logs impressions and feedback to the landing folder or Kafka, and "
        "switches models without a restart when the pipeline publishes new ones. Needs "
        "FLYWHEEL_HOME and FLYWHEEL_PSEUDONYM_KEY (README, 'Serving').",
    )
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--workers", type=int, default=1, help="processes (one per core)")
    sv.add_argument("--epsilon", type=float, default=None, help="exploration (default 0.05)")
    sv.add_argument("--sink", choices=["landing", "kafka"], default=None)
    sv.add_argument("--reload-seconds", type=float, default=None)
    sv.add_argument("--log-level", default="info")
    sv.set_defaults(func=_serve)

    sm = sub.add_parser(
        "simulate",
        help="drive a running ranking service with the shop simulator over HTTP",
        description="Each simulated day: the shop's catalog and users exports to the landing "
        "folder, one POST /rank per request, the simulated users' feedback to POST /events.",
    )
    sm.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    sm.add_argument("--days", type=int, default=1, help="simulated days to play")
    sm.add_argument("--seed", type=int, default=1)
    sm.add_argument("--start", default="2026-01-01", help="the simulated shop's first day")
    sm.add_argument(
        "--from-day", default=None, help="first simulated day to play (default: --start)"
    )
    sm.add_argument("--sessions", type=int, default=None, help="sessions per day (default 1,300)")
    sm.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    sm.add_argument("--timeout", type=float, default=30.0)
    sm.add_argument(
        "--landing-dir", default=None, help="where exports go (default: FLYWHEEL_LANDING_DIR)"
    )
    sm.add_argument("--no-exports", action="store_true", help="do not write catalog/users exports")
    sm.set_defaults(func=_simulate)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
