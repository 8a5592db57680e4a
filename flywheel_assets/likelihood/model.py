"""The purchase-likelihood model: one XGBoost classifier per horizon, calibrated.

For a model "as of" day T (everything that had arrived by T), each horizon h is fitted on
snapshots whose labels T already knows, without any label window reaching into the days the
calibration is measured on:

- calibration snapshots: T - h, T - h - step, ... (``calibration_days`` of them), the newest
  fully labelled days;
- training snapshots: from the oldest calibration snapshot minus h backwards, ``step`` days
  apart (``training_days``), so a training label (D, D + h] ends before calibration starts.

Calibration maps the booster's raw probability to one that holds on days it did not train on:
isotonic regression or Platt scaling, chosen by log loss with two-fold cross-fitting over the
calibration rows (users split by a hash of their id), then refitted on all of them
(``calibration="auto"``; docs/likelihood.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import struct
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from scipy.optimize import isotonic_regression, minimize

from flywheel_assets.likelihood.history import FEATURES, HORIZONS, UserHistory, labels, snapshot
from flywheel_assets.likelihood.metrics import EPS, log_loss

_MAGIC = b"FLYWHEEL-LIKELIHOOD-1\n"
CALIBRATIONS = ("auto", "isotonic", "platt", "none")


def _default_xgb() -> dict[str, Any]:
    return {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "max_depth": 4,
        "eta": 0.05,
        "min_child_weight": 5.0,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "max_bin": 128,
    }


@dataclass(frozen=True)
class LikelihoodParams:
    """Everything that defines a fitted model besides the data (stored with it)."""

    horizons: tuple[int, ...] = HORIZONS
    training_days: int = 8
    calibration_days: int = 2
    step: int = 7
    active_days: int = 90
    num_boost_round: int = 200
    calibration: str = "auto"
    seed: int = 0
    nthread: int = 2
    xgb_params: dict[str, Any] = field(default_factory=_default_xgb)

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["horizons"] = list(self.horizons)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LikelihoodParams:
        return cls(**{**d, "horizons": tuple(d["horizons"])})


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass
class Calibrator:
    """``kind`` none, isotonic (``x``, ``y`` knots, linear between, flat outside) or platt
    (``a``, ``b``: sigmoid(a logit(p) + b))."""

    kind: str = "none"
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    a: float = 1.0
    b: float = 0.0

    def __call__(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype="float64")
        if self.kind == "isotonic":
            return np.clip(np.interp(p, self.x, self.y), EPS, 1 - EPS)
        if self.kind == "platt":
            return 1.0 / (1.0 + np.exp(-(self.a * _logit(p) + self.b)))
        return p

    @classmethod
    def fit(cls, kind: str, p: np.ndarray, y: np.ndarray) -> Calibrator:
        p = np.asarray(p, dtype="float64")
        y = np.asarray(y, dtype="float64")
        if kind == "isotonic":
            # Tied scores are one point (their mean outcome, weighted by their count): the
            # booster's scores are piecewise constant, so ties are the rule, and a step
            # function must not give two values at one score.
            xs, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
            means = np.bincount(inverse, weights=y) / counts
            ys = isotonic_regression(means, weights=counts.astype("float64")).x
            # Knots where the fitted step changes (each block's ends): same function, smaller.
            change = np.flatnonzero(np.diff(ys) != 0)
            keep = np.unique(np.concatenate([[0, len(xs) - 1], change, change + 1]))
            return cls("isotonic", x=xs[keep].tolist(), y=ys[keep].tolist())
        if kind == "platt":
            z = _logit(p)

            def loss(ab: np.ndarray) -> float:
                return log_loss(y, 1.0 / (1.0 + np.exp(-(ab[0] * z + ab[1]))))

            res = minimize(
                loss,
                np.array([1.0, 0.0]),
                method="Nelder-Mead",
                options={"xatol": 1e-6, "fatol": 1e-9},
            )
            return cls("platt", a=float(res.x[0]), b=float(res.x[1]))
        return cls("none")


def _halves(users: np.ndarray) -> np.ndarray:
    """A stable split of users in two (the same user always on the same side)."""
    return np.array([hashlib.sha256(str(u).encode()).digest()[0] & 1 for u in users], dtype=bool)


def choose_calibrator(
    p: np.ndarray, y: np.ndarray, users: np.ndarray
) -> tuple[Calibrator, dict[str, float]]:
    """Isotonic or Platt, whichever has the lower cross-fitted log loss on (p, y)."""
    side = _halves(users)
    losses = {}
    for kind in ("isotonic", "platt"):
        q = np.empty(len(p))
        for s in (True, False):
            fit_on, apply_to = side == s, side != s
            if fit_on.sum() == 0 or apply_to.sum() == 0:
                q[apply_to] = p[apply_to]
                continue
            q[apply_to] = Calibrator.fit(kind, p[fit_on], y[fit_on])(p[apply_to])
        losses[kind] = log_loss(y, q)
    losses["none"] = log_loss(y, p)
    best = min(("isotonic", "platt"), key=lambda k: losses[k])
    return Calibrator.fit(best, p, y), losses


def snapshot_days(
    as_of: dt.date, horizon: int, params: LikelihoodParams
) -> tuple[list[dt.date], list[dt.date]]:
    """(training days, calibration days) for a model as of ``as_of`` (oldest first)."""
    newest = as_of - dt.timedelta(days=horizon)
    cal = [newest - dt.timedelta(days=params.step * k) for k in range(params.calibration_days)]
    first_train = min(cal) - dt.timedelta(days=horizon)
    train = [first_train - dt.timedelta(days=params.step * k) for k in range(params.training_days)]
    return sorted(train), sorted(cal)


class Snapshots:
    """Snapshots by day, computed once. A snapshot of day D reads only what had arrived by D,
    so it is the same from any history that holds everything up to D: one cache serves a
    backtest's models fitted as of different days."""

    def __init__(self, history: UserHistory) -> None:
        self.history = history
        self._cache: dict[tuple[dt.date, int], pd.DataFrame] = {}

    def get(self, day: dt.date, active_days: int) -> pd.DataFrame:
        key = (day, active_days)
        if key not in self._cache:
            self._cache[key] = snapshot(self.history, day, active_days)
        return self._cache[key]


