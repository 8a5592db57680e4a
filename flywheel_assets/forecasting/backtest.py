"""Rolling-origin backtest of forecasters on the same origins, and the decisions it feeds.

Every forecaster (the global model, seasonal naive, ETS) is a callable ``(panels, origin) ->
forecast frame`` that must read only days before the origin; the backtest runs each one on the
same origins, whose forecast days are all observed, and scores them per level with MASE, WAPE,
bias and the 80 % interval's coverage, of jittered counts and of the counts themselves
(formulas in docs/forecasting.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from flywheel_assets.forecasting.panel import LEVELS, DemandPanel

Forecaster = Callable[[dict[str, DemandPanel], pd.Timestamp], pd.DataFrame]
NOMINAL_COVERAGE = 0.8
# A challenger may be this much further from 80 % coverage than the champion and still win on
# MASE: the coverage of one backtest moves by about a point between seeds on the synthetic shop.
COVERAGE_TOLERANCE = 0.02
SUMMARY_COLUMNS = [
    "level",
    "model",
    "origins",
    "horizon_days",
    "mase",
    "wape",
    "bias",
    "coverage_80",
    "coverage_80_discrete",
]


def interval_coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per outcome, the chance that the jittered count y + U (U ~ Uniform[0, 1)) falls in
    [lo, hi]: the length of [lo, hi] within [y, y + 1]. Its mean is the interval's coverage
    as the randomised PIT measures it for counts (Czado, Gneiting & Held 2009): a calibrated
    80 % interval scores 0.8 even where most outcomes are zero, which the share of counts
    inside it cannot (docs/forecasting.md, Intervals for counts)."""
    y = np.asarray(y, dtype="float64")
    return np.clip(np.minimum(hi, y + 1.0) - np.maximum(lo, y), 0.0, 1.0)


def rolling_origins(
    last_day: pd.Timestamp | str, n_origins: int = 4, horizon: int = 28, step: int = 7
) -> list[pd.Timestamp]:
    """``n_origins`` origins ``step`` days apart, the newest one's horizon ending on
    ``last_day`` (the last observed day), so no origin forecasts an unobserved day."""
    newest = pd.Timestamp(last_day).normalize() - pd.Timedelta(days=horizon - 1)
    return [newest - pd.Timedelta(days=step * k) for k in reversed(range(n_origins))]


def seasonal_naive_scale(history: pd.DataFrame, season: int = 7) -> pd.DataFrame:
    """Per series (level, key): the in-sample mean absolute error of the one-step seasonal
    naive forecast y[t - season] over the history from the series' first sale (missing days
    count as zero; days before an item was first sold do not count)."""
    rows = []
    for (level, key), g in history.groupby(["level", "key"], sort=True):
        days = pd.to_datetime(g["day"])
        full = pd.Series(g["units"].to_numpy("float64"), index=days).sort_index()
        full = full.reindex(pd.date_range(full.index.min(), full.index.max()), fill_value=0.0)
        if (full > 0).any():
            full = full.loc[full.gt(0).idxmax() :]
        y = full.to_numpy()
        scale = np.abs(y[season:] - y[:-season]).mean() if len(y) > season else np.nan
        rows.append((level, key, scale))
    return pd.DataFrame(rows, columns=["level", "key", "scale"])


def panel_scales(
    panels: dict[str, DemandPanel], origin: pd.Timestamp, season: int = 7
) -> pd.DataFrame:
    """``seasonal_naive_scale`` of every series over the panels' days before ``origin``."""
    frames = []
    for level in LEVELS:
        panel = panels[level]
        u = panel.units[:, : panel.day_index(origin)].astype("float64")
        scale = np.full(panel.n_series, np.nan)
        if u.shape[1] > season:
            # From each series' first sale on: the days before an item was launched are not
            # days of zero demand, and their zero differences would shrink its scale.
            sold = u > 0
            first = np.where(sold.any(axis=1), sold.argmax(axis=1), u.shape[1])
            diffs = np.abs(u[:, season:] - u[:, :-season])
            valid = np.arange(season, u.shape[1])[None, :] - season >= first[:, None]
            n = valid.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = np.where(n > 0, (diffs * valid).sum(axis=1) / n, np.nan)
        frames.append(pd.DataFrame({"level": level, "key": panel.keys, "scale": scale}))
    return pd.concat(frames, ignore_index=True)


def panel_actuals(
    panels: dict[str, DemandPanel], origin: pd.Timestamp, horizon: int
) -> pd.DataFrame:
    """Observed units (level, key, target_day, units) of the ``horizon`` days from ``origin``."""
    frames = []
    for level in LEVELS:
        panel = panels[level]
        o = panel.day_index(origin)
        if o + horizon > len(panel.days):
            raise ValueError(f"origin {origin}: days up to {horizon} ahead are not all observed")
        long = panel.long(panel.days[o], panel.days[o + horizon - 1])
        frames.append(long.rename(columns={"day": "target_day"}))
    return pd.concat(frames, ignore_index=True)


def _point(forecast: pd.DataFrame) -> pd.Series:
    return forecast["units_point"] if "units_point" in forecast else forecast["units_p50"]


def _join(forecast: pd.DataFrame, actuals: pd.DataFrame, scales: pd.DataFrame) -> pd.DataFrame:
    f = forecast.assign(point=_point(forecast))[
        ["level", "key", "target_day", "point", "units_p10", "units_p90"]
    ]
    a = actuals.rename(columns={"day": "target_day"})[["level", "key", "target_day", "units"]]
    joined = f.merge(a, on=["level", "key", "target_day"], how="inner", validate="one_to_one")
    return joined.merge(scales, on=["level", "key"], how="left")


