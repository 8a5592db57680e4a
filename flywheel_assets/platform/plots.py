"""Small PNG plots embedded in markdown metadata, so the Dagster UI shows them inline."""

from __future__ import annotations

import base64
import io
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (no display in a run worker)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_markdown(fig: Any, title: str) -> str:
    """``fig`` as an inline markdown image; the figure is closed."""
    plt = pyplot()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"![{title}](data:image/png;base64,{data})"


def importance_markdown(gain: dict[str, float], title: str, top: int = 15) -> str:
    """A horizontal bar chart of the ``top`` features by total gain."""
    if not gain:
        return "_(the model has no splits)_"
    items = sorted(gain.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 0.22 * len(items) + 0.9), dpi=90)
    ax.barh([k for k, _ in items], [v for _, v in items], color="#4c72b0")
    ax.set_xlabel("total gain", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return png_markdown(fig, title)


def reliability_markdown(tables: dict[str, Any], title: str) -> str:
    """Reliability diagram: mean predicted vs observed rate per bin, one line per model."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=90)
    top = 0.0
    for label, table in tables.items():
        ax.plot(table["predicted"], table["observed"], marker="o", ms=3, label=label)
        top = max(top, float(table["predicted"].max()), float(table["observed"].max()))
    ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--", label="perfect")
    ax.set_xlabel("mean predicted probability", fontsize=8)
    ax.set_ylabel("observed rate", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return png_markdown(fig, title)


def gains_markdown(curves: dict[str, Any], title: str) -> str:
    """Cumulative gains: the share of buyers reached by the top share of users, one line per
    model (frames with ``users`` and ``buyers``), beside a random campaign's diagonal."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=90)
    for label, g in curves.items():
        ax.plot([0.0, *g["users"]], [0.0, *g["buyers"]], marker="o", ms=3, label=label)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="random")
    ax.set_xlabel("share of users contacted (by score)", fontsize=8)
    ax.set_ylabel("share of buyers reached", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return png_markdown(fig, title)


def effect_over_looks_markdown(looks: Any, title: str) -> str:
    """The primary effect per daily look with its always-valid confidence band."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.0), dpi=90)
    x = [str(d) for d in looks["dt"]]
    if len(x) == 1:
        # One look is one point: its interval as an error bar (a band needs two days), and a
        # word on what the plot will show.
        effect, low, high = (float(looks[c].iloc[0]) for c in ("effect", "ci_low", "ci_high"))
        ax.errorbar(x, [effect], yerr=[[effect - low], [high - effect]], fmt="o", capsize=6,
                    color="#4c72b0", label="effect, always-valid 95% CI")  # fmt: skip
        ax.set_xlim(-1, 1)
        ax.text(0.02, 0.04, "first look: one point per daily look from here",
                transform=ax.transAxes, fontsize=7, color="grey")  # fmt: skip
    else:
        ax.fill_between(x, looks["ci_low"], looks["ci_high"], alpha=0.25, color="#4c72b0",
                        label="always-valid 95% CI")  # fmt: skip
        ax.plot(x, looks["effect"], marker="o", color="#4c72b0", label="effect")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("challenger - champion", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.tick_params(axis="x", rotation=45)
    ax.legend(fontsize=7)
    return png_markdown(fig, title)


def health_markdown(history: Any, title: str) -> str:
    """Purchase rate and CTR per day (and the oracle share, when the simulator reported it),
    with a dotted line where the champion changed."""
    if history.empty:
        return "_(no days yet)_"
    plt = pyplot()
    has_oracle = history["oracle_share"].notna().any()
    panels = 3 if has_oracle else 2
    fig, axes = plt.subplots(panels, 1, figsize=(6.4, 1.7 * panels + 0.6), dpi=90, sharex=True)
    days = list(history["dt"])
    series = [("purchase_rate", "purchases / request"), ("ctr", "CTR")]
    if has_oracle:
        series.append(("oracle_share", "oracle share"))
    for ax, (col, label) in zip(axes, series, strict=True):
        ax.plot(days, history[col].astype(float), marker="o", markersize=3, color="#4c72b0")
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    champions = list(history["champion"].fillna("cold-start"))
    for i in range(1, len(days)):
        if champions[i] != champions[i - 1]:
            for ax in axes:
                ax.axvline(days[i], color="#dd8452", linestyle=":", linewidth=1)
            axes[0].annotate(
                f"champion {champions[i]}", (days[i], axes[0].get_ylim()[1]), fontsize=8,
                rotation=90, va="top", ha="right", color="#dd8452",
            )  # fmt: skip
    axes[0].set_title(title, fontsize=9)
    import matplotlib.dates as mdates

    # whole days, at most about eight labels
    axes[-1].xaxis.set_major_locator(mdates.DayLocator(interval=max(1, len(days) // 8)))
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    fig.autofmt_xdate()
    return png_markdown(fig, title)


def forecast_markdown(history: Any, forecast: Any, title: str) -> str:
    """A series' last weeks of units and its forecast: the median and the 10-90% band.
    ``history``: day, units; ``forecast``: target_day, units_p10, units_p50, units_p90."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 2.4), dpi=90)
    ax.plot(history["day"], history["units"], color="#4c72b0", linewidth=1, label="sold")
    ax.fill_between(
        forecast["target_day"], forecast["units_p10"], forecast["units_p90"],
        color="#dd8452", alpha=0.3, label="10-90%",
    )  # fmt: skip
    ax.plot(forecast["target_day"], forecast["units_p50"], color="#dd8452", label="median")
    ax.set_ylabel("units / day", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title, fontsize=9)
    fig.autofmt_xdate()
    return png_markdown(fig, title)


def backtest_markdown(per_origin: Any, title: str, level: str = "item") -> str:
    """Each model's MASE at each backtest origin (one line per model) at ``level``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 2.4), dpi=90)
    rows = per_origin[per_origin["level"] == level]
    for model, g in rows.groupby("model", sort=True):
        ax.plot(g["origin"], g["mase"], marker="o", markersize=3, label=str(model))
    ax.set_ylabel(f"MASE ({level})", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.autofmt_xdate()
    return png_markdown(fig, title)
