"""Dagster resources: thin, configured from the environment, holding no state between runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pydantic
from pydantic import PrivateAttr

from flywheel_assets.evaluation.experiments import ExperimentPolicy
from flywheel_assets.evaluation.settings import ExperimentSettings
from flywheel_assets.features.settings import FeatureSettings
from flywheel_assets.ingestion.contract import FieldMap
from flywheel_assets.ingestion.field_maps import FieldMapError, load_field_maps
from flywheel_assets.ingestion.kafka import KafkaSettings
from flywheel_assets.ingestion.settings import IngestionSettings, KafkaTopicSettings
from flywheel_assets.platform.config import Settings, SettingsError
from flywheel_assets.platform.connect import open_warehouse
from flywheel_assets.platform.governance import Roles, op_stage, stage_of
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.settings import (
    FlywheelPaths,
    PathSettings,
    QualityThresholds,
    WarehouseSettings,
    models_location,
)
from flywheel_assets.platform.warehouse import Warehouse, WarehouseError
from flywheel_assets.quality.settings import QualitySettings
from flywheel_assets.training.challenger import TrainingSpec
from flywheel_assets.training.model import BIAS_CORRECTIONS
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


class FlywheelConfig(dg.ConfigurableResource):
    """Folders and the knobs of the cycle. Unset folders come from FLYWHEEL_* variables."""

    home: str | None = None
    landing_dir: str | None = None
    models_dir: str | None = None
    training_window_days: int = 14
    label: str = "purchase"
    holdout_fraction: float = 0.3
    # How training removes the logging policy's bias (training.BIAS_CORRECTIONS; decision 34).
    bias_correction: str = "position"
    max_ipw_weight: float = 20.0
    # XGBoost parameters over training.DEFAULT_PARAMS, as JSON (e.g. '{"max_depth": 6}').
    xgb_params_json: str = "{}"
    # Continue boosting from the champion on the partitions it has not seen, instead of
    # training from scratch on the whole window (decision 35).
    warm_start: bool = False
    warm_start_rounds: int = 200
    future_tolerance_hours: float = 1.0
    # Events older than this before their delivery day are quarantined as too_old_event;
    # None accepts any lateness. FLYWHEEL_MAX_EVENT_LATENESS_DAYS overrides the default.
    max_event_lateness_days: float | None = None
    # YAML/JSON field map for producers with other field names (flywheel_assets/field_maps.py);
    # unset means FLYWHEEL_FIELD_MAP, else the built-in aliases only.
    field_map_file: str | None = None
    # Data-quality thresholds (config.QualityThresholds): None = FLYWHEEL_<NAME> or default.
    max_quarantine_share: float | None = None
    volume_max_drop: float | None = None
    volume_max_rise: float | None = None
    freshness_hours: float | None = None
    drift_psi_warn: float | None = None
    drift_psi_error: float | None = None
    drift_ks_alpha: float | None = None
    min_log_loss_gain: float = 0.0
    max_ndcg_drop: float = 0.01
    prior_strength: float = 20.0
    # A click or purchase labels an impression of the same request and item when it happened
    # at most this long after it (and arrived the same day).
    label_window_hours: float = 24.0
    # Online experiments (experiments.ExperimentPolicy; FLYWHEEL_<NAME in capitals> overrides):
    # the challenger's share of users, the longest experiment in daily looks, the test level,
    # and the guardrails' non-inferiority margins (shares of the champion's value).
    challenger_traffic_share: float = 0.5
    experiment_max_days: int = 7
    experiment_alpha: float = 0.05
    guardrail_revenue_margin: float = 0.10
    guardrail_ctr_margin: float = 0.05
    guardrail_latency_margin: float = 0.25

    def experiment_policy(self) -> ExperimentPolicy:
        def pick(name: str, cast: type) -> object:
            env = os.environ.get(f"FLYWHEEL_{name.upper()}")
            try:
                return cast(env) if env else getattr(self, name)
            except ValueError as exc:
                raise dg.Failure(
                    description=f"FLYWHEEL_{name.upper()}={env!r}: {exc}", allow_retries=False
                ) from exc

        try:
            return ExperimentPolicy(
                traffic_share=pick("challenger_traffic_share", float),
                max_days=pick("experiment_max_days", int),
                alpha=pick("experiment_alpha", float),
                revenue_margin=pick("guardrail_revenue_margin", float),
                ctr_margin=pick("guardrail_ctr_margin", float),
                latency_margin=pick("guardrail_latency_margin", float),
            )
        except ValueError as exc:
            raise dg.Failure(
                description=f"experiment settings: {exc}", allow_retries=False
            ) from exc

    def effective_settings(self) -> dict[str, object]:
        """What the cycle runs with once the environment is applied (no secrets), for the
        audit trail's configuration entries."""
        spec = self.training_spec(dt.date(2000, 1, 1))
        return {
            "config": self.model_dump(),
            "experiment": dataclasses.asdict(self.experiment_policy()),
            "quality": dataclasses.asdict(self.quality()),
            "training": {
                "bias_correction": spec.bias_correction,
                "params": spec.params,
                "warm_start": self.warm_start_enabled(),
                "max_event_lateness_days": (
                    None
                    if self.max_lateness() is None
                    else self.max_lateness().total_seconds() / 86400
                ),
            },
        }

    def paths(self) -> FlywheelPaths:
        base = FlywheelPaths.from_env(self.home)
        return FlywheelPaths(
            home=base.home,
            landing_dir=base.landing_dir
            if self.landing_dir is None
            else _resolve(self.landing_dir),
            models_dir=base.models_dir
            if self.models_dir is None
            else models_location(self.models_dir),
            warehouse_url=base.warehouse_url,
        )

    def field_maps(self) -> dict[str, FieldMap]:
        try:
            return load_field_maps(self.field_map_file or os.environ.get("FLYWHEEL_FIELD_MAP"))
        except FieldMapError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc

    def max_lateness(self) -> dt.timedelta | None:
        days = self.max_event_lateness_days
        if days is None:
            env = os.environ.get("FLYWHEEL_MAX_EVENT_LATENESS_DAYS")
            days = float(env) if env else DEFAULT_MAX_EVENT_LATENESS_DAYS
        return None if days <= 0 else dt.timedelta(days=days)

    def quality(self) -> QualityThresholds:
        names = [f.name for f in dataclasses.fields(QualityThresholds)]
        try:
            return QualityThresholds.resolve({k: getattr(self, k, None) for k in names})
        except ValueError as exc:
            raise dg.Failure(description=f"quality thresholds: {exc}", allow_retries=False) from exc

    def training_spec(self, day: dt.date, warm_start_from: str | None = None) -> TrainingSpec:
        """The challenger's training specification for ``day``; FLYWHEEL_BIAS_CORRECTION and
        FLYWHEEL_XGB_PARAMS (JSON) override the fields when set."""
        bias = os.environ.get("FLYWHEEL_BIAS_CORRECTION") or self.bias_correction
        text = os.environ.get("FLYWHEEL_XGB_PARAMS") or self.xgb_params_json
        try:
            params = json.loads(text)
            if not isinstance(params, dict):
                raise ValueError("must be a JSON object of XGBoost parameters")
        except ValueError as exc:
            raise dg.Failure(
                description=f"XGBoost parameters {text!r}: {exc}", allow_retries=False
            ) from exc
        if bias not in BIAS_CORRECTIONS:
            raise dg.Failure(
                description=f"bias correction {bias!r} is not one of {list(BIAS_CORRECTIONS)}",
                allow_retries=False,
            )
        return TrainingSpec(
            day=day,
            window_days=self.training_window_days,
            holdout_fraction=self.holdout_fraction,
            label=self.label,
            bias_correction=bias,
            max_ipw_weight=self.max_ipw_weight,
            params=params,
            num_boost_round=self.warm_start_rounds if warm_start_from else 1000,
            warm_start_from=warm_start_from,
        )

    def warm_start_enabled(self) -> bool:
        env = os.environ.get("FLYWHEEL_WARM_START")
        return env.lower() in ("1", "true", "yes") if env else self.warm_start

    def future_tolerance(self) -> dt.timedelta:
        return dt.timedelta(hours=self.future_tolerance_hours)


