"""Training and scoring the XGBoost ranker: plain functions on DataFrames, no Dagster.

Position bias: the logged position is a training feature, so the trees attribute the effect of
being shown high to the position, not to the item; at serving time every candidate is scored
as if shown at the top (position 0), which ranks by the debiased relevance.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from upath import UPath

from flywheel_assets.platform.files import write_atomically
from flywheel_assets.realtime.features import REALTIME_NAMES

CATEGORICAL_FEATURES = ["region", "device", "category", "brand"]
NUMERIC_FEATURES = [
    "position",
    "ctx_hour",
    "ctx_dow",
    "u_days_since_signup",
    "u_impressions_28d",
    "u_clicks_28d",
    "u_carts_28d",
    "u_purchases_28d",
    "u_clicks_7d",
    "u_purchases_7d",
    "u_active_days_28d",
    "u_ctr_28d",
    "u_conversion_28d",
    "u_avg_click_price_28d",
    "u_days_since_last_event",
    "i_price",
    "i_price_change_7d",
    "i_days_in_catalog",
    "i_impressions_28d",
    "i_clicks_28d",
    "i_purchases_28d",
    "i_ctr_28d",
    "i_conversion_28d",
    "ui_price_ratio",
    "uc_impressions_28d",
    "uc_clicks_28d",
    "uc_carts_28d",
    "uc_purchases_28d",
    "uc_ctr_28d",
    "uc_click_share_28d",
    "ui_impressions_28d",
    "ui_clicks_28d",
    "ui_purchases_28d",
    "ui_days_since_last_click",
    "ui_carts_28d",
    "ub_clicks_28d",
    "ub_ctr_28d",
    "ub_click_share_28d",
    "rc_impressions_28d",
    "rc_ctr_28d",
    "rc_purchase_rate_28d",
    "rb_impressions_28d",
    "rb_ctr_28d",
    "rb_purchase_rate_28d",
]
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES


def numeric_features(bias_correction: str = "position", realtime: bool = False) -> list[str]:
    """The numeric columns a model trains on: without the position when the bias correction
    does not learn it; with the real-time features (the session's last hour) when asked."""
    numeric = list(NUMERIC_FEATURES) + (list(REALTIME_NAMES) if realtime else [])
    if bias_correction in ("none", "ipw", "unbiased_lambdarank"):
        numeric.remove("position")
    return numeric


LABELS = {"purchase": "label_purchase", "click": "label_click"}

DEFAULT_PARAMS: dict[str, object] = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "tree_method": "hist",
    # Shallow, heavily regularised trees: one day's purchases are few and noisy, and on the
    # simulator these beat deeper trees in oracle share (docs/decisions.md, 7).
    "max_depth": 4,
    "eta": 0.05,
    "min_child_weight": 50.0,
    "subsample": 0.9,
    "colsample_bytree": 0.9,
    "max_cat_to_onehot": 1,
    "seed": 0,
    "nthread": 2,
}


@dataclass(frozen=True)
class FeatureSchema:
    """What a model needs at scoring time: feature order and the categories it was trained on."""

    numeric: list[str] = field(default_factory=lambda: list(NUMERIC_FEATURES))
    categorical: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"numeric": self.numeric, "categorical": self.categorical})

    @property
    def uses_realtime(self) -> bool:
        """Whether the model reads the session's last hour (realtime/features.py)."""
        return bool(set(self.numeric) & set(REALTIME_NAMES))

    @classmethod
    def from_json(cls, text: str) -> FeatureSchema:
        d = json.loads(text)
        return cls(
            numeric=list(d["numeric"]),
            categorical={k: list(v) for k, v in d["categorical"].items()},
        )

    @classmethod
    def fit(cls, df: pd.DataFrame, numeric: list[str] | None = None) -> FeatureSchema:
        cats = {
            c: sorted(str(v) for v in df[c].dropna().unique()) if c in df else []
            for c in CATEGORICAL_FEATURES
        }
        return cls(numeric=list(NUMERIC_FEATURES if numeric is None else numeric), categorical=cats)

    def matrix(self, df: pd.DataFrame) -> pd.DataFrame:
        """The model input in a fixed column order; unseen categories become missing."""
        # Built as one frame from arrays: inserting ~50 columns one by one copied the frame
        # each time, 14.7 ms for a request of ten rows, 3.3 ms now (decision 91).
        missing = np.full(len(df), np.nan, dtype="float32")
        out: dict[str, object] = {}
        for c in self.numeric:
            out[c] = (
                pd.to_numeric(df[c], errors="coerce").to_numpy(dtype="float32", na_value=np.nan)
                if c in df
                else missing
            )
        for c, values in self.categorical.items():
            if not values:
                # Never seen in training (e.g. no snapshot yet): an all-missing column, since
                # XGBoost cannot take a categorical with no categories.
                out[c] = missing
                continue
            col = (
                df[c].astype(object).where(df[c].notna(), None).to_numpy()
                if c in df
                else [None] * len(df)
            )
            out[c] = pd.Categorical(col, categories=values)
        # copy=True: no column shares memory with another or with ``df`` (a caller may write).
        return pd.DataFrame(out, index=df.index, copy=True)


