"""What the commands share: the configured warehouse and settings, or a clear exit."""

from __future__ import annotations

import argparse


def open_warehouse_or_exit():  # noqa: ANN201 - a Warehouse
    """The configured warehouse, its schema current (created on first use on the embedded
    default; with least-privilege roles it must have been migrated by `flywheel migrate`)."""
    from flywheel_assets.platform.config import SettingsError
    from flywheel_assets.platform.connect import open_warehouse
    from flywheel_assets.platform.warehouse import WarehouseError

    try:
        return open_warehouse()
    except (SettingsError, WarehouseError) as exc:
        raise SystemExit(f"flywheel: {exc}") from exc


def settings_or_exit(cls):  # noqa: ANN001, ANN202 - any Settings class
    """A stage's settings by the one rule, or exit saying which variable is wrong."""
    from flywheel_assets.platform.config import SettingsError

    try:
        return cls.resolve()
    except SettingsError as exc:
        raise SystemExit(f"flywheel: {exc}") from exc


def warehouse_url_arg(args: argparse.Namespace) -> str:
    from flywheel_assets.platform.connect import warehouse_url

    return getattr(args, "url", None) or warehouse_url()