DEFAULT_MAX_EVENT_LATENESS_DAYS = 30.0


class KafkaResource(dg.ConfigurableResource):
    """The events topic. Unset fields come from FLYWHEEL_KAFKA_* variables at run time; the
    SASL password only ever from the environment variable named by ``sasl_password_env``."""

    bootstrap_servers: str | None = None
    topic: str | None = None
    consumer: str = "flywheel"
    batch_size: int = 50_000
    max_messages_per_run: int | None = None
    stall_timeout_s: float = 30.0
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password_env: str = "FLYWHEEL_KAFKA_PASSWORD"

    def settings(self) -> KafkaSettings | None:
        """The settings, or None when no broker is configured (the embedded default)."""
        bootstrap = self.bootstrap_servers or os.environ.get("FLYWHEEL_KAFKA_BOOTSTRAP")
        if not bootstrap:
            return None
        extra: dict[str, str] = {}
        protocol = self.security_protocol or os.environ.get("FLYWHEEL_KAFKA_SECURITY_PROTOCOL")
        if protocol:
            extra["security.protocol"] = protocol
        mechanism = self.sasl_mechanism or os.environ.get("FLYWHEEL_KAFKA_SASL_MECHANISM")
        if mechanism:
            extra["sasl.mechanism"] = mechanism
        username = self.sasl_username or os.environ.get("FLYWHEEL_KAFKA_USERNAME")
        if username:
            extra["sasl.username"] = username
            password = os.environ.get(self.sasl_password_env)
            if not password:
                raise dg.Failure(
                    f"FLYWHEEL_KAFKA_USERNAME is set but {self.sasl_password_env} is not: "
                    "export the SASL password in the environment of the run."
                )
            extra["sasl.password"] = password
        return KafkaSettings(
            bootstrap_servers=bootstrap,
            topic=self.topic or os.environ.get("FLYWHEEL_KAFKA_TOPIC") or "flywheel.events",
            consumer=self.consumer,
            batch_size=self.batch_size,
            stall_timeout_s=self.stall_timeout_s,
            client_config=extra,
        )


