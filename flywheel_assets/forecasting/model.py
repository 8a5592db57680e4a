"""The global demand forecaster: one XGBoost multi-quantile model over every series.

Items, categories and the shop total differ in volume by orders of magnitude, so the target is
scaled per series (units / the series' mean daily units over the days before the origin, plus
a small epsilon; the log of that scale is a feature) and one model learns from all of them.
Forecasts are direct multi-horizon: one row per (series, origin, horizon h = 1..H) with every
feature computed from days strictly before the origin, so the same row shape serves training
(past origins, observed targets) and forecasting (the current origin).

Intervals: XGBoost's multi-quantile regression gives p10/p50/p90; a split-conformal step (CQR,
Romano et al. 2019) on the most recent fully observed origin widens or narrows both bounds per
level so that 80 % of calibration outcomes fall inside. docs/forecasting.md has the details.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from flywheel_assets.forecasting.panel import LEVELS, DemandPanel

_MAGIC = b"FLYWHEEL-FORECAST-1\n"
QUANTILES = (0.1, 0.5, 0.9)
LEVEL_CODES = {level: i for i, level in enumerate(LEVELS)}


def _default_xgb() -> dict[str, Any]:
    return {
        "objective": "reg:quantileerror",
        "quantile_alpha": list(QUANTILES),
        "tree_method": "hist",
        "max_depth": 6,
        "eta": 0.08,
        "min_child_weight": 10.0,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "max_bin": 128,
    }


@dataclass(frozen=True)
class ForecastParams:
    """Everything that defines a fitted model besides the data (it is stored with it)."""

    horizon: int = 28
    training_origins: int = 8
    origin_step: int = 7
    lags: int = 7
    windows: tuple[int, ...] = (7, 28, 91)
    scale_days: int = 56
    scale_epsilon: float = 0.05
    min_history: int = 28
    num_boost_round: int = 150
    max_training_rows: int = 200_000
    calibrate: bool = True
    # Refit on the calibration origin too once the conformal adjustment is known: uses the
    # newest data at the price of a second fit (the adjustment was measured on the first).
    refit: bool = False
    coverage: float = 0.8
    # Learn and calibrate the quantiles of the jittered count Y + U, U ~ Uniform[0, 1) (see
    # jitter_counts): the only way an interval for a count can cover 80 % and not more.
    jitter: bool = True
    # How much fewer rows weigh: see _level_weights (0 none, 1 every level equally).
    level_balance: float = 0.5
    # Days over which a series' level error is measured for the replenishment plan: a week
    # (measured on the simulator: 8 days, the default lead time and review, did no better).
    lead_window: int = 7
    seed: int = 0
    nthread: int = 2
    xgb_params: dict[str, Any] = field(default_factory=_default_xgb)

    def booster_params(self) -> dict[str, Any]:
        return {**self.xgb_params, "seed": self.seed, "nthread": self.nthread}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["windows"] = list(self.windows)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ForecastParams:
        # A model stored before jittering existed was trained on the counts themselves.
        return cls(**{"jitter": False, **d, "windows": tuple(d["windows"])})


def feature_names(params: ForecastParams) -> list[str]:
    return (
        [f"lag_{k}" for k in range(1, params.lags + 1)]
        + [f"mean_{w}" for w in params.windows]
        + [f"zero_share_{w}" for w in params.windows if w >= 28]
        + [
            "days_since_sale",
            "same_weekday_mean_8w",
            "log_scale",
            "log_price",
            "price_change_28d",
            "planned_price_change",
            "h",
            "target_weekday",
            "target_day_of_month",
            "level",
            "category",
            "brand",
        ]
    )


_CATEGORICAL = {"level", "category", "brand"}


def jitter_counts(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Y + U with U ~ Uniform[0, 1): a continuous variable whose quantiles are the count's
    spread over its unit interval. floor() of its tau-quantile is exactly the count's
    tau-quantile (Machado & Santos Silva 2005, quantiles for counts), and an interval of its
    quantiles covers the share of jittered outcomes it names; the count's own central
    interval cannot (an item that sells nothing on 85 % of days has the 80 % interval [0, 0],
    which covers 85 %). docs/forecasting.md, Intervals for counts."""
    return y + rng.random(len(y))


