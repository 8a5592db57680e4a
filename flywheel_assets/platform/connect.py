"""Opening the configured warehouse, the same way for the assets, the CLI and Dask workers."""

from __future__ import annotations

from collections.abc import Callable

from flywheel_assets.platform.governance import Roles
from flywheel_assets.platform.settings import PathSettings, WarehouseSettings
from flywheel_assets.platform.warehouse import Warehouse, WarehouseError

# Warehouses migrated by this process (the embedded default migrates on first use, once).
_MIGRATED: set[str] = set()


def warehouse_url(
    settings: WarehouseSettings | None = None, paths: PathSettings | None = None
) -> str:
    """FLYWHEEL_WAREHOUSE_URL, else the embedded DuckDB file in FLYWHEEL_HOME."""
    settings = settings or WarehouseSettings.resolve()
    return (paths or PathSettings.resolve()).paths(settings.url).warehouse_url


def open_warehouse(
    settings: WarehouseSettings | None = None,
    *,
    stage_role: Callable[[Roles], str | None] | None = None,
    url: str | None = None,
) -> Warehouse:
    """The warehouse with its schema current. With least-privilege roles
    (FLYWHEEL_WAREHOUSE_ROLES) each transaction acts as ``stage_role(roles)`` (None: as the login
    itself) and the schema must already be migrated; without roles a missing schema is created
    on first use unless FLYWHEEL_AUTO_MIGRATE=false. Raises WarehouseError saying what to do."""
    settings = settings or WarehouseSettings.resolve()
    wh = Warehouse(url or warehouse_url(settings))
    try:
        if settings.roles:
            roles = Roles(settings.roles)
            wh.uses_roles = True
            if stage_role is not None:
                wh.session_role = lambda: stage_role(roles)
        if settings.roles or not settings.auto_migrate:
            require_current_schema(wh)
        elif wh.url not in _MIGRATED:
            wh.migrate()
            _MIGRATED.add(wh.url)
    except WarehouseError:
        wh.dispose()
        raise
    return wh


def require_current_schema(wh: Warehouse) -> None:
    pending = wh.pending_migrations()
    if pending:
        raise WarehouseError(
            f"the warehouse schema is behind this code: {len(pending)} migration(s) pending "
            f"({', '.join(m.version for m in pending[:5])}{', ...' if len(pending) > 5 else ''}). "
            "Run `flywheel migrate` (as the schema owner), then re-run."
        )
