"""Training a day's challenger from the warehouse, and re-training it from its lineage.

Plain functions over the warehouse, no Dagster: the ``challenger_model`` asset, the
``flywheel model reproduce`` command and ``bench/`` all call these, so the model a test
reproduces is trained by the very code the asset runs.

The data of day D's challenger: the labelled examples of the ``window_days`` days ending with D,
each joined to its own feature snapshot. The last ``holdout_fraction`` of day D (by time) is
held out for the offline evaluation and never trained on; the rest is split by time again,
80 / 20, into training rows and the early-stopping validation rows. With ``warm_start_from``,
boosting continues from that model on the partitions after the ones it was trained on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field

import pandas as pd
import xgboost as xgb

from flywheel_assets.features.store import training_frame
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.training.model import (
    LABELS,
    FeatureSchema,
    TrainedModel,
    later_rows,
    time_split,
    train_model,
)

VALIDATION_FRACTION = 0.2


@dataclass(frozen=True)
class TrainingSpec:
    """Everything besides the data that decides the model; stored with every version."""

    day: dt.date
    window_days: int = 14
    holdout_fraction: float = 0.3
    label: str = "purchase"
    bias_correction: str = "position"
    max_ipw_weight: float = 20.0
    params: dict[str, object] = field(default_factory=dict)
    num_boost_round: int = 1000
    early_stopping_rounds: int = 20
    warm_start_from: str | None = None
    # False in specs stored before real-time features existed: those models re-train as they were
    realtime_features: bool = False

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "day": self.day.isoformat()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainingSpec:
        d = json.loads(text)
        return cls(**{**d, "day": dt.date.fromisoformat(d["day"])})


@dataclass(frozen=True)
class TrainingData:
    learn: pd.DataFrame  # every row the model may learn from (train + valid)
    train: pd.DataFrame
    valid: pd.DataFrame
    holdout: pd.DataFrame
    holdout_cutoff: pd.Timestamp | None

    @property
    def partition_rows(self) -> dict[str, int]:
        """Rows learnt from per partition: the exact lineage of the model."""
        # Counted first, named after: a few partitions, not a string per row.
        counts = self.learn["dt"].value_counts()
        counts.index = counts.index.astype(str)  # the partitions' text, as the rows' would be
        counts = counts.groupby(level=0).sum()
        return {k: int(counts[k]) for k in sorted(counts.index)}


def split(frame: pd.DataFrame, spec: TrainingSpec, after: dt.date | None = None) -> TrainingData:
    """Holdout, training and validation rows of ``frame`` for ``spec``; with ``after``, only
    partitions later than it are learnt from (warm start on the new partitions)."""
    # Masks, not copies, until the frames that are kept: each copy of a day's window pays for
    # fresh memory (a second per copy of 800k rows x 81 columns on a 2-core VM).
    is_today = frame["dt"] == spec.day
    today = frame if is_today.all() else frame[is_today]
    holdout = today[later_rows(today, spec.holdout_fraction)] if len(today) else today
    cutoff = holdout["event_time"].min() if not holdout.empty else None
    learn = frame if cutoff is None else frame[~frame.index.isin(holdout.index)]
    if after is not None:
        learn = learn[pd.to_datetime(learn["dt"]) > pd.Timestamp(after)]
    train, valid = time_split(learn, VALIDATION_FRACTION)
    return TrainingData(learn, train, valid, holdout, cutoff)


def load_window(wh: Warehouse, spec: TrainingSpec) -> pd.DataFrame:
    start = spec.day - dt.timedelta(days=spec.window_days - 1)
    return training_frame(wh, start, spec.day, realtime=spec.realtime_features)


def fit(
    spec: TrainingSpec,
    data: TrainingData,
    base: tuple[xgb.Booster, FeatureSchema] | None = None,
) -> TrainedModel:
    """Train on ``data`` as ``spec`` says, continuing from ``base`` for a warm start."""
    if spec.label not in LABELS:
        raise ValueError(f"label must be one of {sorted(LABELS)}, got {spec.label!r}")
    return train_model(
        data.train,
        data.valid,
        label=spec.label,
        params=spec.params,
        num_boost_round=spec.num_boost_round,
        early_stopping_rounds=spec.early_stopping_rounds,
        bias_correction=spec.bias_correction,
        max_ipw_weight=spec.max_ipw_weight,
        warm_start=None if base is None else base[0],
        schema=None if base is None else base[1],
        realtime_features=spec.realtime_features,
    )


@dataclass(frozen=True)
class DistributedFit:
    model: TrainedModel
    holdout_cutoff: pd.Timestamp | None
    partition_rows: dict[str, int]


def fit_distributed(
    wh: Warehouse,
    spec: TrainingSpec,
    address: str,
    *,
    after: dt.date | None = None,
    base: tuple[xgb.Booster, FeatureSchema] | None = None,
) -> DistributedFit:
    """The same training on a Dask cluster (decision 37): each worker reads whole days of the
    window from the warehouse; this process reads day D only, to place the holdout."""
    from flywheel_assets.training.distributed import (
        client_for,
        train_model_distributed,
        training_parts,
    )

    if spec.bias_correction == "unbiased_lambdarank":
        raise ValueError("unbiased_lambdarank trains in one process (whole requests per group)")
    day = training_frame(wh, spec.day, spec.day, realtime=False)  # only to place the holdout
    _, holdout = time_split(day, spec.holdout_fraction)
    cutoff = holdout["event_time"].min() if not holdout.empty else None
    start = spec.day - dt.timedelta(days=spec.window_days - 1)
    if after is not None:
        start = max(start, after + dt.timedelta(days=1))
    with client_for(address) as client:
        model = train_model_distributed(
            client,
            training_parts(wh.url, start, spec.day, before=cutoff),
            label=spec.label,
            params=spec.params,
            num_boost_round=spec.num_boost_round,
            early_stopping_rounds=spec.early_stopping_rounds,
            valid_fraction=VALIDATION_FRACTION,
            bias_correction=spec.bias_correction,
            max_ipw_weight=spec.max_ipw_weight,
            warm_start=None if base is None else base[0],
            schema=None if base is None else base[1],
            realtime_features=spec.realtime_features,
        )
    days = [start + dt.timedelta(days=i) for i in range((spec.day - start).days + 1)]
    with wh.begin() as conn:
        rows = {str(d): wh.count_partition(conn, "training_examples", d) for d in days}
    rows[str(spec.day)] -= len(holdout)
    return DistributedFit(model, cutoff, {k: v for k, v in rows.items() if v > 0})


def last_partition(partitions: list[str]) -> dt.date | None:
    return max((dt.date.fromisoformat(p) for p in partitions), default=None)


class LineageError(RuntimeError):
    """A model cannot be re-trained from its recorded lineage."""


@dataclass(frozen=True)
class Reproduction:
    model: TrainedModel
    sha256: str
    matches: bool


def reproduce(wh: Warehouse, model_version: str) -> Reproduction:
    """Re-train ``model_version`` from its registry record (specification, the exact
    partitions and their row counts, the warm-start base) and compare the SHA-256."""
    from flywheel_assets import registry
    from flywheel_assets.training.model import model_bytes

    with wh.begin() as conn:
        record = registry.get_model(conn, model_version)
        base_record = (
            registry.get_model(conn, record.base_model_version)
            if record is not None and record.base_model_version
            else None
        )
    if record is None:
        raise LineageError(f"model version {model_version!r} is not in the registry")
    if not record.training_spec_json:
        raise LineageError(
            f"{model_version} was registered before training specifications were recorded; "
            "it cannot be re-trained from its lineage"
        )
    spec = TrainingSpec.from_json(record.training_spec_json)
    base = None
    after = None
    if record.base_model_version:
        if base_record is None:
            raise LineageError(f"warm-start base {record.base_model_version} is not registered")
        base = (base_record.load(), base_record.schema)
        after = last_partition(base_record.training_partitions)
    trained_on = str(record.metrics.get("trained_on", "one process"))
    if trained_on.startswith("dask"):
        from flywheel_assets.training.distributed import scheduler_address

        address = scheduler_address()
        if address is None:
            raise LineageError(
                f"{model_version} was trained on a Dask cluster ({trained_on}); set "
                "FLYWHEEL_DASK_SCHEDULER to re-train it on one (a single process gives a model "
                "of the same quality but not the same bytes)"
            )
        fitted = fit_distributed(wh, spec, address, after=after, base=base)
        _same_rows(model_version, record.partition_rows, fitted.partition_rows)
        sha = hashlib.sha256(model_bytes(fitted.model.booster)).hexdigest()
        return Reproduction(fitted.model, sha, sha == record.sha256)
    data = split(load_window(wh, spec), spec, after=after)
    _same_rows(model_version, record.partition_rows, data.partition_rows)
    model = fit(spec, data, base)
    sha = hashlib.sha256(model_bytes(model.booster)).hexdigest()
    return Reproduction(model, sha, sha == record.sha256)


def _same_rows(model_version: str, then: dict[str, int], now: dict[str, int]) -> None:
    if now != then:
        changed = sorted(p for p in set(now) | set(then) if now.get(p) != then.get(p))
        detail = ", ".join(
            f"{p}: {then.get(p, 0)} rows then, {now.get(p, 0)} now" for p in changed[:5]
        )
        raise LineageError(
            f"the training data of {model_version} changed since it was trained ({detail}); "
            "re-materialise those partitions as they were, or train a new version"
        )
