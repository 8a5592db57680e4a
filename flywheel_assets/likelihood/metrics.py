"""How good a purchase likelihood is: ranking, probability and campaign figures.

- ``auc``: the probability that a random buyer scores above a random non-buyer (ties count
  half): the Mann-Whitney statistic from average ranks.
- ``log_loss``: mean negative log-likelihood, probabilities clipped to [1e-6, 1 - 1e-6].
- ``calibration``: the reliability table over ``bins`` equal-count bins of the prediction
  (mean predicted, share that bought, rows), and its expected calibration error
  ECE = sum over bins of rows / n x |mean predicted - share that bought|. Equal-count bins
  keep every bin's share estimated from as many users as the others; equal-width bins leave
  the top bins nearly empty when most users are unlikely to buy.
- ``lift_at``: the share of buyers among the top ``share`` of users by score, over the share
  among all users (a campaign to the top 10 % reaches lift x as many buyers as a random one).
- ``gains``: the cumulative share of buyers reached when the users are taken by score, at
  each tenth of the users.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

EPS = 1e-6


def auc(y: np.ndarray, score: np.ndarray) -> float:
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y, dtype="float64")
    p = np.clip(np.asarray(p, dtype="float64"), EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[float, pd.DataFrame]:
    """(ECE, reliability table with bin, predicted, observed, rows)."""
    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    order = np.argsort(p, kind="stable")
    edges = np.linspace(0, len(p), bins + 1).round().astype(int)
    rows = []
    for b in range(bins):
        idx = order[edges[b] : edges[b + 1]]
        if len(idx):
            rows.append((b + 1, p[idx].mean(), y[idx].mean(), len(idx)))
    table = pd.DataFrame(rows, columns=["bin", "predicted", "observed", "rows"])
    ece = float((table["rows"] / len(p) * (table["predicted"] - table["observed"]).abs()).sum())
    return ece, table


def lift_at(y: np.ndarray, score: np.ndarray, share: float = 0.1) -> float:
    y = np.asarray(y, dtype="float64")
    base = y.mean()
    if base == 0:
        return float("nan")
    k = max(1, int(round(len(y) * share)))
    # Ties broken by position (stable): a score with many ties gets no credit for them.
    top = np.argsort(-np.asarray(score, dtype="float64"), kind="stable")[:k]
    return float(y[top].mean() / base)


def gains(y: np.ndarray, score: np.ndarray, points: int = 10) -> pd.DataFrame:
    """Share of users taken (0.1 .. 1.0) and share of all buyers among them."""
    y = np.asarray(y, dtype="float64")
    order = np.argsort(-np.asarray(score, dtype="float64"), kind="stable")
    cum = np.cumsum(y[order])
    total = max(cum[-1], 1e-12) if len(cum) else 1.0
    shares = np.arange(1, points + 1) / points
    taken = np.maximum((shares * len(y)).round().astype(int), 1)
    return pd.DataFrame({"users": shares, "buyers": cum[taken - 1] / total})


def scores(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, float]:
    """AUC, log loss, ECE, lift at the top 10 %, base rate and rows of one prediction."""
    ece, _ = calibration(y, p, bins)
    return {
        "auc": auc(y, p),
        "log_loss": log_loss(y, p),
        "ece": ece,
        "lift_top10": lift_at(y, p, 0.1),
        "base_rate": float(np.mean(y)),
        "rows": int(len(y)),
    }
