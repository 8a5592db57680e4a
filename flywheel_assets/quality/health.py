"""Is the flywheel getting better? One row per day in ``flywheel_health`` (requests, CTR,
purchases per request, the champion that served, the day's decision) and the recent days beside
it, with the shop simulator's oracle share where the demo recorded it.

The ``flywheel_health`` asset (``defs/reporting``) calls ``record_health`` and reports it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from flywheel_assets.platform.warehouse import Warehouse, load_sql

HISTORY_DAYS = 60


@dataclass(frozen=True)
class HealthDay:
    day: dt.date
    requests: int
    impressions: int
    clicks: int
    purchases: int
    champion: str | None  # the model the champion arm served most
    decision: str | None  # the day's promotion decision

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    @property
    def purchase_rate(self) -> float | None:
        return self.purchases / self.requests if self.requests else None

    def row(self) -> pd.DataFrame:
        """The day's flywheel_health row."""
        return pd.DataFrame(
            [
                {
                    "dt": self.day,
                    "requests": self.requests,
                    "impressions": self.impressions,
                    "clicks": self.clicks,
                    "purchases": self.purchases,
                    "ctr": self.ctr,
                    "purchase_rate": self.purchase_rate,
                    "champion": self.champion,
                    "decision": self.decision,
                }
            ]
        )


def health_day(day: dt.date, served: pd.Series) -> HealthDay:
    """The day from the columns of sql/reporting/health_day.sql (NULL counts are 0)."""
    return HealthDay(
        day=day,
        requests=int(served["requests"] or 0),
        impressions=int(served["impressions"] or 0),
        clicks=int(served["clicks"] or 0),
        purchases=int(served["purchases"] or 0),
        champion=None if pd.isna(served["champion"]) else served["champion"],
        decision=None if pd.isna(served["decision"]) else served["decision"],
    )


@dataclass(frozen=True)
class HealthReport:
    day: HealthDay
    # The days up to this one (at most HISTORY_DAYS): dt, requests, ctr, purchase_rate,
    # champion, decision, oracle_share, baseline_share (the simulator's, where recorded).
    history: pd.DataFrame

    @property
    def oracle_share(self) -> float | None:
        today = self.history[self.history["dt"] == self.day.day]
        oracle = today["oracle_share"].iloc[0] if len(today) else None
        return None if oracle is None or pd.isna(oracle) else float(oracle)


def record_health(wh: Warehouse, day: dt.date, history_days: int = HISTORY_DAYS) -> HealthReport:
    """Replace ``day``'s flywheel_health row (one transaction) and read the recent days."""
    with wh.begin() as conn:
        served = wh.query_df(conn, load_sql("reporting/health_day"), dt=day).iloc[0]
        health = health_day(day, served)
        wh.delete_partition(conn, "flywheel_health", day)
        wh.insert_df(conn, "flywheel_health", health.row())
        history = wh.query_df(conn, load_sql("reporting/health_history"), dt=day, n=history_days)
    return HealthReport(health, history)