def labelled(
    history: UserHistory,
    days: list[dt.date],
    horizon: int,
    params: LikelihoodParams,
    snapshots: Snapshots | None = None,
) -> pd.DataFrame:
    """Snapshots of ``days`` with the label of ``horizon`` as ``history`` knows it: day,
    user_id, FEATURES, y."""
    frames = []
    snapshots = snapshots or Snapshots(history)
    for d in days:
        s = snapshots.get(d, params.active_days)
        if s.empty:
            continue
        y = labels(history, d, s["user_id"].to_numpy(), (horizon,))
        frames.append(s.assign(day=d, y=y[f"y_{horizon}d"].to_numpy()))
    if not frames:
        return pd.DataFrame(columns=["day", "user_id", *FEATURES, "y"])
    return pd.concat(frames, ignore_index=True)


class LikelihoodModel:
    """Fit as of a day on a user history; predict p_{h}d for a snapshot's users."""

    def __init__(self, params: LikelihoodParams | None = None) -> None:
        self.params = params or LikelihoodParams()
        self.boosters: dict[int, xgb.Booster] = {}
        self.calibrators: dict[int, Calibrator] = {}
        self._lineage: dict[str, Any] = {}

    def fit(
        self, history: UserHistory, as_of: dt.date, snapshots: Snapshots | None = None
    ) -> LikelihoodModel:
        """Train every horizon from what had arrived by ``as_of``; ``snapshots`` may be a
        cache over a longer history (a snapshot only reads what had arrived by its day)."""
        p = self.params
        history = as_of_day(history, as_of)
        snapshots = snapshots or Snapshots(history)
        lineage: dict[str, Any] = {"as_of": str(as_of), "features": FEATURES, "horizons": {}}
        for h in p.horizons:
            train_days, cal_days = snapshot_days(as_of, h, p)
            train = labelled(history, train_days, h, p, snapshots)
            if train.empty or train["y"].nunique() < 2:
                raise ValueError(f"not enough labelled history before {as_of} for {h}-day labels")
            dtrain = xgb.DMatrix(
                train[FEATURES].to_numpy("float32"),
                label=train["y"].to_numpy(),
                feature_names=FEATURES,
                nthread=p.nthread,
            )
            booster = xgb.train(
                {**p.xgb_params, "seed": p.seed, "nthread": p.nthread},
                dtrain,
                num_boost_round=p.num_boost_round,
            )
            self.boosters[h] = booster
            cal = labelled(history, cal_days, h, p, snapshots)
            losses: dict[str, float] = {}
            if p.calibration == "none" or cal.empty or cal["y"].nunique() < 2:
                calibrator = Calibrator("none")
            else:
                raw = self._raw(h, cal)
                if p.calibration == "auto":
                    calibrator, losses = choose_calibrator(
                        raw, cal["y"].to_numpy(), cal["user_id"].to_numpy()
                    )
                else:
                    calibrator = Calibrator.fit(p.calibration, raw, cal["y"].to_numpy())
            self.calibrators[h] = calibrator
            lineage["horizons"][str(h)] = {
                "training_days": [str(d) for d in train_days],
                "calibration_days": [str(d) for d in cal_days],
                "training_rows": int(len(train)),
                "training_positive_rate": float(train["y"].mean()),
                "calibration_rows": int(len(cal)),
                "calibration": calibrator.kind,
                "calibration_log_loss": losses,
            }
        lineage["params"] = p.to_dict()
        self._lineage = lineage
        return self

    def _raw(self, h: int, frame: pd.DataFrame) -> np.ndarray:
        d = xgb.DMatrix(
            frame[FEATURES].to_numpy("float32"), feature_names=FEATURES, nthread=self.params.nthread
        )
        return self.boosters[h].predict(d).astype("float64")

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """user_id and p_{h}d for every horizon, for a snapshot's rows."""
        out = pd.DataFrame({"user_id": features["user_id"].to_numpy()})
        for h in self.params.horizons:
            out[f"p_{h}d"] = self.calibrators[h](self._raw(h, features)) if len(features) else []
        return out

    def to_bytes(self) -> bytes:
        header = json.dumps(
            {
                "params": self.params.to_dict(),
                "calibrators": {str(h): asdict(c) for h, c in self.calibrators.items()},
                "lineage": self._lineage,
            },
            sort_keys=True,
        ).encode()
        parts = [_MAGIC, struct.pack(">Q", len(header)), header]
        for h in self.params.horizons:
            raw = bytes(self.boosters[h].save_raw(raw_format="ubj"))
            parts += [struct.pack(">Q", len(raw)), raw]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> LikelihoodModel:
        if not data.startswith(_MAGIC):
            raise ValueError("not a flywheel purchase-likelihood model")
        pos = len(_MAGIC)
        (n,) = struct.unpack(">Q", data[pos : pos + 8])
        header = json.loads(data[pos + 8 : pos + 8 + n])
        pos += 8 + n
        model = cls(LikelihoodParams.from_dict(header["params"]))
        model.calibrators = {int(h): Calibrator(**c) for h, c in header["calibrators"].items()}
        model._lineage = header["lineage"]
        for h in model.params.horizons:
            (m,) = struct.unpack(">Q", data[pos : pos + 8])
            booster = xgb.Booster()
            booster.load_model(bytearray(data[pos + 8 : pos + 8 + m]))
            model.boosters[h] = booster
            pos += 8 + m
        return model

    @property
    def model_version(self) -> str:
        return "likelihood-" + hashlib.sha256(self.to_bytes()).hexdigest()[:12]

    def lineage(self) -> dict[str, Any]:
        return json.loads(json.dumps({**self._lineage, "model_version": self.model_version}))


def as_of_day(history: UserHistory, day: dt.date) -> UserHistory:
    """What had arrived by the end of ``day``."""
    a = history.activity
    u = history.users
    arrived = history.arrays()[0]
    return UserHistory(
        activity=a[arrived <= np.datetime64(day, "D")],
        users=u[pd.to_datetime(u["dt"]).dt.date <= day] if len(u) else u,
        through=day,
    )
