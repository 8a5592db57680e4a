"""Offline evaluation: ranking and calibration metrics on a holdout, and the offline gate.

Plain functions, no Dagster (docs/evaluation.md); re-exported by ``flywheel_assets.evaluation``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) identity, ties counted half."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-7) -> float:
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    if len(y) == 0:
        return float("nan")
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def ndcg_at_k(groups: np.ndarray, relevance: np.ndarray, score: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k over groups (requests) that have at least one relevant item."""
    df = pd.DataFrame(
        {"g": groups, "rel": np.asarray(relevance, float), "s": np.asarray(score, float)}
    )
    df = df[df.groupby("g")["rel"].transform("max") > 0]
    if df.empty:
        return float("nan")
    gains = 2.0 ** df["rel"] - 1.0
    df = df.assign(gain=gains)
    by_score = df.sort_values(["g", "s"], ascending=[True, False], kind="stable")
    by_score["rank"] = by_score.groupby("g").cumcount()
    ideal = df.sort_values(["g", "rel"], ascending=[True, False], kind="stable")
    ideal["rank"] = ideal.groupby("g").cumcount()

    def dcg(frame: pd.DataFrame) -> pd.Series:
        top = frame[frame["rank"] < k]
        return (top["gain"] / np.log2(top["rank"] + 2.0)).groupby(top["g"]).sum()

    return float((dcg(by_score) / dcg(ideal)).mean())


def recall_at_k(groups: np.ndarray, relevance: np.ndarray, score: np.ndarray, k: int = 10) -> float:
    """Mean over requests with a relevant item of the share of relevant items in the top k."""
    df = pd.DataFrame(
        {"g": groups, "rel": np.asarray(relevance, float) > 0, "s": np.asarray(score, float)}
    )
    df = df[df.groupby("g")["rel"].transform("any")]
    if df.empty:
        return float("nan")
    df = df.sort_values(["g", "s"], ascending=[True, False], kind="stable")
    df["rank"] = df.groupby("g").cumcount()
    hits = df[df["rank"] < k].groupby("g")["rel"].sum()
    return float((hits / df.groupby("g")["rel"].sum()).mean())


def calibration(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> tuple[float, pd.DataFrame]:
    """Expected calibration error over equal-count bins of the predicted probability, and the
    reliability table (mean predicted vs observed rate per bin). Equal-count bins because
    purchase probabilities crowd near zero, where equal-width bins would put almost every row
    in the first bin."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan"), pd.DataFrame(columns=["bin", "n", "predicted", "observed"])
    order = np.argsort(p, kind="stable")
    bins = np.empty(len(p), dtype=int)
    bins[order] = np.arange(len(p)) * n_bins // len(p)
    table = (
        pd.DataFrame({"bin": bins, "p": p, "y": y})
        .groupby("bin")
        .agg(n=("y", "size"), predicted=("p", "mean"), observed=("y", "mean"))
        .reset_index()
    )
    ece = float((table["n"] * (table["predicted"] - table["observed"]).abs()).sum() / len(y))
    return ece, table


@dataclass(frozen=True)
class OfflineMetrics:
    n_rows: int
    auc: float
    log_loss: float
    ndcg_at_10: float
    ece: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        return {
            "n_rows": self.n_rows,
            "auc": self.auc,
            "log_loss": self.log_loss,
            "ndcg_at_10": self.ndcg_at_10,
            "ece": self.ece,
        }


def offline_metrics(
    holdout: pd.DataFrame, scores: np.ndarray, label_col: str = "label_purchase"
) -> OfflineMetrics:
    """AUC, log loss and calibration on the label; NDCG@10 (purchase=2, click=1 gains) per
    request. No recall@10: the holdout holds the logged slates, 10 items each, so every
    model's top 10 is the whole slate and recall@10 is 1 for any model (decision 78)."""
    relevance = np.maximum(
        holdout["label_purchase"].to_numpy() * 2, holdout["label_click"].to_numpy()
    )
    y = holdout[label_col].to_numpy()
    requests = holdout["request_id"].to_numpy()
    return OfflineMetrics(
        n_rows=len(holdout),
        auc=auc(y, scores),
        log_loss=log_loss(y, scores),
        ndcg_at_10=ndcg_at_k(requests, relevance, scores, k=10),
        ece=calibration(y, scores)[0],
    )


@dataclass(frozen=True)
class Decision:
    decision: str  # "promote" | "reject" | "no_challenger"
    reason: str


def promotion_rule(
    challenger: OfflineMetrics | None,
    champion: OfflineMetrics | None,
    *,
    min_log_loss_gain: float = 0.0,
    max_ndcg_drop: float = 0.01,
) -> Decision:
    """The offline gate into an online experiment ("promote" = may challenge the champion
    online; the experiment decides). A challenger passes only when it predicts purchases
    better on the same holdout (lower log loss, a proper scoring rule that uses every row and
    so is far less noisy than a ranking metric on one day's few purchases) without a material
    loss of ranking quality (NDCG@10)."""
    if challenger is None:
        return Decision("no_challenger", "no challenger was trained for this day")
    if not np.isfinite(challenger.log_loss) or not np.isfinite(challenger.ndcg_at_10):
        return Decision(
            "reject",
            "challenger has no finite log loss / NDCG@10 on the holdout (no feedback in it)",
        )
    if champion is None:
        return Decision(
            "promote",
            "no champion yet: a model with finite metrics may challenge the cold-start policy",
        )
    gain = champion.log_loss - challenger.log_loss
    ndcg_drop = champion.ndcg_at_10 - challenger.ndcg_at_10
    summary = (
        f"log loss {challenger.log_loss:.5f} vs {champion.log_loss:.5f} (gain {gain:+.5f}), "
        f"NDCG@10 {challenger.ndcg_at_10:.4f} vs {champion.ndcg_at_10:.4f}"
    )
    if gain > min_log_loss_gain and not ndcg_drop > max_ndcg_drop:
        return Decision("promote", f"challenger wins: {summary}")
    return Decision("reject", f"champion holds: {summary}")
