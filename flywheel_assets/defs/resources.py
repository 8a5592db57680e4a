"""Dagster resources: thin, holding no state between runs.

Each stage's settings are a config resource generated from the stage's settings class
(``<stage>/settings.py``), so a setting is declared once and resolved by one rule (run config >
FLYWHEEL_* variable > default; platform/config.py). Secrets are never config fields: the
pseudonym key comes through ``EnvVar``, the others from the environment when resolved.
"""

from __future__ import annotations

from typing import Any, ClassVar

import dagster as dg
import pydantic
from pydantic import PrivateAttr

from flywheel_assets.evaluation.settings import ExperimentSettings
from flywheel_assets.features.settings import FeatureSettings
from flywheel_assets.forecasting.settings import ForecastSettings
from flywheel_assets.ingestion.contract import FieldMap
from flywheel_assets.ingestion.field_maps import FieldMapError
from flywheel_assets.ingestion.settings import IngestionSettings, KafkaTopicSettings
from flywheel_assets.likelihood.settings import LikelihoodSettings
from flywheel_assets.orchestration.executor import flywheel_executor
from flywheel_assets.platform.config import Settings, SettingsError
from flywheel_assets.platform.connect import open_warehouse
from flywheel_assets.platform.governance import Roles, op_stage, stage_of
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.settings import FlywheelPaths, PathSettings, WarehouseSettings
from flywheel_assets.platform.warehouse import Warehouse, WarehouseError
from flywheel_assets.quality.settings import QualitySettings
from flywheel_assets.training.settings import TrainingSettings


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse. ``url`` unset means FLYWHEEL_WAREHOUSE_URL, else DuckDB in FLYWHEEL_HOME
    (a PostgreSQL password may come alone from FLYWHEEL_WAREHOUSE_PASSWORD).

    ``roles`` (or FLYWHEEL_WAREHOUSE_ROLES) names the least-privilege roles' prefix on
    PostgreSQL: each asset's transactions then act as its stage's role only, and the schema is
    never changed at run time (`flywheel migrate` does that, as the owner). Without roles, a
    missing table is created on first use unless FLYWHEEL_AUTO_MIGRATE=false."""

    url: str | None = None
    roles: str | None = None
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def get(self) -> Warehouse:
        if self._warehouse is None:
            try:
                settings = WarehouseSettings.resolve({"url": self.url, "roles": self.roles})
                self._warehouse = open_warehouse(settings, stage_role=_stage_role)
            except (SettingsError, WarehouseError) as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from exc
        return self._warehouse

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._warehouse is not None:
            self._warehouse.dispose()


def _stage_role(roles: Roles) -> str | None:
    """The running asset's, asset check's or op's stage role; None outside a step."""
    try:
        ctx = dg.AssetExecutionContext.get()
    except dg.DagsterInvariantViolationError:
        ctx = None
    if ctx is not None:
        # In a plain op this is the op's own context (no AssetExecutionContext around it).
        op_ctx = ctx.op_execution_context if isinstance(ctx, dg.AssetExecutionContext) else ctx
        if not op_ctx.has_assets_def:  # a plain op (rollback_job): its stage by its name
            return roles.name(op_stage(op_ctx.op.name))
        key = next(iter(op_ctx.assets_def.keys))
        group = op_ctx.assets_def.group_names_by_key.get(key)
        return roles.name(stage_of(key.path[-1], group))
    try:
        check_ctx = dg.AssetCheckExecutionContext.get()
    except dg.DagsterInvariantViolationError:
        return None
    key = check_ctx.check_specs[0].asset_key
    group = check_ctx.job_def.asset_layer.asset_graph.get(key).group_name
    return roles.name(stage_of(key.path[-1], group))


class StageConfig(dg.ConfigurableResource):
    """A stage's settings as Dagster config. Every field is optional: a value set in the run's
    config wins, else the FLYWHEEL_* variable, else the default (platform/config.py, the one
    rule). Secrets are not fields: they come from the environment only."""

    settings_class: ClassVar[type[Settings]]

    def settings(self) -> Any:
        given = {k: v for k, v in self.model_dump().items() if v is not None}
        try:
            return self.settings_class.resolve(given)
        except SettingsError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc


class _Paths(StageConfig):
    def paths(self) -> FlywheelPaths:
        settings: PathSettings = self.settings()
        try:
            url = WarehouseSettings.resolve().url
        except SettingsError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        return settings.paths(url)


class _Ingestion(StageConfig):
    def field_maps(self) -> dict[str, FieldMap]:
        try:
            return self.settings().field_maps()
        except FieldMapError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc


def stage_config(
    settings_class: type[Settings], name: str, base: type[StageConfig] = StageConfig
) -> type[StageConfig]:
    """The Dagster config resource of a stage, generated from its settings class so that a
    setting is declared once (with its type, variable and meaning, shown in the launchpad)."""
    fields: dict[str, Any] = {
        v.name: (
            v.type | None,
            pydantic.Field(default=None, description=f"{v.doc} (else {v.env})"),
        )
        for v in settings_class.variables()
        if not v.secret
    }
    doc = f"The {settings_class.stage} settings ({settings_class.__name__}); unset = environment."
    cls = pydantic.create_model(name, __base__=base, __module__=__name__, __doc__=doc, **fields)
    cls.settings_class = settings_class
    return cls


PathsConfig = stage_config(PathSettings, "PathsConfig", _Paths)
IngestionConfig = stage_config(IngestionSettings, "IngestionConfig", _Ingestion)
KafkaConfig = stage_config(KafkaTopicSettings, "KafkaConfig")
QualityConfig = stage_config(QualitySettings, "QualityConfig")
FeaturesConfig = stage_config(FeatureSettings, "FeaturesConfig")
TrainingConfig = stage_config(TrainingSettings, "TrainingConfig")
ExperimentsConfig = stage_config(ExperimentSettings, "ExperimentsConfig")
ForecastConfig = stage_config(ForecastSettings, "ForecastConfig")
LikelihoodConfig = stage_config(LikelihoodSettings, "LikelihoodConfig")


class PseudonymResource(dg.ConfigurableResource):
    """The pseudonymisation key: only from the environment (FLYWHEEL_PSEUDONYM_KEY)."""

    key: str

    def get(self) -> Pseudonymiser:
        return Pseudonymiser(self.key)


def resources() -> dict[str, object]:
    """The resources of the code location; unset fields come from the environment at run time
    and secrets only through it."""
    return {
        "warehouse": WarehouseResource(),
        "paths": PathsConfig(),
        "ingestion": IngestionConfig(),
        "kafka": KafkaConfig(),
        "quality": QualityConfig(),
        "features": FeaturesConfig(),
        "training": TrainingConfig(),
        "experiments": ExperimentsConfig(),
        "forecasting": ForecastConfig(),
        "likelihood": LikelihoodConfig(),
        "pseudonyms": PseudonymResource(key=dg.EnvVar("FLYWHEEL_PSEUDONYM_KEY")),
    }


def recorded_settings(*configs: StageConfig) -> dict[str, object]:
    """What the cycle runs with once the environment is applied, without secrets, by stage
    settings class (for the audit trail's configuration entries)."""
    return {type(c.settings()).__name__: c.settings().public() for c in configs}


@dg.definitions
def resource_defs() -> dg.Definitions:
    """The resources every asset, check and op of the code location shares, and its executor:
    warehouse steps run one at a time anyway (a pool of 1), so a process per step would only
    add its start-up (docs/decisions.md, 48)."""
    return dg.Definitions(resources=resources(), executor=flywheel_executor)
