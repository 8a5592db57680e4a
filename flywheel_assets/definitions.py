"""The flywheel code location: every Dagster object under ``flywheel_assets/defs/``, loaded the
way a ``dg`` project loads its defs folder (``[tool.dg]`` in pyproject.toml).

``dagster dev``, ``dagster definitions validate -m flywheel_assets.definitions``, ``dg dev`` and
``dg check defs`` all load this one object.
"""

from __future__ import annotations

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
