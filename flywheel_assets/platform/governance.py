"""Least privilege on a PostgreSQL warehouse: the roles, what each stage may touch, and the
audit trail of every change to them (docs/security.md).

Six group roles (no login) named ``<prefix>_<kind>``:

- ``owner`` owns every table: migrations run as it, and only it may rewrite history;
- ``ingestion`` writes raw and accepted events, catalog, users and quarantine;
- ``transformation`` reads accepted events and writes features and training sets;
- ``training`` reads features and writes the registry, evaluations and decisions;
- ``serving`` reads features and the registry, writes nothing;
- ``analyst`` reads masked views in the ``analyst`` schema only.

The pipeline's login is a member of the four stage roles. With ``FLYWHEEL_WAREHOUSE_ROLES``
set to the prefix, every warehouse transaction of an asset (or its checks) acts as that asset's
stage role only (``SET LOCAL ROLE``), so a bug or an injected string in one stage cannot touch
another stage's tables. Outside an asset (sensors, the CLI) the login acts with its own rights.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from flywheel_assets.platform.warehouse import (
    SQL_DIR,
    Warehouse,
    WarehouseError,
    _ident,
    load_sql,
    split_statements,
)

ROLES_ENV = "FLYWHEEL_WAREHOUSE_ROLES"
STAGES = ("ingestion", "transformation", "training", "serving")
KINDS = ("owner", *STAGES, "analyst")
GOVERNANCE_DIR = SQL_DIR / "platform" / "governance"
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")

# Asset group -> the stage role its steps act as; a few assets sit in another stage's group.
GROUP_STAGE = {
    "ingestion": "ingestion",
    "kafka": "ingestion",
    "quality": "ingestion",
    "features": "transformation",
    "reporting": "transformation",
    "training": "training",
    "evaluation": "training",
    "promotion": "training",
    "forecasting": "training",
    "likelihood": "training",
    "serving": "serving",
}
ASSET_STAGE = {
    "training_examples": "transformation",  # a training set: built from features
    "served_requests": "ingestion",  # loads the ranking service's request log
}


# Plain ops (not assets) that touch the warehouse, by op name.
OP_STAGE = {"rollback_op": "training"}  # moves the champion alias, writes the audit trail


class GovernanceError(WarehouseError):
    """A least-privilege setup problem, with what to do about it."""


@dataclass(frozen=True)
class Roles:
    """The role names of one deployment (several deployments can share a server)."""

    prefix: str = "flywheel"

    def __post_init__(self) -> None:
        if not _ROLE.match(self.prefix):
            raise GovernanceError(
                f"role prefix {self.prefix!r} must be lower-case letters, digits and _ "
                "(it becomes part of role names, which SQL cannot take as bound parameters)"
            )

    def name(self, kind: str) -> str:
        if kind not in KINDS:
            raise GovernanceError(f"no role kind {kind!r}: one of {KINDS}")
        return f"{self.prefix}_{kind}"

    def names(self) -> dict[str, str]:
        return {kind: self.name(kind) for kind in KINDS}


def stage_of(asset_name: str, group: str | None) -> str:
    """The stage role an asset's warehouse work acts as."""
    stage = ASSET_STAGE.get(asset_name) or GROUP_STAGE.get(group or "")
    if stage is None:
        # A new asset group must be given a stage here; failing beats running with every right.
        raise GovernanceError(
            f"asset {asset_name!r} in group {group!r} has no stage role: add its group to "
            "governance.GROUP_STAGE"
        )
    return stage


def op_stage(op_name: str) -> str:
    """The stage role a plain op's warehouse work acts as."""
    if op_name not in OP_STAGE:
        raise GovernanceError(f"op {op_name!r} has no stage role: add it to governance.OP_STAGE")
    return OP_STAGE[op_name]


def governance_files() -> list[Path]:
    return sorted(GOVERNANCE_DIR.glob("*.sql"))


_CREATES = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)",
    re.IGNORECASE,
)


def flywheel_relations() -> set[str]:
    """The tables and views flywheel's migrations create (every dialect's): the only ones
    `flywheel grants` touches, so other applications' tables in the schema are left alone."""
    names: set[str] = set()
    for folder in SQL_DIR.glob("schema*"):
        for path in folder.glob("*.sql"):
            names.update(m.group(1).lower() for m in _CREATES.finditer(path.read_text()))
    return names


def render(path: Path, roles: Roles, schema: str = "public", tables: list[str] = ()) -> list[str]:
    """A governance file's statements with role, schema and table names put in (each checked
    to be a plain identifier first)."""
    values = {**roles.names(), "schema": _ident(schema), "tables": ", ".join(map(_ident, tables))}
    return split_statements(path.read_text().format(**values))