def _pooled(joined: pd.DataFrame) -> pd.DataFrame:
    """Metrics per level from joined rows (level, key, origin, units, point, p10, p90, scale)."""
    j = joined.assign(
        err=joined["point"] - joined["units"],
        inside=interval_coverage(joined["units"], joined["units_p10"], joined["units_p90"]),
        # The integer band a shop reads off the quantiles: floor(p10) .. floor(p90) units.
        inside_discrete=(np.floor(joined["units_p10"]) <= joined["units"])
        & (joined["units"] <= np.floor(joined["units_p90"])),
    )
    j["abs_err"] = j["err"].abs()
    per_series = j.groupby(["level", "key", "origin"], sort=True).agg(
        mae=("abs_err", "mean"), scale=("scale", "first")
    )
    ok = per_series["scale"] > 0
    mase = (per_series.loc[ok, "mae"] / per_series.loc[ok, "scale"]).groupby(level="level").mean()
    totals = j.groupby("level", sort=True).agg(
        abs_err=("abs_err", "sum"),
        err=("err", "sum"),
        units=("units", "sum"),
        coverage_80=("inside", "mean"),
        coverage_80_discrete=("inside_discrete", "mean"),
    )
    denom = totals["units"].where(totals["units"] > 0)
    return pd.DataFrame(
        {
            "mase": mase.reindex(totals.index),
            "wape": totals["abs_err"] / denom,
            "bias": totals["err"] / denom,
            "coverage_80": totals["coverage_80"],
            "coverage_80_discrete": totals["coverage_80_discrete"],
        }
    ).reset_index()


def forecast_metrics(
    forecast: pd.DataFrame, actuals: pd.DataFrame, history: pd.DataFrame
) -> pd.DataFrame:
    """Metrics per level of one origin's forecast.

    forecast: level, key, target_day, units_p10, units_p50, units_p90 (and units_point when
    the point forecast is not p50); actuals: level, key, day (or target_day), units; history:
    level, key, day, units before the origin (the MASE scale).
    """
    joined = _join(forecast, actuals, seasonal_naive_scale(history)).assign(origin=0)
    return _pooled(joined)


def backtest(
    panels: dict[str, DemandPanel],
    forecasters: dict[str, Forecaster],
    origins: list[pd.Timestamp],
    horizon: int = 28,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every forecaster on every origin; returns (summary, per-origin) frames.

    Summary: level, model, origins, horizon_days, mase, wape, bias, coverage_80, pooled over
    origins and horizon days. Per origin: level, model, origin, the same metrics and seconds
    (the forecaster's wall time at that origin, fit included).
    """
    joined: dict[str, list[pd.DataFrame]] = {name: [] for name in forecasters}
    per_origin = []
    for origin in origins:
        origin = pd.Timestamp(origin)
        actuals = panel_actuals(panels, origin, horizon)
        scales = panel_scales(panels, origin)
        for name, forecaster in forecasters.items():
            start = time.perf_counter()
            forecast = forecaster(panels, origin)
            seconds = time.perf_counter() - start
            j = _join(forecast, actuals, scales).assign(origin=origin)
            if len(j) != len(actuals):
                raise ValueError(f"{name} at {origin.date()}: forecast does not cover every series")
            joined[name].append(j)
            per_origin.append(_pooled(j).assign(model=name, origin=origin, seconds=seconds))
    summary = pd.concat(
        [
            _pooled(pd.concat(parts, ignore_index=True)).assign(
                model=name, origins=len(origins), horizon_days=horizon
            )
            for name, parts in joined.items()
        ],
        ignore_index=True,
    )
    per_origin_frame = pd.concat(per_origin, ignore_index=True)
    cols = ["level", "model", "origin", "mase", "wape", "bias", "coverage_80",
            "coverage_80_discrete", "seconds"]  # fmt: skip
    return summary[SUMMARY_COLUMNS], per_origin_frame[cols]


def _row(summary: pd.DataFrame, model: str, level: str) -> pd.Series:
    rows = summary[(summary["model"] == model) & (summary["level"] == level)]
    if len(rows) != 1:
        raise KeyError(f"no single {level}-level row for model {model!r} in the backtest")
    return rows.iloc[0]


def challenger_wins(
    summary: pd.DataFrame,
    champion: str,
    challenger: str,
    level: str = "item",
    coverage_tolerance: float = COVERAGE_TOLERANCE,
) -> bool:
    """The challenger replaces the champion when its MASE at ``level`` is lower and its
    80 % interval is not further from 80 % coverage than the champion's by more than the
    tolerance."""
    ch, cp = _row(summary, challenger, level), _row(summary, champion, level)
    better = bool(ch["mase"] < cp["mase"])
    miss_ch = abs(ch["coverage_80"] - NOMINAL_COVERAGE)
    miss_cp = abs(cp["coverage_80"] - NOMINAL_COVERAGE)
    return better and bool(miss_ch <= miss_cp + coverage_tolerance)


def worse_than_seasonal_naive(
    summary: pd.DataFrame, model: str, level: str = "item", baseline: str = "seasonal_naive"
) -> bool:
    """The blocking check: the model's MASE at ``level`` is above seasonal naive's."""
    return bool(_row(summary, model, level)["mase"] > _row(summary, baseline, level)["mase"])
