"""The settings mechanism: one precedence rule (given > environment > default), typed values,
errors that name the variable, secrets kept out of what is shown; and the README's table of
every FLYWHEEL_* variable, checked against the declarations and the code."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from flywheel_assets.platform.config import (
    Settings,
    SettingsError,
    all_settings,
    all_variables,
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
