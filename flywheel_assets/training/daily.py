"""The day's challenger: train it (warm start from the champion, in one process or on a Dask
cluster) and register it with its lineage, moving the challenger alias.

Plain functions over the warehouse and the registry, no Dagster: the ``challenger_model`` asset
calls ``train_and_register`` and reports what it returns; ``build_training_examples`` is the
``training_examples`` asset's day.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from flywheel_assets import registry
from flywheel_assets.evaluation import OfflineMetrics, offline_metrics
from flywheel_assets.platform.clock import utcnow
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.training import challenger
from flywheel_assets.training.challenger import TrainingSpec
from flywheel_assets.training.model import (
    LABELS,
    FeatureSchema,
    TrainedModel,
    model_bytes,
    predict,
    save_artefact,
)

if TYPE_CHECKING:
    import xgboost as xgb

# The day's training specification for a warm start from a model version (None: from scratch).
SpecFor = Callable[[str | None], TrainingSpec]


@dataclass(frozen=True)
class ExamplesSummary:
    rows: int
    clicks: int
    purchases: int

    @property
    def ctr(self) -> float:
        return self.clicks / self.rows if self.rows else 0.0


def build_training_examples(
    wh: Warehouse, day: dt.date, label_window_hours: float
) -> ExamplesSummary:
    """Replace ``day``'s labelled examples (the day's impressions joined to the feature
    snapshot of the day before) in one transaction."""
    with wh.begin() as conn:
        wh.delete_partition(conn, "training_examples", day)
        wh.run(
            conn,
            "training/training_examples",
            dt=day,
            feature_dt=day - dt.timedelta(days=1),
            label_window_seconds=label_window_hours * 3600.0,
        )
        summary = wh.query_df(conn, load_sql("training/training_examples_summary"), dt=day).iloc[0]
    return ExamplesSummary(*(int(summary[k]) for k in ("n_rows", "clicks", "purchases")))


@dataclass(frozen=True)
class NoChallenger:
    """Nothing to train on: no model, nothing registered."""

    reason: str  # the asset's "reason" metadata
    message: str  # the warning logged


@dataclass(frozen=True)
class Fitted:
    model: TrainedModel
    holdout_cutoff: pd.Timestamp | None
    partition_rows: dict[str, int]
    valid: pd.DataFrame | None  # None on a cluster: the validation rows stay on the workers
    trained_on: str
    train_seconds: float


@dataclass(frozen=True)
class Challenger:
    """A trained and registered challenger."""

    model_version: str
    sha256: str
    artefact_uri: str
    newly_registered: bool
    spec: TrainingSpec
    fitted: Fitted
    base_model_version: str | None
    valid_metrics: OfflineMetrics | None

    @property
    def model(self) -> TrainedModel:
        return self.fitted.model


ChallengerOutcome = Challenger | NoChallenger


@dataclass(frozen=True)
class Start:
    """Where the day's training starts: its spec, the warm-start base (None: from scratch)
    and the last partition the base saw."""

    spec: TrainingSpec
    base: registry.ModelRecord | None
    after: dt.date | None
    champion_version: str | None


def choose_start(wh: Warehouse, day: dt.date, spec_for: SpecFor, warm_start: bool) -> Start:
    """With ``warm_start``, continue the champion on the partitions it has not seen; from
    scratch when it is off, there is no champion, or the champion already saw ``day``."""
    with wh.begin() as conn:
        champion_version = registry.get_alias(conn, registry.CHAMPION)
        champion = registry.get_model(conn, champion_version) if champion_version else None
    base = champion if warm_start and champion is not None else None
    spec = spec_for(base.model_version if base else None)
    after = challenger.last_partition(base.training_partitions) if base else None
    if after is not None and after >= spec.day:
        base, after = None, None  # the champion already saw this day: retrain in full
        spec = spec_for(None)
    return Start(spec, base, after, champion_version)


def fit_challenger(wh: Warehouse, start: Start, scheduler: str | None) -> Fitted | NoChallenger:
    """Train on a Dask cluster when ``scheduler`` is set (unless the bias correction needs one
    process), else here; NoChallenger when the window has no positive labels."""
    spec, day = start.spec, start.spec.day
    base_model = (start.base.load(), start.base.schema) if start.base else None
    t0 = time.perf_counter()
    if scheduler is not None and spec.bias_correction != "unbiased_lambdarank":
        return _fit_on_cluster(wh, start, scheduler, base_model, t0)
    data = challenger.split(challenger.load_window(wh, spec), spec, after=start.after)
    if data.train.empty or data.train[LABELS[spec.label]].sum() == 0:
        return NoChallenger(
            reason=f"no positive {spec.label} labels",
            message=f"no positive {spec.label} labels in the window: no challenger for {day}",
        )
    model = challenger.fit(spec, data, base_model)
    return Fitted(
        model=model,
        holdout_cutoff=data.holdout_cutoff,
        partition_rows=data.partition_rows,
        valid=data.valid,
        trained_on="one process",
        train_seconds=time.perf_counter() - t0,
    )


def _fit_on_cluster(
    wh: Warehouse,
    start: Start,
    scheduler: str,
    base_model: tuple[xgb.Booster, FeatureSchema] | None,
    t0: float,
) -> Fitted | NoChallenger:
    try:
        fitted = challenger.fit_distributed(
            wh, start.spec, scheduler, after=start.after, base=base_model
        )
    except ValueError as exc:
        if "no positive" not in str(exc):
            raise
        return NoChallenger(reason=str(exc), message=f"{exc}: no challenger for {start.spec.day}")
    return Fitted(
        model=fitted.model,
        holdout_cutoff=fitted.holdout_cutoff,
        partition_rows=fitted.partition_rows,
        valid=None,
        trained_on=f"dask ({scheduler})",
        train_seconds=time.perf_counter() - t0,
    )


def train_and_register(
    wh: Warehouse,
    day: dt.date,
    spec_for: SpecFor,
    models_dir: str | os.PathLike[str],
    *,
    warm_start: bool = False,
    scheduler: str | None = None,
    created_by: str,
    actor: str = "challenger_model",
) -> ChallengerOutcome:
    """Train ``day``'s challenger and register it; the challenger alias moves to it unless a
    later day's model is registered already."""
    start = choose_start(wh, day, spec_for, warm_start)
    fitted = fit_challenger(wh, start, scheduler)
    if isinstance(fitted, NoChallenger):
        return fitted
    uri, sha = save_artefact(model_bytes(fitted.model.booster), models_dir, f"model-{day:%Y%m%d}")
    valid = fitted.valid
    valid_metrics = (
        offline_metrics(
            valid,
            predict(fitted.model.booster, fitted.model.schema, valid),
            LABELS[start.spec.label],
        )
        if valid is not None and len(valid)
        else None
    )
    result = Challenger(
        model_version=f"m{day:%Y%m%d}-{sha[:8]}",
        sha256=sha,
        artefact_uri=uri,
        newly_registered=False,
        spec=start.spec,
        fitted=fitted,
        base_model_version=start.base.model_version if start.base else None,
        valid_metrics=valid_metrics,
    )
    created = register(wh, result, start.champion_version, created_by=created_by, actor=actor)
    return replace(result, newly_registered=created)


