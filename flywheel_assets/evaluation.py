"""Offline evaluation and the promotion rule: plain functions, no Dagster."""

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


@dataclass(frozen=True)
class OfflineMetrics:
    n_rows: int
    auc: float
    log_loss: float
    ndcg_at_10: float

    def as_dict(self) -> dict[str, float]:
        return {
            "n_rows": self.n_rows,
            "auc": self.auc,
            "log_loss": self.log_loss,
            "ndcg_at_10": self.ndcg_at_10,
        }


def offline_metrics(
    holdout: pd.DataFrame, scores: np.ndarray, label_col: str = "label_purchase"
) -> OfflineMetrics:
    """AUC and log loss on the label; NDCG@10 per request with purchase=2, click=1 gains."""
    relevance = np.maximum(
        holdout["label_purchase"].to_numpy() * 2, holdout["label_click"].to_numpy()
    )
    return OfflineMetrics(
        n_rows=len(holdout),
        auc=auc(holdout[label_col].to_numpy(), scores),
        log_loss=log_loss(holdout[label_col].to_numpy(), scores),
        ndcg_at_10=ndcg_at_k(holdout["request_id"].to_numpy(), relevance, scores, k=10),
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
    """The offline gate: a challenger replaces the champion only when it predicts purchases
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
            "promote", "no champion yet: the first trained model replaces the cold-start policy"
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
