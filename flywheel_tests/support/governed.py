"""A migrated PostgreSQL warehouse with its own least-privilege roles, for the tests that
act as those roles (the ``governed`` fixture in flywheel_tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from flywheel_assets.platform.governance import STAGES, Roles, apply_grants
from flywheel_assets.platform.warehouse import Warehouse


@dataclass
class Governed:
    admin_url: str
    pipeline_url: str
    reader_url: str
    roles: Roles


def login_url(admin_url: str, user: str) -> str:
    return sa.engine.make_url(admin_url).set(username=user).render_as_string(hide_password=False)


@contextmanager
def governed_warehouse(pg_database: str) -> Iterator[Governed]:
    """A migrated warehouse with its own roles (a unique prefix: roles are server-wide and
    tests run in parallel), a pipeline login in the four stage roles and an analyst login."""
    roles = Roles(f"fw{uuid.uuid4().hex[:8]}")
    pipeline, reader = f"{roles.prefix}_pipeline", f"{roles.prefix}_reader"
    admin = Warehouse(pg_database)
    with admin.begin() as conn:
        for login in (pipeline, reader):
            conn.execute(sa.text(f"CREATE ROLE {login} LOGIN"))
    try:
        admin.migrate(applied_by="test admin")
        apply_grants(
            admin,
            roles,
            actor="test admin",
            why="least privilege for the test",
            logins={pipeline: list(STAGES), reader: ["analyst"]},
        )
        yield Governed(
            pg_database, login_url(pg_database, pipeline), login_url(pg_database, reader), roles
        )
    finally:
        admin.dispose()
        drop_roles(pg_database, [*roles.names().values(), pipeline, reader])


def drop_roles(admin_url: str, names: list[str]) -> None:
    """Roles are server-wide: drop what a test created (its database goes with the fixture)."""
    admin = Warehouse(admin_url)
    with admin.begin() as conn:
        for name in names:
            if conn.execute(
                sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": name}
            ).first():
                conn.execute(sa.text(f"REASSIGN OWNED BY {name} TO CURRENT_USER"))
                conn.execute(sa.text(f"DROP OWNED BY {name}"))
    # Sessions of the logins must end before their roles can go.
    with admin.begin() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = ANY(:names) AND pid <> pg_backend_pid()"
            ),
            {"names": names},
        )
    with admin.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))
    admin.dispose()