def registry_metrics(c: Challenger) -> dict[str, object]:
    """The metrics stored with the version."""
    f = c.fitted
    return {
        "best_iteration": f.model.best_iteration,
        "holdout_cutoff": None if f.holdout_cutoff is None else str(f.holdout_cutoff),
        "train_seconds": round(f.train_seconds, 3),
        "trained_on": f.trained_on,
        **(
            {f"valid_{k}": v for k, v in c.valid_metrics.as_dict().items()}
            if c.valid_metrics
            else {}
        ),
    }


def register(
    wh: Warehouse, c: Challenger, champion_version: str | None, *, created_by: str, actor: str
) -> bool:
    """Register the version (a rerun of the same model changes nothing) and move the
    challenger alias to it; returns whether the version is new."""
    model, day = c.model, c.spec.day
    with wh.begin() as conn:
        record = registry.ModelRecord(
            model_version=c.model_version,
            dt=day,
            artefact_uri=c.artefact_uri,
            sha256=c.sha256,
            objective=str(model.params["objective"]),
            label=c.spec.label,
            params=model.params,
            metrics=registry_metrics(c),
            schema=model.schema,
            training_partitions=list(c.fitted.partition_rows),
            n_train_rows=model.n_train_rows,
            n_valid_rows=model.n_valid_rows,
            code_version=code_version(),
            champion_at_training=champion_version,
            partition_rows=c.fitted.partition_rows,
            training_spec_json=c.spec.to_json(),
            base_model_version=c.base_model_version,
        )
        created = registry.register_model(conn, record, created_by=created_by, now=utcnow())
        # Re-training an old day must not move the challenger alias back in time.
        latest = registry.latest_model_day(conn)
        if latest is None or latest <= day:
            registry.move_alias(
                conn,
                registry.CHALLENGER,
                c.model_version,
                actor=actor,
                reason=f"trained for {day}",
                now=utcnow(),
                day=day,
            )
    return created


def code_version() -> str | None:
    """The code that trained a model: FLYWHEEL_CODE_VERSION (a deployment sets it, e.g. to the
    image's git SHA), else the checkout's git SHA, else the installed package version."""
    from flywheel_assets.training.settings import TrainingSettings

    configured = TrainingSettings.resolve().code_version
    if configured:
        return configured
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).resolve().parent,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"flywheel=={importlib.metadata.version('flywheel')}"
    except importlib.metadata.PackageNotFoundError:
        return None
