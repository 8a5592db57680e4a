"""Baseline forecasts: seasonal naive and additive ETS with a weekly season.

They give the backtest its yardstick: a model that does not beat seasonal naive is not worth
shipping (the blocking check), and ETS is the classical per-series method the global model
must also beat (M5: the exponential-smoothing benchmark beat 92.5% of the teams).

- **Seasonal naive**: each day is the same weekday of the last observed week. Its 80% interval
  is the textbook one (Hyndman & Athanasopoulos, FPP3 5.5): the point plus or minus
  z(0.9) x sigma x sqrt(k), sigma the standard deviation of the in-sample seasonal differences
  (from the series' first sale) and k the number of whole seasons ahead. A few lines of numpy,
  vectorised over every series.
- **ETS**: statsmodels' ``ETSModel`` with additive error, no trend and an additive weekly season
  (ANA), fitted per series by maximum likelihood on its last ``ETS_HISTORY_DAYS``, with its
  analytic 80% prediction interval. About 20 ms a series on this machine, so ``n_jobs``
  processes share the series at scale (docs/forecasting.md, Baselines). A series that cannot
  be fitted (too short, all zeros) falls back to seasonal naive.

statsforecast would be faster, but it pins pandas < 3, which the rest of the project has
moved past (docs/decisions.md, 81). Forecasts come in the model's frame shape so the backtest
treats them alike, with the point forecast in ``units_point``.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from scipy.stats import norm

from flywheel_assets.forecasting.panel import LEVELS, DemandPanel

SEASON = 7
Z80 = float(norm.ppf(0.9))
# ETS is fitted on the last year: enough for a weekly season, and the fit's cost grows with it.
ETS_HISTORY_DAYS = 365
# Below this many days since its first sale a series is not fitted: seasonal naive stands in.
ETS_MIN_DAYS = 4 * SEASON


def _frame(
    level: str,
    keys: np.ndarray,
    days: pd.DatetimeIndex,
    q: np.ndarray,
    point: np.ndarray,
    label: str,
) -> pd.DataFrame:
    """Rows (series x horizon) of one level; ``q`` and ``point`` are (series, horizon)."""
    n, h = point.shape
    q = np.clip(np.nan_to_num(q), 0.0, None)
    q = np.sort(q, axis=2)
    return pd.DataFrame(
        {
            "level": level,
            "key": np.repeat(keys, h),
            "target_day": np.tile(days.to_numpy(), n),
            "units_p10": q[:, :, 0].reshape(-1),
            "units_p50": q[:, :, 1].reshape(-1),
            "units_p90": q[:, :, 2].reshape(-1),
            # Demand is never negative: clip the (additive) baselines at zero like the model.
            "units_point": np.clip(np.nan_to_num(point), 0.0, None).reshape(-1),
            "model_version": label,
        }
    )


def _first_sale(u: np.ndarray) -> np.ndarray:
    sold = u > 0
    return np.where(sold.any(axis=1), sold.argmax(axis=1), u.shape[1])


def _seasonal_naive_arrays(u: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Point (series, horizon) and quantiles (series, horizon, 3) from history ``u``."""
    n, t = u.shape
    steps = np.arange(horizon)
    point = u[:, t - SEASON + (steps % SEASON)] if t >= SEASON else np.zeros((n, horizon))
    sigma = np.zeros(n)
    if t > SEASON:
        diffs = u[:, SEASON:] - u[:, :-SEASON]
        valid = np.arange(SEASON, t)[None, :] - SEASON >= _first_sale(u)[:, None]
        count = valid.sum(axis=1)
        mean = np.where(count > 0, (diffs * valid).sum(axis=1) / np.maximum(count, 1), 0.0)
        var = np.where(
            count > 1,
            (((diffs - mean[:, None]) ** 2) * valid).sum(axis=1) / np.maximum(count - 1, 1),
            0.0,
        )
        sigma = np.sqrt(var)
    spread = Z80 * sigma[:, None] * np.sqrt(steps // SEASON + 1)[None, :]
    q = np.stack([point - spread, point, point + spread], axis=2)
    return point, q


def seasonal_naive(
    panels: dict[str, DemandPanel],
    origin: pd.Timestamp | str,
    horizon: int = 28,
    n_jobs: int = 1,
    levels: tuple[str, ...] = LEVELS,
) -> pd.DataFrame:
    """Each day's forecast is the same weekday of the last observed week."""
    del n_jobs  # vectorised: one process is enough
    frames = []
    for level in levels:
        panel = panels[level]
        o = panel.day_index(origin)
        point, q = _seasonal_naive_arrays(panel.units[:, :o].astype("float64"), horizon)
        days = pd.date_range(pd.Timestamp(origin).normalize(), periods=horizon, freq="D")
        frames.append(_frame(level, panel.keys, days, q, point, "seasonal_naive"))
    return pd.concat(frames, ignore_index=True)


def _ets_one(y: np.ndarray, horizon: int) -> np.ndarray | None:
    """(horizon, 3): p10, point, p90 of ANA ETS on ``y``; None when it cannot be fitted."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    if len(y) < ETS_MIN_DAYS or not np.any(y != y[0]):
        return None
    index = pd.date_range("2000-01-03", periods=len(y), freq="D")
    # Fitting warns on flat likelihoods and bounds, expected on intermittent counts: here only.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            model = ETSModel(
                pd.Series(y, index=index), error="add", seasonal="add", seasonal_periods=SEASON
            )
            fit = model.fit(disp=False, maxiter=200)
            frame = fit.get_prediction(start=len(y), end=len(y) + horizon - 1).summary_frame(
                alpha=0.2
            )
        except (ValueError, np.linalg.LinAlgError):
            return None
    out = frame[["pi_lower", "mean", "pi_upper"]].to_numpy("float64")
    return out if np.isfinite(out).all() else None


def _ets_block(series: list[np.ndarray], horizon: int) -> list[np.ndarray | None]:
    return [_ets_one(y, horizon) for y in series]


def ets(
    panels: dict[str, DemandPanel],
    origin: pd.Timestamp | str,
    horizon: int = 28,
    n_jobs: int = 1,
    levels: tuple[str, ...] = LEVELS,
) -> pd.DataFrame:
    """Additive ETS (ANA) with a weekly season, per series; ``n_jobs`` processes."""
    frames = []
    days = pd.date_range(pd.Timestamp(origin).normalize(), periods=horizon, freq="D")
    for level in levels:
        panel = panels[level]
        o = panel.day_index(origin)
        u = panel.units[:, :o].astype("float64")
        point, q = _seasonal_naive_arrays(u, horizon)
        first = _first_sale(u)
        series = [u[i, max(first[i], o - ETS_HISTORY_DAYS) :] for i in range(panel.n_series)]
        if n_jobs > 1 and len(series) > 50:
            chunks = [series[i::n_jobs] for i in range(n_jobs)]
            with ProcessPoolExecutor(n_jobs) as pool:
                parts = list(pool.map(_ets_block, chunks, [horizon] * n_jobs))
            fitted: list[np.ndarray | None] = [None] * len(series)
            for i, part in enumerate(parts):
                fitted[i::n_jobs] = part
        else:
            fitted = _ets_block(series, horizon)
        for i, f in enumerate(fitted):
            if f is not None:
                q[i] = f
                point[i] = f[:, 1]
        frames.append(_frame(level, panel.keys, days, q, point, "ets"))
    return pd.concat(frames, ignore_index=True)