def apply_grants(
    wh: Warehouse, roles: Roles, actor: str, why: str, logins: dict[str, list[str]] | None = None
) -> dict[str, object]:
    """Create the missing roles, hand every table to the owner role, apply `sql/platform/governance`
    and record it all in the audit trail, in one transaction. Idempotent: re-run after each
    migration so new tables get their grants. ``logins`` maps existing login roles to the
    role kinds they become members of (e.g. {"flywheel_pipeline": ["ingestion", ...]}; the
    login that runs `flywheel migrate` gets ["owner"]). On a database not migrated yet only
    the roles, members and the owner's schema rights are applied: migrate, then re-run.

    Run as an administrator that may create roles and owns the database (or a superuser)."""
    if wh.dialect != "postgresql":
        raise GovernanceError(
            "roles are a PostgreSQL feature: the embedded DuckDB warehouse is one file owned by "
            "one user (protect it with file permissions and, optionally, encryption)"
        )
    if not why.strip():
        raise GovernanceError("a grants change needs a reason (--why): it goes to the audit log")
    names = roles.names()
    created: list[str] = []
    reowned: list[str] = []
    with wh.begin() as conn:
        conn.execute(sa.text(load_sql("platform/migrations/lock_postgresql")))
        for role in names.values():
            if not wh.scalar(conn, load_sql("platform/admin/role_exists"), role=role):
                conn.execute(sa.text(f"CREATE ROLE {role} NOLOGIN"))
                created.append(role)
        # The administrator acts as the owner to hand tables over and to grant on them.
        if not wh.scalar(conn, load_sql("platform/admin/has_role_rights"), role=names["owner"]):
            conn.execute(sa.text(f"GRANT {names['owner']} TO CURRENT_USER"))
        # Before the first migration there are no tables yet: the roles, their members and the
        # owner's right to create (000_owner.sql) come first, so the schema is created by the
        # owner role; the tables' grants follow when this is re-run after `flywheel migrate`.
        schema_ready = bool(
            wh.scalar(conn, load_sql("platform/migrations/has_table"), table="schema_migrations")
        )
        schema = str(wh.scalar(conn, load_sql("platform/admin/current_schema")))
        ours = flywheel_relations()
        tables = [
            str(r.table_name)
            for r in conn.execute(sa.text(load_sql("platform/admin/flywheel_tables"))).fetchall()
            if r.schema_name == schema and r.table_name in ours
        ]
        if schema_ready:
            reowned += _hand_to_owner(conn, names["owner"], schema, ours)
        applied = []
        for path in governance_files():
            if not schema_ready and not path.name.startswith("000_"):
                continue
            for statement in render(path, roles, schema, tables):
                conn.execute(sa.text(statement))
            applied.append(f"{path.name}:{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}")
        # The analysts' views were just (re)created by the administrator: the owner owns them
        # too, and they read the tables with the owner's rights.
        if schema_ready:
            _hand_to_owner(conn, names["owner"], schema, ours)
        added: dict[str, list[str]] = {}
        for login, kinds in (logins or {}).items():
            login_role = Roles(login).prefix  # validated like a prefix: a plain identifier
            if not wh.scalar(conn, load_sql("platform/admin/role_exists"), role=login_role):
                raise GovernanceError(
                    f"login {login_role!r} does not exist: create it with its password first "
                    f"(CREATE ROLE {login_role} LOGIN PASSWORD ...), then re-run"
                )
            for kind in kinds:
                conn.execute(sa.text(f"GRANT {roles.name(kind)} TO {login_role}"))
            added[login_role] = list(kinds)
        members = conn.execute(
            sa.text(load_sql("platform/admin/role_members")), {"names": list(names.values())}
        ).fetchall()
        details = {
            "schema_ready": schema_ready,
            "roles": names,
            "created": created,
            "tables_handed_to_owner": reowned,
            "files": applied,
            "members_added": added,
            # The whole membership as it now stands, so the trail shows who may do what even
            # where roles were changed by hand in between.
            "members": sorted(
                {f"{m.member} in {m.role_name} (granted by {m.grantor})" for m in members}
            ),
        }
        if schema_ready:
            Warehouse.run(
                conn,
                "platform/audit/insert_audit",
                logged_at=_now(),
                actor=actor,
                action="grants",
                subject=f"roles {roles.prefix}_*",
                details=json.dumps(details, sort_keys=True),
                why=why,
            )
        # Before the schema exists there is no audit table yet: the next run, after
        # `flywheel migrate`, records the whole state, these roles and members included.
    return details


def _hand_to_owner(conn: sa.Connection, owner: str, schema: str, ours: set[str]) -> list[str]:
    """Flywheel's tables and views in ``schema`` and everything in schema analyst (which
    flywheel's governance creates) to the owner role; nothing else."""
    moved = []
    for row in conn.execute(sa.text(load_sql("platform/admin/flywheel_tables"))).fetchall():
        mine = row.schema_name == "analyst" or (
            row.schema_name == schema and row.table_name in ours
        )
        if row.owner == owner or not mine:
            continue
        what = "VIEW" if row.kind == "v" else "TABLE"
        name = f"{_ident(row.schema_name)}.{_ident(row.table_name)}"
        conn.execute(sa.text(f"ALTER {what} {name} OWNER TO {owner}"))
        moved.append(name)
    return moved


def _now() -> dt.datetime:  # naive UTC, as the warehouse stores timestamps
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def record_configuration(conn: sa.Connection, settings: dict[str, object], actor: str) -> bool:
    """Append the effective configuration to the audit trail when it differs from the last
    one recorded (who ran with what, from when); returns whether it changed. ``settings``
    must hold no secrets: they never go to the warehouse."""
    details = json.dumps(settings, sort_keys=True, default=str)
    last = conn.execute(sa.text(load_sql("platform/audit/last_audit")), {"action": "configuration"})
    row = last.fetchone()
    if row is not None and row.details == details:
        return False
    Warehouse.run(
        conn,
        "platform/audit/insert_audit",
        logged_at=_now(),
        actor=actor,
        action="configuration",
        subject="effective settings of the cycle",
        details=details,
        why="the settings differ from the last ones recorded",
    )
    return True
