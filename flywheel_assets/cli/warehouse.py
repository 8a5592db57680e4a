"""`flywheel migrate`, `flywheel encrypt-warehouse`, `flywheel grants`: the warehouse itself."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flywheel_assets.cli.common import settings_or_exit, warehouse_url_arg


def _migrate(args: argparse.Namespace) -> int:
    import getpass

    from flywheel_assets.platform.governance import Roles
    from flywheel_assets.platform.settings import WarehouseSettings
    from flywheel_assets.platform.warehouse import Warehouse, WarehouseError

    wh = Warehouse(warehouse_url_arg(args))
    try:
        if args.status:
            with wh.begin() as conn:
                applied = wh.applied_migrations(conn)
            pending = wh.pending_migrations()
            print(f"applied: {len(applied)}; pending: {len(pending)}")
            for m in pending:
                print(f"  pending {m.version}")
            return 1 if pending else 0
        prefix = settings_or_exit(WarehouseSettings).roles
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

    settings = settings_or_exit(WarehouseSettings)
    key = settings.encryption_key
    url = sa.engine.make_url(warehouse_url_arg(args))
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
    wh = Warehouse(warehouse_url_arg(args))
    try:
        roles = Roles(args.prefix or settings_or_exit(WarehouseSettings).roles or "flywheel")
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


def add_parser(sub: argparse._SubParsersAction) -> None:
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
