"""What the commands share: the configured warehouse and settings, or a clear exit."""

from __future__ import annotations

import argparse
from typing import Any


def require_embedded_warehouse(url: str) -> None:
    """A command that only reads (status, history, model) on an embedded home with no
    warehouse yet exits saying so, instead of creating an empty one or failing deep inside
    the driver."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "duckdb" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        if not path.exists():
            raise SystemExit(
                f"flywheel: no warehouse at {path}: nothing has run on this home yet. "
                "Run `flywheel demo`, or point FLYWHEEL_HOME at a home "
                "(`source <home>/flywheel.env` for a demo home)."
            )


def open_warehouse_or_exit(*, reading: bool = False):  # noqa: ANN201 - a Warehouse
    """The configured warehouse, its schema current (created on first use on the embedded
    default; with least-privilege roles it must have been migrated by `flywheel migrate`).
    ``reading``: a command that only reads exits when an embedded home has no warehouse."""
    from flywheel_assets.platform.config import SettingsError
    from flywheel_assets.platform.connect import open_warehouse, warehouse_url
    from flywheel_assets.platform.warehouse import WarehouseError

    try:
        if reading:
            require_embedded_warehouse(warehouse_url())
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


def compact_table(title: str) -> Any:
    """A table for 80 columns and pipes (what rich assumes there): a rule under the header, no
    borders. Callers keep its cells short; long text goes in ``paragraphs``."""
    from rich import box
    from rich.table import Table

    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)


def paragraphs(items: list[tuple[str, str]]) -> Any:
    """Labelled paragraphs (a day and its reason): the text wraps in its own column, so it
    reads as a paragraph at any width."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, text in items:
        # Text, not markup: a reason may hold "[...]" (a person's rollback reason, an interval)
        grid.add_row(Text(label), Text(text))
    return grid


def add_world_argument(parser: argparse.ArgumentParser) -> None:
    """``--world``: which simulated shop plays (``simulation.simulator.WORLDS``)."""
    parser.add_argument(
        "--world",
        choices=["dynamic", "static"],
        default="dynamic",
        help="dynamic: sessions come for a category only their own clicks reveal, so "
        "real-time features pay; static: the original shop, without intent "
        "(docs/realtime.md)",
    )
