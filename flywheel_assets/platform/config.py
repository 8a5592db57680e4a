"""Typed settings with one precedence rule, declared once per setting.

Every knob of flywheel is a field of one stage's settings class (``PathSettings``,
``TrainingSettings``, ...), declared with :func:`setting`: its type, default, environment
variable and meaning. One rule resolves every field, for the assets, the CLI and the ranking
service alike::

    a value given explicitly (Dagster run config, a CLI flag)
    > the environment variable (FLYWHEEL_...)
    > the default

Secrets (``secret=True``) are never part of run config (the Dagster UI shows run config); they
come from the environment, or from code that passes them explicitly. Nothing here reads the
environment at import time: ``resolve`` reads it when called, i.e. when a run, a command or
the service starts.

The README's configuration table is generated from these declarations
(``python -m flywheel_assets.platform.config``), and a test fails when the code names a
``FLYWHEEL_*`` variable that no setting declares or the table lacks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

ENV_PREFIX = "FLYWHEEL_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class SettingsError(ValueError):
    """A setting's value is not valid; the message names the variable or field to fix."""


def setting(
    default: Any,
    env: str,
    doc: str,
    *,
    secret: bool = False,
    shown_default: str | None = None,
) -> Any:
    """Declare one setting: its default, its environment variable and what it means.
    ``shown_default`` is how the README shows a default that is computed or unset."""
    if not env.startswith(ENV_PREFIX):
        raise ValueError(f"{env}: flywheel's variables start with {ENV_PREFIX}")
    return dataclasses.field(
        default=default,
        repr=not secret,  # a secret never reaches a log line through repr()
        metadata={"env": env, "doc": doc, "secret": secret, "shown_default": shown_default},
    )


@dataclass(frozen=True)
class Variable:
    """One declared setting, as the README table and the config generator see it."""

    stage: str
    name: str
    env: str
    type: type
    optional: bool
    default: Any
    doc: str
    secret: bool
    shown_default: str | None

    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        return f"`{self.default}`"


def _field_type(annotation: Any) -> tuple[type, bool]:
    """(base type, optional) of a field annotation such as ``float | None``."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return annotation, False


def _parse(text: str, kind: type, where: str) -> Any:
    value = text.strip()
    try:
        if kind is bool:
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise ValueError("expected true or false")
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
        return value
    except ValueError as exc:
        raise SettingsError(f"{where}={text!r} is not a valid {kind.__name__}: {exc}") from None


def _coerce(value: Any, kind: type, where: str) -> Any:
    """A value given explicitly (run config, a flag, code), checked against the field's type."""
    if isinstance(value, str) and kind is not str:
        return _parse(value, kind, where)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is bool and not isinstance(value, bool):
        raise SettingsError(f"{where}={value!r} is not true or false")
    if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, kind)):
        raise SettingsError(f"{where}={value!r} is not a valid {kind.__name__}")
    return value


@dataclass(frozen=True)
class Settings:
    """Base of every stage's settings: frozen, typed, resolved by one rule."""

    stage: ClassVar[str] = ""

    @classmethod
    def variables(cls) -> list[Variable]:
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            kind, optional = _field_type(hints[f.name])
            out.append(
                Variable(
                    stage=cls.stage,
                    name=f.name,
                    env=f.metadata["env"],
                    type=kind,
                    optional=optional,
                    default=f.default,
                    doc=f.metadata["doc"],
                    secret=f.metadata["secret"],
                    shown_default=f.metadata["shown_default"],
                )
            )
        return out

    @classmethod
    def resolve(
        cls,
        given: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Self:
        """Each field: ``given[name]`` when it is there and not None, else its environment
        variable when set and not empty, else the default. Then ``validate``."""
        given = given or {}
        environ = os.environ if environ is None else environ
        unknown = set(given) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SettingsError(f"{cls.__name__} has no setting {sorted(unknown)}")
        values: dict[str, Any] = {}
        for var in cls.variables():
            if given.get(var.name) is not None:
                values[var.name] = _coerce(given[var.name], var.type, var.name)
            elif environ.get(var.env, "").strip():
                values[var.name] = _parse(environ[var.env], var.type, var.env)
        out = cls(**values)
        out.validate()
        return out

    def validate(self) -> None:
        """Cross-field checks; raise SettingsError naming what to fix."""

    def public(self) -> dict[str, Any]:
        """The values without secrets (for the audit trail and the UI)."""
        secret = {v.name for v in self.variables() if v.secret}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in secret}


def require(condition: bool, env: str, message: str) -> None:
    """For ``validate``: fail naming the variable."""
    if not condition:
        raise SettingsError(f"{env}: {message}")


def json_object(text: str, env: str) -> dict[str, Any]:
    """A setting holding a JSON object (e.g. XGBoost parameters), parsed with a clear error."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"{env}={text!r} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SettingsError(f"{env}={text!r} must be a JSON object")
    return value


def all_settings() -> list[type[Settings]]:
    """Every stage's settings class, in the order the README lists them."""
    from flywheel_assets.evaluation.settings import ExperimentSettings
    from flywheel_assets.features.settings import FeatureSettings
    from flywheel_assets.forecasting.settings import ForecastSettings
    from flywheel_assets.ingestion.settings import IngestionSettings, KafkaTopicSettings
    from flywheel_assets.likelihood.settings import LikelihoodSettings
    from flywheel_assets.platform.settings import (
        AlertSettings,
        CycleSettings,
        DevSettings,
        PathSettings,
        PseudonymSettings,
        RunSettings,
        WarehouseSettings,
    )
    from flywheel_assets.quality.settings import QualitySettings
    from flywheel_assets.serving.settings import ServingSettings
    from flywheel_assets.training.settings import TrainingSettings

    return [
        PathSettings,
        WarehouseSettings,
        PseudonymSettings,
        CycleSettings,
        RunSettings,
        IngestionSettings,
        KafkaTopicSettings,
        QualitySettings,
        FeatureSettings,
        TrainingSettings,
        ExperimentSettings,
        ServingSettings,
        ForecastSettings,
        LikelihoodSettings,
        AlertSettings,
        DevSettings,
    ]


def all_variables() -> list[Variable]:
    return [v for cls in all_settings() for v in cls.variables()]


def markdown_table() -> str:
    """The README's table of every FLYWHEEL_* variable."""
    rows = ["| variable | stage | meaning | default |", "|---|---|---|---|"]
    for v in all_variables():
        secret = " (a secret: environment only)" if v.secret else ""
        rows.append(f"| `{v.env}` | {v.stage} | {v.doc}{secret} | {v.default_text()} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
