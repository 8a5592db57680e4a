"""Model versions with their lineage (model_registry)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import pandas as pd
import xgboost as xgb
from sqlalchemy.engine import Connection

from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.training.model import FeatureSchema, load_artefact


@dataclass(frozen=True)
class ModelRecord:
    model_version: str
    dt: dt.date
    artefact_uri: str
    sha256: str
    objective: str
    label: str
    params: dict
    metrics: dict
    schema: FeatureSchema
    training_partitions: list[str]
    n_train_rows: int
    n_valid_rows: int
    code_version: str | None
    champion_at_training: str | None
    partition_rows: dict[str, int] = field(default_factory=dict)
    training_spec_json: str | None = None
    base_model_version: str | None = None

    def load(self) -> xgb.Booster:
        return load_artefact(self.artefact_uri, self.sha256)

    @property
    def uses_realtime(self) -> bool:
        return self.schema.uses_realtime


def register_model(
    conn: Connection, record: ModelRecord, *, created_by: str, now: dt.datetime
) -> bool:
    """Insert a version; registering the same version again (a rerun) changes nothing.

    Versions are content-addressed, so an existing version with the same SHA-256 is the same
    model; with another SHA-256 it is a conflict and fails loudly."""
    existing = get_model(conn, record.model_version)
    if existing is not None:
        if existing.sha256 != record.sha256:
            raise RuntimeError(
                f"model version {record.model_version} already registered with other content"
            )
        return False
    Warehouse.run(
        conn,
        "registry/insert_model",
        model_version=record.model_version,
        dt=record.dt,
        artefact_uri=record.artefact_uri,
        sha256=record.sha256,
        objective=record.objective,
        label=record.label,
        params_json=json.dumps(record.params, sort_keys=True, default=str),
        metrics_json=json.dumps(record.metrics, sort_keys=True, default=float),
        features_json=record.schema.to_json(),
        training_partitions_json=json.dumps(record.training_partitions),
        n_train_rows=record.n_train_rows,
        n_valid_rows=record.n_valid_rows,
        code_version=record.code_version,
        champion_at_training=record.champion_at_training,
        partition_rows_json=json.dumps(record.partition_rows, sort_keys=True),
        training_spec_json=record.training_spec_json,
        base_model_version=record.base_model_version,
        created_at=now,
        created_by=created_by,
    )
    return True


def get_model(conn: Connection, model_version: str) -> ModelRecord | None:
    df = Warehouse.query_df(conn, load_sql("registry/get_model"), model_version=model_version)
    if df.empty:
        return None
    r = df.iloc[0]
    return ModelRecord(
        model_version=r["model_version"],
        dt=r["dt"],
        artefact_uri=r["artefact_uri"],
        sha256=r["sha256"],
        objective=r["objective"],
        label=r["label"],
        params=json.loads(r["params_json"]),
        metrics=json.loads(r["metrics_json"]),
        schema=FeatureSchema.from_json(r["features_json"]),
        training_partitions=json.loads(r["training_partitions_json"]),
        n_train_rows=int(r["n_train_rows"]),
        n_valid_rows=int(r["n_valid_rows"]),
        code_version=text(r["code_version"]),
        champion_at_training=text(r["champion_at_training"]),
        partition_rows=json.loads(text(r["partition_rows_json"]) or "{}"),
        training_spec_json=text(r["training_spec_json"]),
        base_model_version=text(r["base_model_version"]),
    )


def model_for_day(conn: Connection, day: dt.date) -> str | None:
    """The challenger trained for ``day`` (the newest, should the day have been retrained)."""
    value = Warehouse.scalar(conn, load_sql("registry/model_for_day"), dt=day)
    return None if value is None else str(value)


def latest_model_day(conn: Connection) -> dt.date | None:
    """The newest day a model was trained for (None: the registry is empty)."""
    value = Warehouse.scalar(conn, load_sql("registry/latest_model_day"))
    return None if value is None else pd.Timestamp(value).date()


def text(value: object) -> str | None:
    """A nullable text column as str or None (a frame may hold NULL as NaN)."""
    return value if isinstance(value, str) else None
