"""Serving: rank a batch of requests with the current champion and log honest propensities.

The same feature definitions as training (feature_store.serving_frame over feature_vector.sql),
the latest snapshot before the serving day, and the model the registry's champion alias names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import registry
from .feature_store import latest_snapshot, serving_frame
from .policy import COLD_START_VERSION, epsilon_greedy_slates, uniform_random_slates
from .pseudonym import Pseudonymiser
from .training import predict
from .warehouse import Warehouse


@dataclass
class ChampionPolicy:
    """A batch ranker for one serving day (the simulator's Ranker protocol)."""

    warehouse: Warehouse
    pseudonymiser: Pseudonymiser
    day: dt.date
    k: int = 10
    epsilon: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        with self.warehouse.begin() as conn:
            version = registry.get_alias(conn, registry.CHAMPION)
            self.record = registry.get_model(conn, version) if version else None
        self.booster = self.record.load() if self.record else None
        self.feature_dt = latest_snapshot(self.warehouse, self.day)

    @property
    def model_version(self) -> str:
        return self.record.model_version if self.record else COLD_START_VERSION

    def __call__(self, candidates: pd.DataFrame) -> pd.DataFrame:
        seed = [self.seed, self.day.toordinal()]
        if self.booster is None or self.record is None:
            slates = uniform_random_slates(
                candidates, k=self.k, seed=np.random.SeedSequence(seed).generate_state(1)[0]
            )
            variant = "cold_start"
        else:
            rows = candidates.assign(
                user_id=self.pseudonymiser.series(candidates["user_id"]),
                position=0,
                event_time=candidates["request_time"],
            )
            features = serving_frame(self.warehouse, rows, self.feature_dt)
            scores = predict(self.booster, self.record.schema, features, at_top=True)
            slates = epsilon_greedy_slates(
                candidates,
                scores,
                k=self.k,
                epsilon=self.epsilon,
                seed=np.random.SeedSequence(seed).generate_state(1)[0],
            )
            variant = "champion"
        return slates.assign(model_version=self.model_version, variant=variant)
