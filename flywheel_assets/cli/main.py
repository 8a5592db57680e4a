"""The `flywheel` command line: one module per group of commands, each adding its parsers."""

from __future__ import annotations

import argparse

from flywheel_assets.cli import (
    demo,
    doctor,
    exports,
    imports,
    models,
    quarantine,
    serve,
    status,
    stream,
    warehouse,
)

# In the order `flywheel --help` lists them.
COMMANDS = (demo, imports, exports, quarantine, models, warehouse, status, doctor, serve, stream)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flywheel", description="A data flywheel for e-commerce on Dagster."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
