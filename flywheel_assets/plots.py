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
