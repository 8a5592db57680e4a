"""Serving: rank a batch of requests with the current champion (and the running experiment's
challenger for its share of users) and log honest propensities.

The same feature definitions as training (feature_store.serving_frame over feature_vector.sql),
the latest snapshot before the serving day, and the models the registry names: the champion
alias, and the experiment serving the day. Users are assigned to an arm by hashing their
pseudonymous id with the experiment id, so a user stays in one arm for the whole experiment.

Real time, as the ranking service does it: when a serving model uses the real-time features,
the simulator sends each wave of the day's events to ``observe``, which applies them to an
in-process session store (``realtime.store``), and each request reads its session's last hour
from there (the day's events are not in the warehouse yet).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flywheel_assets import registry
from flywheel_assets.features.store import latest_snapshot, serving_frame
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.realtime.features import REALTIME_NAMES
from flywheel_assets.realtime.store import ItemCatalog, SessionStore
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
        self.store = SessionStore()
        self.catalog: ItemCatalog | None = None
        self._calls = 0
        if self.realtime:
            with self.warehouse.begin() as conn:
                items = self.warehouse.query_df(
                    conn, load_sql("realtime/item_attributes"), feature_dt=self.feature_dt
                )
            self.catalog = ItemCatalog.from_frame(items)

    @property
    def realtime(self) -> bool:
        """Whether a serving model reads the session's last hour (then the simulator sends
        the day's events wave by wave, to ``observe``)."""
        return any(
            _uses_realtime(r) for r in (self.record, self.challenger if self.experiment else None)
        )

    def observe(self, events: pd.DataFrame) -> None:
        """Apply the shop's events (raw user ids) to the session store, as the service does."""
        pseudonyms = self.pseudonymiser.series(events["user_id"])
        self.store.apply(events.assign(user_id=pseudonyms.to_numpy()).to_dict("records"))

    @property
    def model_version(self) -> str:
        return self.record.model_version if self.record else COLD_START_VERSION

    def __call__(self, candidates: pd.DataFrame) -> pd.DataFrame:
        # The first call draws what a whole-day call always drew; later waves draw afresh.
        entropy = [self.seed, self.day.toordinal(), *([self._calls] if self._calls else [])]
        self._calls += 1
        seeds = np.random.SeedSequence(entropy).generate_state(2)
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
        # the real-time features come from the session store below, not from the warehouse
        features = serving_frame(self.warehouse, rows, self.feature_dt, realtime=False)
        if _uses_realtime(record):
            features[list(REALTIME_NAMES)] = self._realtime(features)
        scores = predict(booster, record.schema, features, at_top=True)
        slates = epsilon_greedy_slates(
            candidates, scores, k=self.k, epsilon=self.epsilon, seed=seed
        )
        return slates.assign(model_version=record.model_version, variant=variant)

    def _realtime(self, features: pd.DataFrame) -> np.ndarray:
        """Each request's real-time features from the session store, at its request time."""
        assert self.catalog is not None
        out = np.full((len(features), len(REALTIME_NAMES)), np.nan, dtype=np.float32)
        cats, brands = self.catalog.codes_of(features["category"], features["brand"])
        for _, rows in features.groupby("request_id", sort=False).indices.items():
            first = features.iloc[rows[0]]
            session = first["session_id"]
            out[rows] = self.store.features(
                first["user_id"],
                None if pd.isna(session) else session,
                first["event_time"],
                cats[rows],
                brands[rows],
                self.catalog,
            )
        return out


def _uses_realtime(record: registry.ModelRecord | None) -> bool:
    return record is not None and record.uses_realtime