class PseudonymResource(dg.ConfigurableResource):
    """The pseudonymisation key: only from the environment (FLYWHEEL_PSEUDONYM_KEY)."""

    key: str

    def get(self) -> Pseudonymiser:
        return Pseudonymiser(self.key)


def _resolve(p: str) -> Path:
    return Path(p).expanduser().resolve()


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


def stage_config(settings_class: type[Settings], name: str) -> type[StageConfig]:
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
    cls = pydantic.create_model(
        name, __base__=StageConfig, __module__=__name__, __doc__=doc, **fields
    )
    cls.settings_class = settings_class
    return cls


PathsConfig = stage_config(PathSettings, "PathsConfig")
IngestionConfig = stage_config(IngestionSettings, "IngestionConfig")
KafkaConfig = stage_config(KafkaTopicSettings, "KafkaConfig")
QualityConfig = stage_config(QualitySettings, "QualityConfig")
FeaturesConfig = stage_config(FeatureSettings, "FeaturesConfig")
TrainingConfig = stage_config(TrainingSettings, "TrainingConfig")
ExperimentsConfig = stage_config(ExperimentSettings, "ExperimentsConfig")


def resources() -> dict[str, object]:
    """Resources configured from the environment; secrets only through EnvVar."""
    return {
        "warehouse": WarehouseResource(),
        "flywheel": FlywheelConfig(),
        "pseudonyms": PseudonymResource(key=dg.EnvVar("FLYWHEEL_PSEUDONYM_KEY")),
        "kafka": KafkaResource(),
    }


@dg.definitions
def resource_defs() -> dg.Definitions:
    """The resources every asset, check and op of the code location shares, and its executor:
    warehouse steps run one at a time anyway (a pool of 1), so a process per step would only
    add its start-up (docs/decisions.md, 48)."""
    return dg.Definitions(resources=resources(), executor=dg.in_process_executor)