@dataclass(frozen=True)
class TrainedModel:
    booster: xgb.Booster
    schema: FeatureSchema
    params: dict[str, object]
    best_iteration: int
    n_train_rows: int
    n_valid_rows: int


def time_split(
    df: pd.DataFrame, holdout_fraction: float, time_col: str = "event_time"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split by time so validation is strictly later than training (no look-ahead)."""
    if df.empty:
        return df, df
    later = later_rows(df, holdout_fraction, time_col)
    return df[~later], df[later]


def later_rows(df: pd.DataFrame, fraction: float, time_col: str = "event_time") -> pd.Series:
    """The rows ``time_split`` holds out: later than the time at quantile 1 - ``fraction``."""
    return df[time_col] > df[time_col].quantile(1.0 - fraction)


RANKING_PARAMS: dict[str, object] = {
    "objective": "rank:ndcg",
    "eval_metric": "ndcg@10",
    "lambdarank_unbiased": True,
    "lambdarank_pair_method": "topk",
    "lambdarank_num_pair_per_sample": 10,
    "min_child_weight": 0.1,
}

BIAS_CORRECTIONS = ("position", "ipw", "position+ipw", "none", "unbiased_lambdarank")


def ipw_weights(propensity: pd.Series, max_weight: float = 20.0) -> np.ndarray:
    """Inverse-propensity weights of logged impressions, clipped at ``max_weight`` (bounded
    variance for a little bias) and normalised to mean 1 so regularisation keeps its scale.
    A missing or invalid propensity (a row logged without one) weighs 1."""
    p = pd.to_numeric(propensity, errors="coerce").to_numpy(dtype="float64")
    ok = np.isfinite(p) & (p > 0) & (p <= 1)
    w = np.ones(len(p))
    w[ok] = np.minimum(1.0 / p[ok], max_weight)
    return w / w.mean() if len(w) else w


def _matrix(
    schema: FeatureSchema, df: pd.DataFrame, label_col: str, bias: str, max_weight: float
) -> xgb.DMatrix:
    weight = ipw_weights(df["propensity"], max_weight) if "ipw" in bias else None
    qid = None
    if bias == "unbiased_lambdarank":
        # One query group per request, rows in position order (XGBoost reads a document's
        # position from its order in the group); ``df`` is sorted that way by the caller.
        qid = pd.factorize(df["request_id"])[0]
    return xgb.DMatrix(
        schema.matrix(df),
        label=df[label_col].to_numpy(),
        weight=weight,
        qid=qid,
        enable_categorical=True,
    )


def sort_for_ranking(df: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by request (in time order) and by position inside each request."""
    first = df.groupby("request_id", sort=False)["event_time"].transform("min")
    return (
        df.assign(_first=first)
        .sort_values(["_first", "request_id", "position"], kind="stable")
        .drop(columns="_first")
    )


def train_model(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    label: str = "purchase",
    params: dict[str, object] | None = None,
    num_boost_round: int = 1000,
    early_stopping_rounds: int = 20,
    bias_correction: str = "position",
    max_ipw_weight: float = 20.0,
    warm_start: xgb.Booster | None = None,
    schema: FeatureSchema | None = None,
    realtime_features: bool = False,
) -> TrainedModel:
    """Fit an XGBoost model with early stopping on the (later) validation frame.

    ``bias_correction`` says how the logging policy's bias is removed (docs/decisions.md, 34):
    ``position`` (default) learns the position effect as a feature and scores at the top;
    ``ipw`` weights each impression by its inverse logged propensity; ``position+ipw`` both;
    ``none`` is the naive model (no position, no weights); ``unbiased_lambdarank`` is XGBoost's
    unbiased LambdaMART (``rank:ndcg`` with ``lambdarank_unbiased``, one group per request),
    whose scores rank but are not probabilities. ``warm_start`` continues boosting from an
    existing model (its schema must be passed as ``schema``, so the inputs line up)."""
    if label not in LABELS:
        raise ValueError(f"label must be one of {sorted(LABELS)}, got {label!r}")
    if bias_correction not in BIAS_CORRECTIONS:
        raise ValueError(
            f"bias_correction must be one of {list(BIAS_CORRECTIONS)}, got {bias_correction!r}"
        )
    label_col = LABELS[label]
    if train.empty or train[label_col].sum() == 0:
        raise ValueError(
            f"no positive {label} labels in the training window ({len(train)} rows): "
            "widen the training window or wait for more feedback"
        )
    merged = {**DEFAULT_PARAMS, **(params or {})}
    numeric = numeric_features(bias_correction, realtime_features)
    if bias_correction == "unbiased_lambdarank":
        # Ranking defaults under the caller's parameters. LambdaMART's hessians are small, so
        # the binary model's min_child_weight of 50 would forbid every split.
        merged = {**DEFAULT_PARAMS, **RANKING_PARAMS, **(params or {})}
        train, valid = sort_for_ranking(train), sort_for_ranking(valid)
    if schema is None:
        schema = FeatureSchema.fit(train, numeric=numeric)
    dtrain = _matrix(schema, train, label_col, bias_correction, max_ipw_weight)
    # Only the validation rows are evaluated each round: early stopping reads them alone, and
    # the training rows' metric (nowhere recorded) cost a third of the boosting time.
    evals = []
    if not valid.empty:
        evals.append((_matrix(schema, valid, label_col, bias_correction, max_ipw_weight), "valid"))
    booster = xgb.train(
        merged,
        dtrain,
        num_boost_round=num_boost_round,
        evals=evals,
        early_stopping_rounds=early_stopping_rounds if evals else None,
        verbose_eval=False,
        xgb_model=warm_start,
    )
    best = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
    if evals:
        # Keep only the trees up to the best round, so the saved model is what was validated.
        booster = booster[: best + 1]
    return TrainedModel(booster, schema, merged, best, len(train), len(valid))


def predict(
    booster: xgb.Booster, schema: FeatureSchema, df: pd.DataFrame, *, at_top: bool = False
) -> np.ndarray:
    """Scores for ``df``; with ``at_top`` every row is scored as if shown at position 0."""
    frame = df if not at_top or "position" not in schema.numeric else df.assign(position=0)
    return booster.predict(xgb.DMatrix(schema.matrix(frame), enable_categorical=True))


def model_bytes(booster: xgb.Booster) -> bytes:
    return bytes(booster.save_raw(raw_format="ubj"))


def _location(models_dir: str | os.PathLike[str]) -> UPath:
    return UPath(models_dir)


def _is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def save_artefact(data: bytes, models_dir: str | os.PathLike[str], name: str) -> tuple[str, str]:
    """Write an immutable, content-addressed artefact; returns (uri, sha256).

    ``models_dir`` is a folder or any fsspec URL (``s3://bucket/models``, ``gs://…``,
    ``memory://…``). Locally the file is written to a partial name, synced and renamed
    (platform/files.py), so a crash never leaves a half-written model; object stores make a whole object visible only when its
    upload completes. An existing artefact with the same content is reused; one with other
    content is an error (artefacts are immutable).
    """
    sha = hashlib.sha256(data).hexdigest()
    folder = _location(models_dir)
    path = folder / f"{name}-{sha[:12]}.ubj"
    uri = Path(path.path).as_uri() if _is_local(path) else str(path)
    if path.exists():
        if hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            raise RuntimeError(f"artefact {uri} exists with other content; artefacts are immutable")
        return uri, sha
    if _is_local(path):
        write_atomically(Path(path.path), data)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return uri, sha


def read_artefact(uri: str, sha256: str) -> bytes:
    """An artefact's bytes from its URI (file:// or any fsspec URL), refusing bytes that do
    not match the registered SHA-256."""
    data = UPath(uri).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise RuntimeError(
            f"model artefact {uri} has SHA-256 {actual}, registry says {sha256}: it was altered"
        )
    return data


def load_artefact(uri: str, sha256: str) -> xgb.Booster:
    """Load a model from its URI, refusing one whose bytes do not match the registered
    SHA-256."""
    data = read_artefact(uri, sha256)
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    return booster