def _window_mean(u: np.ndarray, o: int, w: int) -> np.ndarray:
    lo = max(0, o - w)
    if o <= lo:
        return np.full(u.shape[0], np.nan)
    return u[:, lo:o].mean(axis=1)


@dataclass(frozen=True)
class _Rows:
    """Feature rows of one panel at one origin, series-major then horizon."""

    x: np.ndarray
    scale: np.ndarray  # per row
    series: np.ndarray  # row -> series index in the panel
    h: np.ndarray


def _codes(names: np.ndarray, vocab: list[str]) -> np.ndarray:
    index = {v: i for i, v in enumerate(vocab)}
    return np.array([index.get(n, np.nan) if n is not None else np.nan for n in names], "float64")


def panel_features(
    panel: DemandPanel, origin: int, params: ForecastParams, vocab: dict[str, list[str]]
) -> _Rows:
    """Features of every series of ``panel`` at day index ``origin`` for h = 1..horizon.

    Reads units only in columns < ``origin`` (the leakage test holds this) and prices up to
    the target day: list prices are a schedule known in advance.
    """
    n, horizon = panel.n_series, params.horizon
    u = panel.units[:, :origin].astype("float64")
    scale = np.nan_to_num(_window_mean(u, origin, params.scale_days)) + params.scale_epsilon
    cols: list[np.ndarray] = []
    for k in range(1, params.lags + 1):
        cols.append(u[:, origin - k] / scale if origin - k >= 0 else np.full(n, np.nan))
    for w in params.windows:
        cols.append(_window_mean(u, origin, w) / scale)
    for w in params.windows:
        if w >= 28:
            cols.append(_window_mean((u == 0).astype("float64"), origin, w))
    sold = u > 0
    last = np.where(sold.any(axis=1), origin - 1 - np.argmax(sold[:, ::-1], axis=1), -(10**6))
    days_since = np.minimum(origin - last, 365).astype("float64")

    # Mean units on each weekday over the last 8 weeks, read at the target day's weekday.
    lo = max(0, origin - 56)
    weekday_of = panel.days[0].dayofweek
    by_weekday = np.full((n, 7), np.nan)
    for d in range(7):
        idx = [c for c in range(lo, origin) if (weekday_of + c) % 7 == d]
        if idx:
            by_weekday[:, d] = u[:, idx].mean(axis=1)

    last_price_col = min(origin, panel.price.shape[1]) - 1
    p_origin = panel.price[:, max(last_price_col, 0)].astype("float64")
    p_mean = panel.price[:, max(0, origin - 28) : max(origin, 1)].astype("float64").mean(axis=1)
    series_block = np.column_stack(
        cols
        + [
            days_since,
            np.zeros(n),  # same-weekday placeholder, filled per horizon below
            np.log(scale),
            np.log(np.maximum(p_origin, 1e-6)),
            p_origin / np.maximum(p_mean, 1e-6) - 1.0,
        ]
    )
    hs = np.arange(1, horizon + 1)
    target_cols = origin + hs - 1
    target_days = panel.days[0] + pd.to_timedelta(target_cols, unit="D")
    price_cols = np.minimum(target_cols, panel.price.shape[1] - 1)
    planned = panel.price[:, price_cols].astype("float64") / np.maximum(p_origin, 1e-6)[:, None]
    same_wd = by_weekday[:, target_days.dayofweek.to_numpy()] / scale[:, None]

    x = np.repeat(series_block, horizon, axis=0)
    x[:, len(cols) + 1] = same_wd.reshape(-1)
    tail = np.column_stack(
        [
            planned.reshape(-1) - 1.0,
            np.tile(hs, n),
            np.tile(target_days.dayofweek.to_numpy(), n),
            np.tile(target_days.day.to_numpy(), n),
            np.full(n * horizon, LEVEL_CODES[panel.level]),
            np.repeat(_codes(panel.category, vocab["category"]), horizon),
            np.repeat(_codes(panel.brand, vocab["brand"]), horizon),
        ]
    )
    return _Rows(
        x=np.hstack([x, tail]).astype("float32"),
        scale=np.repeat(scale, horizon),
        series=np.repeat(np.arange(n), horizon),
        h=np.tile(hs, n),
    )


