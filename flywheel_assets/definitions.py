"""The flywheel code location: every Dagster object under ``flywheel_assets/defs/``, loaded the
way a ``dg`` project loads its defs folder (``[tool.dg]`` in pyproject.toml).

``dagster dev``, ``dagster definitions validate -m flywheel_assets.definitions``, ``dg dev`` and
``dg check defs`` all load this one object.
"""

from __future__ import annotations

import functools
from pathlib import Path

import dagster as dg

PACKAGE_DIR = Path(__file__).resolve().parent


def load_defs(from_project_config: bool | None = None) -> dg.Definitions:
    """Everything under defs/. From a checkout (or an editable install) dg's own loader reads
    [tool.dg] in pyproject.toml; an installed wheel (the container image) has no pyproject.toml,
    so the same folder is loaded from the package itself (``from_project_config=False``)."""
    if from_project_config is None:
        from_project_config = (PACKAGE_DIR.parent / "pyproject.toml").is_file()
    if from_project_config:
        return dg.load_from_defs_folder(path_within_project=PACKAGE_DIR)
    from dagster.components.core.component_tree import ComponentTree

    import flywheel_assets.defs

    return ComponentTree.from_module(
        defs_module=flywheel_assets.defs, project_root=PACKAGE_DIR.parent
    ).build_defs()


@dg.definitions
def defs() -> dg.Definitions:
    return load_defs()


@functools.cache
def loaded() -> dg.Definitions:
    """The code location's definitions, built once per process (for code that is not Dagster's
    own loading: the demo, benchmarks and tests)."""
    return load_defs()


def cycle_assets() -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """The daily cycle's assets and their checks (every group of defs/cycle.py, so not the
    Kafka stream), for ``dg.materialize`` of a day in process."""
    from flywheel_assets.defs.cycle import CYCLE_GROUPS

    d = loaded()
    assets = [
        a
        for a in _unique(d.assets or [])
        if not isinstance(a, dg.AssetChecksDefinition)
        and isinstance(a, dg.AssetsDefinition)
        and set(a.group_names_by_key.values()) <= set(CYCLE_GROUPS)
    ]
    keys = {k for a in assets for k in a.keys}
    checks = [
        c
        for c in _unique([*(d.asset_checks or []), *(d.assets or [])])
        if isinstance(c, dg.AssetChecksDefinition)
        and all(spec.asset_key in keys for spec in c.check_specs)
    ]
    return [*assets, *checks]


def _unique(items: object) -> list:
    seen: dict[int, object] = {}
    for item in items:  # type: ignore[attr-defined]
        seen.setdefault(id(item), item)
    return list(seen.values())
