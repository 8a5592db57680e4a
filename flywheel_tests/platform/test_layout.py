"""The layout's promises (docs/architecture.md), checked so a change cannot quietly undo them:
every subpackage ships in the wheel, the package's top level stays small, the Dagster glue
stays thin, and domain modules do not import the glue."""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "flywheel_assets"


def test_every_subpackage_is_in_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in PACKAGE.rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    data = config["package-data"]
    assert "gx_suites/*.json" in data["flywheel_assets.quality"]
    assert "instance/*.yaml" in data["flywheel_assets"]
    assert any((PACKAGE / "quality" / "gx_suites").glob("*.json"))


def test_the_top_level_holds_only_the_entry_points() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 6, top


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_domain_modules_never_import_the_dagster_glue() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("defs",) or rel.name == "definitions.py":
            continue
        glue = {m for m in _imports(path) if m.startswith("flywheel_assets.defs")}
        # The demo drives the cycle through Dagster on purpose (it is the user's first run).
        if glue and rel.parts[0] != "simulation":
            offenders.append(f"{rel}: {sorted(glue)}")
    assert not offenders, offenders


def test_the_dagster_glue_stays_thin() -> None:
    # An asset or check reads, calls one domain function, writes and reports: when a function
    # under defs/ outgrows this, its logic belongs in the stage's domain package.
    long = []
    for path in sorted((PACKAGE / "defs").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno - start + 1 > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert not long, f"functions over 60 lines (decorators included): {long}"