def _vocabulary(panels: dict[str, DemandPanel]) -> dict[str, list[str]]:
    item = panels["item"]
    return {
        "category": sorted({c for c in item.category if c is not None}),
        "brand": sorted({b for b in item.brand if b is not None}),
    }


# Swanson's rule, the prior for a level without calibration rows: mean ~ .3 p10 + .4 p50 + .3 p90.
SWANSON = (0.3, 0.4, 0.3)


def _adjusted(q: np.ndarray, adj: np.ndarray | float) -> np.ndarray:
    """The raw quantiles widened (or narrowed) by the conformal adjustment, sorted, >= 0."""
    q = q.copy()
    q[:, 0] -= adj
    q[:, 2] += adj
    return np.clip(np.sort(q, axis=1), 0.0, None)


def _mean_weights(q: np.ndarray, y: np.ndarray) -> list[float]:
    """Non-negative weights w with y ~ q @ w on the calibration origin: the mean of a day's
    demand estimated from its three quantiles, learnt where the outcomes are known. Swanson's
    rule (.3/.4/.3) assumes a symmetric distribution; intermittent counts are skewed to the
    right and it underestimates their mean (measured: by 13% on the simulator's best sellers).
    The replenishment plan needs the mean, not the median."""
    from scipy.optimize import nnls

    if len(y) < 3 or not np.isfinite(q).all():
        return list(SWANSON)
    weights, _ = nnls(q, y)
    return [float(w) for w in weights] if weights.sum() > 0 else list(SWANSON)


def _level_shape(mean: np.ndarray, y: np.ndarray, rows: _Rows, window: int) -> float:
    """How far off a series' level can be, as the shape k of a gamma level G (mean 1) with
    demand ~ Poisson(mean x G) over ``window`` days: from the calibration origin's first
    ``window`` days of each series, by the method of moments of that negative binomial,
    Var(Y) = mu + mu^2 / k, pooled over series: k = sum mu^2 / sum((Y - mu)^2 - mu). The
    daily quantiles say how much one day varies; a lead time needs how much a whole week can
    be off, which is mostly the level (measured on the simulator: with the days' own spread
    alone, an order-up-to level meant for a 95% fill rate served 80%). inf: no excess."""
    first = rows.h <= window
    frame = pd.DataFrame({"s": rows.series[first], "mu": mean[first], "y": y[first]})
    sums = frame.groupby("s")[["mu", "y"]].sum()
    excess = float(((sums["y"] - sums["mu"]) ** 2 - sums["mu"]).sum())
    if excess <= 0:
        return float("inf")
    return float((sums["mu"] ** 2).sum() / excess)


def _level_weights(levels: np.ndarray, balance: float) -> np.ndarray:
    """Row weights: a level with n rows weighs (n_item / n) ** balance per row. A shop has
    one total and a few categories against thousands of items: unweighted, the trees fit the
    items and the shop's total is an afterthought. 0 is no weighting, 1 gives every level the
    same total weight; the default, 0.5, sits between. Measured on `flywheel demo-forecast`'s
    shop: total-level MASE 4.04 (0), 3.53 (0.5), 3.28 (1); item level 0.765, 0.764, 0.783. It
    helps the total only a little: the total's real trouble is the yearly season a 400-day
    history cannot teach (docs/forecasting.md, Limits)."""
    counts = {code: int((levels == code).sum()) for code in np.unique(levels)}
    item = counts.get(LEVEL_CODES["item"], max(counts.values()))
    per_level = {code: (item / n) ** balance for code, n in counts.items()}
    return np.array([per_level[code] for code in levels], dtype="float32")


