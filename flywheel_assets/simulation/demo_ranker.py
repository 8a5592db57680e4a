"""Serving: rank a batch of requests with the current champion (and the running experiment's
challenger for its share of users) and log honest propensities.

The same feature definitions as training (feature_store.serving_frame over feature_vector.sql),
the latest snapshot before the serving day, and the models the registry names: the champion
alias, and the experiment serving the day. Users are assigned to an arm by hashing their
pseudonymous id with the experiment id, so a user stays in one arm for the whole experiment.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flywheel_assets import registry
from flywheel_assets.features.store import latest_snapshot, serving_frame
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.serving.policy import (
    COLD_START_VERSION,
    epsilon_greedy_slates,
    uniform_random_slates,
)
from flywheel_assets.training.model import predict


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
            self.experiment = registry.experiment_serving_on(conn, self.day)
            if self.experiment is not None and self.experiment.status != "running":
                self.experiment = None
            if self.experiment is not None and self.experiment.champion != version:
                # The champion moved since the experiment began (a rollback stops experiments,
                # so this is a registry edited by hand): its comparison no longer holds.
                self.experiment = None
            self.challenger = (
                registry.get_model(conn, self.experiment.challenger) if self.experiment else None
            )
        self.booster = self.record.load() if self.record else None
        self.challenger_booster = self.challenger.load() if self.challenger else None
        self.feature_dt = latest_snapshot(self.warehouse, self.day)

    @property
    def model_version(self) -> str:
        return self.record.model_version if self.record else COLD_START_VERSION

    def __call__(self, candidates: pd.DataFrame) -> pd.DataFrame:
        seeds = np.random.SeedSequence([self.seed, self.day.toordinal()]).generate_state(2)
        pseudonyms = self.pseudonymiser.series(candidates["user_id"])
        if self.experiment is None or self.challenger is None:
            return self._rank(candidates, pseudonyms, self.record, self.booster, seeds[0])
        arm = pseudonyms.map(
            {u: self.experiment.variant(u) for u in pseudonyms.unique()}
        ).to_numpy()
        champion = self._rank(
            candidates[arm == "champion"], pseudonyms[arm == "champion"], self.record,
            self.booster, seeds[0],
        )  # fmt: skip
        challenger = self._rank(
            candidates[arm == "challenger"], pseudonyms[arm == "challenger"], self.challenger,
            self.challenger_booster, seeds[1], variant="challenger",
        )  # fmt: skip
        return pd.concat([champion, challenger], ignore_index=True)

    def _rank(
        self,
        candidates: pd.DataFrame,
        pseudonyms: pd.Series,
        record: registry.ModelRecord | None,
        booster: object,
        seed: int,
        variant: str = "champion",
    ) -> pd.DataFrame:
        if candidates.empty:
            return pd.DataFrame(
                columns=["request_id", "item_id", "position", "propensity", "score",
                         "model_version", "variant"]
            )  # fmt: skip
        if booster is None or record is None:
            slates = uniform_random_slates(candidates, k=self.k, seed=seed)
            # The cold-start policy is the champion arm while no model has won.
            return slates.assign(model_version=COLD_START_VERSION, variant=variant)
        rows = candidates.assign(
            user_id=pseudonyms.to_numpy(), position=0, event_time=candidates["request_time"]
        )
        features = serving_frame(self.warehouse, rows, self.feature_dt)
        scores = predict(booster, record.schema, features, at_top=True)
        slates = epsilon_greedy_slates(
            candidates, scores, k=self.k, epsilon=self.epsilon, seed=seed
        )
        return slates.assign(model_version=record.model_version, variant=variant)
