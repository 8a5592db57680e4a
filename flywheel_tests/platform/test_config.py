"""The settings mechanism: one precedence rule (given > environment > default), typed values,
errors that name the variable, secrets kept out of what is shown; and the README's table of
every FLYWHEEL_* variable, checked against the declarations and the code."""

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from flywheel_assets.platform.config import (
    Settings,
    SettingsError,
    all_settings,
    all_variables,
    markdown_table,
    require,
    setting,
)

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Example(Settings):
    stage = "test"

    days: int = setting(14, "FLYWHEEL_EXAMPLE_DAYS", "days")
    share: float = setting(0.5, "FLYWHEEL_EXAMPLE_SHARE", "a share")
    flag: bool = setting(False, "FLYWHEEL_EXAMPLE_FLAG", "a switch")
    name: str | None = setting(None, "FLYWHEEL_EXAMPLE_NAME", "a name")
    token: str | None = setting(None, "FLYWHEEL_EXAMPLE_TOKEN", "a secret", secret=True)

    def validate(self) -> None:
        require(0 < self.share < 1, "FLYWHEEL_EXAMPLE_SHARE", "must be in (0, 1)")


def test_given_beats_environment_beats_default() -> None:
    env = {"FLYWHEEL_EXAMPLE_DAYS": "21", "FLYWHEEL_EXAMPLE_SHARE": "0.25"}
    s = Example.resolve({"days": 7}, environ=env)
    assert (s.days, s.share, s.flag, s.name) == (7, 0.25, False, None)
    assert Example.resolve(environ={}) == Example()
    # None means "not given" (an unset run-config field), so the environment applies.
    assert Example.resolve({"days": None}, environ=env).days == 21
    # An empty variable is unset, not an empty value.
    assert Example.resolve(environ={"FLYWHEEL_EXAMPLE_NAME": "  "}).name is None


def test_values_are_typed_and_errors_name_the_variable() -> None:
    s = Example.resolve(environ={"FLYWHEEL_EXAMPLE_FLAG": "Yes", "FLYWHEEL_EXAMPLE_DAYS": " 3 "})
    assert s.flag is True and s.days == 3
    with pytest.raises(SettingsError, match="FLYWHEEL_EXAMPLE_DAYS='three' is not a valid int"):
        Example.resolve(environ={"FLYWHEEL_EXAMPLE_DAYS": "three"})
    with pytest.raises(SettingsError, match="FLYWHEEL_EXAMPLE_FLAG"):
        Example.resolve(environ={"FLYWHEEL_EXAMPLE_FLAG": "maybe"})
    with pytest.raises(SettingsError, match="FLYWHEEL_EXAMPLE_SHARE: must be in"):
        Example.resolve(environ={"FLYWHEEL_EXAMPLE_SHARE": "2"})
    with pytest.raises(SettingsError, match="days=True"):
        Example.resolve({"days": True}, environ={})
    with pytest.raises(SettingsError, match="no setting"):
        Example.resolve({"dayz": 3}, environ={})
    # a run-config string for a number is parsed like the variable would be
    assert Example.resolve({"share": "0.75"}, environ={}).share == 0.75


def test_secrets_are_not_shown() -> None:
    s = Example.resolve(environ={"FLYWHEEL_EXAMPLE_TOKEN": "s3cret"})
    assert s.token == "s3cret"
    assert "token" not in s.public() and "s3cret" not in repr(s.public())
    assert "s3cret" not in repr(s) and "s3cret" not in str(s)


def test_every_stage_declares_distinct_variables_with_defaults_that_validate() -> None:
    names = [v.env for v in all_variables()]
    assert len(names) == len(set(names)), "a variable is declared twice"
    for cls in all_settings():
        assert cls.stage, cls
        cls.resolve(environ={})  # the defaults are valid


def _readme_variables() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(FLYWHEEL_[A-Z0-9_]+)`", section))


def test_the_readme_table_lists_every_declared_variable_and_no_other() -> None:
    declared = {v.env for v in all_variables()}
    readme = _readme_variables()
    assert not declared - readme, (
        f"missing from README's Configuration table: {sorted(declared - readme)}; paste the "
        "output of `python -m flywheel_assets.platform.config` there"
    )
    assert not readme - declared, f"README lists undeclared variables: {sorted(readme - declared)}"
    assert markdown_table() in (ROOT / "README.md").read_text(), (
        "README's table is not the generated one: paste `python -m flywheel_assets.platform.config`"
    )


def _code_variable_names() -> dict[str, list[str]]:
    """FLYWHEEL_* names the package's code spells, and names it builds at run time."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "flywheel_assets").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for name in re.findall(r"\bFLYWHEEL_[A-Z0-9_]*[A-Z0-9]\b", node.value):
                    found.setdefault(name, []).append(where)
            elif isinstance(node, ast.JoinedStr) and node.values:
                first = node.values[0]
                if (
                    isinstance(first, ast.Constant)
                    and str(first.value).endswith("FLYWHEEL_")
                    and len(node.values) > 1
                ):
                    found.setdefault("FLYWHEEL_<built at run time>", []).append(where)
    return found


def test_the_code_reads_only_declared_variables() -> None:
    declared = {v.env for v in all_variables()}
    undeclared = {k: v for k, v in _code_variable_names().items() if k not in declared}
    assert not undeclared, f"variables the code names but no setting declares: {undeclared}"


def test_only_the_settings_mechanism_reads_the_environment() -> None:
    allowed = {
        "flywheel_assets/platform/config.py",  # the one rule
    }
    readers = []
    for path in sorted((ROOT / "flywheel_assets").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            # os.environ.get(...), os.getenv(...), os.environ[...] in a load context
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                f = node.func
                if f.attr == "getenv" or (
                    f.attr == "get"
                    and isinstance(f.value, ast.Attribute)
                    and f.value.attr == "environ"
                ):
                    readers.append(f"{rel}:{node.lineno}")
            elif (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Load)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "environ"
            ):
                readers.append(f"{rel}:{node.lineno}")
    readers = [r for r in readers if r.split(":")[0] not in allowed]
    assert not readers, f"environment read outside the settings: {readers}"