def _conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """The split-conformal quantile: the ceil((n + 1) * coverage)-th smallest score."""
    n = len(scores)
    if n == 0:
        return 0.0
    q = min(1.0, np.ceil((n + 1) * coverage) / n)
    return float(np.quantile(scores, q, method="higher"))


class GlobalForecaster:
    """Fit on past origins of all panels, forecast the next ``horizon`` days of each series."""

    def __init__(self, params: ForecastParams | None = None) -> None:
        self.params = params or ForecastParams()
        self.booster: xgb.Booster | None = None
        self.vocab: dict[str, list[str]] = {"category": [], "brand": []}
        self.calibration: dict[str, float] = {}
        # Per level: weights of (p10, p50, p90) whose sum estimates the mean (see _mean_weights).
        self.mean_weights: dict[str, list[float]] = {}
        # Per level: the gamma shape of a series' level error over a week (see _level_shape).
        self.level_shape: dict[str, float] = {}
        self._lineage: dict[str, Any] = {}

    # -- training -------------------------------------------------------------------------

    def _origins(self, first_origin: int) -> tuple[list[int], int | None]:
        p = self.params
        cal = first_origin - p.horizon if p.calibrate else None
        newest = first_origin - p.horizon - (p.horizon if p.calibrate else 0)
        train = [newest - p.origin_step * k for k in range(p.training_origins)]
        return sorted(o for o in train if o >= p.min_history), cal

    def _stack(
        self, panels: dict[str, DemandPanel], origins: list[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xs, ys, levels = [], [], []
        h = self.params.horizon
        n_agg = sum(panels[level].n_series for level in LEVELS if level != "item")
        n_item = panels["item"].n_series
        # Keep every category/total row (few and informative) and a seeded share of item rows
        # so the stacked matrix stays near max_training_rows however large the catalog.
        budget = max(self.params.max_training_rows - len(origins) * n_agg * h, 0)
        share = min(1.0, budget / max(len(origins) * n_item * h, 1))
        rng = np.random.default_rng(self.params.seed)
        for o in origins:
            for level in LEVELS:
                panel = panels[level]
                rows = panel_features(panel, o, self.params, self.vocab)
                y = panel.units[rows.series, o + rows.h - 1].astype("float64")
                y = (jitter_counts(y, rng) if self.params.jitter else y) / rows.scale
                x = rows.x
                if level == "item" and share < 1.0:
                    keep = rng.random(len(y)) < share
                    x, y = x[keep], y[keep]
                xs.append(x)
                ys.append(y)
                levels.append(np.full(len(y), LEVEL_CODES[level]))
        return np.vstack(xs), np.concatenate(ys), np.concatenate(levels)

    def _train(self, x: np.ndarray, y: np.ndarray, levels: np.ndarray) -> xgb.Booster:
        p = self.params
        if len(y) > p.max_training_rows:
            # Deterministic subsample (seeded, kept in row order) for bounded fit time.
            keep = np.sort(
                np.random.default_rng(p.seed).choice(len(y), p.max_training_rows, replace=False)
            )
            x, y, levels = x[keep], y[keep], levels[keep]
        names = feature_names(p)
        types = ["c" if f in _CATEGORICAL else "q" for f in names]
        dtrain = xgb.DMatrix(
            x,
            label=y,
            weight=_level_weights(levels, p.level_balance),
            feature_names=names,
            feature_types=types,
            nthread=p.nthread,
        )
        self._lineage["rows_trained"] = int(len(y))
        return xgb.train(p.booster_params(), dtrain, num_boost_round=p.num_boost_round)

    def fit(self, panels: dict[str, DemandPanel], origin: pd.Timestamp | str) -> GlobalForecaster:
        """Train for forecasting from ``origin`` (the first day to forecast): only days before
        it are read; all of them must lie in the panels."""
        p = self.params
        o = panels["item"].day_index(origin)
        if o > len(panels["item"].days):
            raise ValueError(f"origin {origin} is more than one day after the panels end")
        self.vocab = _vocabulary(panels)
        train, cal = self._origins(o)
        if not train:
            raise ValueError(f"not enough history before {origin} to train")
        x, y, levels = self._stack(panels, train)
        rows_available = len(y)
        self.booster = self._train(x, y, levels)
        self.calibration = {level: 0.0 for level in LEVELS}
        before: dict[str, float] = {}
        after: dict[str, float] = {}
        if cal is not None and cal >= p.min_history:
            rng = np.random.default_rng([p.seed, 1])
            for level in LEVELS:
                panel = panels[level]
                rows = panel_features(panel, cal, p, self.vocab)
                y_cal = panel.units[rows.series, cal + rows.h - 1].astype("float64")
                z_cal = jitter_counts(y_cal, rng) if p.jitter else y_cal
                q = self._raw(rows)
                scores = np.maximum(q[:, 0] - z_cal, z_cal - q[:, 2]) / rows.scale
                adj = _conformal_quantile(scores, p.coverage)
                self.calibration[level] = adj
                before[level] = float(np.mean(scores <= 0))
                after[level] = float(np.mean(scores <= adj))
                final = _adjusted(q, adj * rows.scale)
                basis = self._mean_basis(final)
                self.mean_weights[level] = _mean_weights(basis, y_cal)
                self.level_shape[level] = _level_shape(
                    basis @ np.asarray(self.mean_weights[level]), y_cal, rows, p.lead_window
                )
            if p.refit:
                train = sorted(train + [cal])
                x, y, levels = self._stack(panels, train)
                rows_available = len(y)
                self.booster = self._train(x, y, levels)
        days = panels["item"].days
        self._lineage.update(
            {
                "origin": str(days[0] + pd.Timedelta(days=o))[:10],
                "training_origins": [str(days[0] + pd.Timedelta(days=t))[:10] for t in train],
                "calibration_origin": None
                if cal is None
                else str(days[0] + pd.Timedelta(days=cal))[:10],
                "history_days": int(o),
                "first_day": str(days[0])[:10],
                "feature_names": feature_names(p),
                "rows_available": int(rows_available),
                "series": {level: int(panels[level].n_series) for level in LEVELS},
                "calibration_adjustment": dict(self.calibration),
                "mean_weights": dict(self.mean_weights),
                "level_shape": dict(self.level_shape),
                "calibration_coverage_raw": before,
                "calibration_coverage_adjusted": after,
                "params": p.to_dict(),
            }
        )
        return self

    def _mean_basis(self, q: np.ndarray) -> np.ndarray:
        """What the mean is estimated from: the quantiles of the count itself. A jittered
        quantile is about half a unit above the count's (E[Y + U] = E[Y] + 1/2), and weights
        without an intercept cannot take that half back for an item that mostly sells
        nothing (its quantiles near 0.1, 0.5, 0.9 against a mean near 0.05)."""
        return np.clip(q - 0.5, 0.0, None) if self.params.jitter else q

    # -- forecasting ----------------------------------------------------------------------

    def _raw(self, rows: _Rows) -> np.ndarray:
        """Unsorted, unclipped quantiles in units (rows x 3)."""
        if self.booster is None:
            raise RuntimeError("the forecaster is not fitted")
        names = feature_names(self.params)
        types = ["c" if f in _CATEGORICAL else "q" for f in names]
        d = xgb.DMatrix(
            rows.x, feature_names=names, feature_types=types, nthread=self.params.nthread
        )
        return self.booster.predict(d).astype("float64") * rows.scale[:, None]

    def predict(self, panels: dict[str, DemandPanel], origin: pd.Timestamp | str) -> pd.DataFrame:
        """Quantile forecasts of every series for ``origin`` .. ``origin + horizon - 1``."""
        frames = []
        version = self.model_version
        for level in LEVELS:
            panel = panels[level]
            o = panel.day_index(origin)
            if not self.params.min_history <= o <= len(panel.days):
                raise ValueError(
                    f"origin {origin}: needs history in the panels up to the day before"
                )
            rows = panel_features(panel, o, self.params, self.vocab)
            q = _adjusted(self._raw(rows), self.calibration.get(level, 0.0) * rows.scale)
            weights = np.asarray(self.mean_weights.get(level, SWANSON), dtype="float64")
            # The median count (floor of the jittered median): the point that minimises
            # absolute error, scored by MASE and WAPE, and the revenue's units.
            point = np.floor(q[:, 1]) if self.params.jitter else q[:, 1]
            frames.append(
                pd.DataFrame(
                    {
                        "level": level,
                        "key": panel.keys[rows.series],
                        "target_day": panel.days[0] + pd.to_timedelta(o + rows.h - 1, unit="D"),
                        "units_p10": q[:, 0],
                        "units_p50": q[:, 1],
                        "units_p90": q[:, 2],
                        "units_mean": self._mean_basis(q) @ weights,
                        "units_point": point,
                        "revenue_p50": point * _unit_price(panel, o, rows),
                        "model_version": version,
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    # -- persistence ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Header (params, vocabulary, calibration, lineage as sorted JSON) + UBJSON booster:
        identical bytes for identical inputs, params and seed."""
        if self.booster is None:
            raise RuntimeError("the forecaster is not fitted")
        header = json.dumps(
            {
                "params": self.params.to_dict(),
                "vocab": self.vocab,
                "calibration": self.calibration,
                "mean_weights": self.mean_weights,
                "level_shape": self.level_shape,
                "lineage": self._lineage,
            },
            sort_keys=True,
        ).encode()
        booster = bytes(self.booster.save_raw(raw_format="ubj"))
        return _MAGIC + struct.pack(">Q", len(header)) + header + booster

    @classmethod
    def from_bytes(cls, data: bytes) -> GlobalForecaster:
        if not data.startswith(_MAGIC):
            raise ValueError("not a flywheel forecast model")
        start = len(_MAGIC) + 8
        (n,) = struct.unpack(">Q", data[len(_MAGIC) : start])
        header = json.loads(data[start : start + n])
        model = cls(ForecastParams.from_dict(header["params"]))
        model.vocab = header["vocab"]
        model.calibration = {k: float(v) for k, v in header["calibration"].items()}
        model.mean_weights = header.get("mean_weights", {})
        model.level_shape = header.get("level_shape", {})
        model._lineage = header["lineage"]
        booster = xgb.Booster()
        booster.load_model(bytearray(data[start + n :]))
        model.booster = booster
        return model

    @property
    def model_version(self) -> str:
        return "forecast-" + hashlib.sha256(self.to_bytes()).hexdigest()[:12]

    def lineage(self) -> dict[str, Any]:
        """What the model was trained on (JSON-serialisable)."""
        return json.loads(json.dumps({**self._lineage, "model_version": self.model_version}))


def _unit_price(panel: DemandPanel, o: int, rows: _Rows) -> np.ndarray:
    return unit_prices(panel, o, rows.series, rows.h)


def unit_prices(panel: DemandPanel, o: int, series: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Price per unit of each forecast row (series index, horizon 1..H) from day index ``o``:
    an item's (planned) list price on the target day; for a category or the total, the
    units-weighted price realised over the 28 days before the origin, moved by the planned
    change of the members' mean list price."""
    last = panel.price.shape[1] - 1
    cols = np.minimum(o + h - 1, last)
    listed = panel.price[series, cols].astype("float64")
    if panel.level == "item":
        return listed
    lo, hi = max(0, o - 28), min(o, panel.units.shape[1])
    units = panel.units[:, lo:hi].sum(axis=1).astype("float64")
    revenue = panel.revenue[:, lo:hi].sum(axis=1).astype("float64")
    at_origin = panel.price[:, max(0, min(o, last + 1) - 1)].astype("float64")
    realised = np.where(units > 0, revenue / np.maximum(units, 1e-12), at_origin)
    return realised[series] * listed / np.maximum(at_origin[series], 1e-6)


def fit_predict(
    panels: dict[str, DemandPanel], origin: pd.Timestamp | str, params: ForecastParams | None = None
) -> pd.DataFrame:
    """Fit on the days before ``origin`` and forecast from it: the backtest's model callable."""
    return GlobalForecaster(params).fit(panels, origin).predict(panels, origin)
