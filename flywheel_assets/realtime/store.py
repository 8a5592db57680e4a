"""The in-process online store: each session's recent events, read as real-time features.

The ranking service (and the demo's ranker) apply every feedback event they log or receive; a
request reads its session's features from here in microseconds, with no server (the embedded
default). It keeps raw events, not counters, because a feature is a count over a window that
ends at the request: the store counts at read time (``realtime.features.count``), so a late
event, or a request older than the newest event, still reads exactly what the SQL reads.

Applying is idempotent: an event id seen before is ignored (the first copy wins, as at
ingestion). Memory is bounded: at most ``max_sessions`` sessions (the least recently written
go first) and ``max_events_per_session`` events each; events older than the newest of their
session by more than the window plus ``lateness`` can no longer be read and are dropped.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from flywheel_assets.realtime.features import REALTIME_NAMES, TYPE_CODES, WINDOW, count

_EPOCH = dt.datetime(1970, 1, 1)


class Catalog(Protocol):
    """Category and brand codes of items, as the feature snapshot in use knows them."""

    @property
    def n_categories(self) -> int: ...

    @property
    def n_brands(self) -> int: ...

    def attribute_codes(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(category codes, brand codes); ``n_categories``/``n_brands`` for unknown items."""
        ...


class CatalogSizes:
    """The sizes of a catalog's codings, from its ``categories`` and ``brands``: the code
    one past the last is "unknown"."""

    categories: Sized
    brands: Sized

    @property
    def n_categories(self) -> int:
        return len(self.categories)

    @property
    def n_brands(self) -> int:
        return len(self.brands)


@dataclass(frozen=True)
class ItemCatalog(CatalogSizes):
    """A :class:`Catalog` from a frame of (item_id, category, brand)."""

    categories: dict[str, int]
    brands: dict[str, int]
    items: dict[str, tuple[int, int]]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> ItemCatalog:
        categories = {c: n for n, c in enumerate(sorted(frame["category"].dropna().unique()))}
        brands = {b: n for n, b in enumerate(sorted(frame["brand"].dropna().unique()))}
        items = {
            str(i): (categories.get(c, len(categories)), brands.get(b, len(brands)))
            for i, c, b in zip(frame["item_id"], frame["category"], frame["brand"], strict=True)
        }
        return cls(categories, brands, items)

    def attribute_codes(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        unknown = (len(self.categories), len(self.brands))
        pairs = [self.items.get(i, unknown) for i in item_ids]
        a = np.array(pairs, dtype=np.int64).reshape(len(pairs), 2)
        return a[:, 0], a[:, 1]

    def codes_of(self, categories: Iterable[object], brands: Iterable[object]) -> tuple:
        """Codes of category and brand values (a candidate frame's columns)."""
        c = [self.categories.get(v, len(self.categories)) for v in categories]
        b = [self.brands.get(v, len(self.brands)) for v in brands]
        return np.array(c, dtype=np.int64), np.array(b, dtype=np.int64)


def micros(value: object) -> int:
    """Microseconds since the epoch of a UTC time: a datetime (naive means UTC), a pandas
    Timestamp, or an ISO-8601 string."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.value // 1_000)


@dataclass
class _Session:
    times: list[int] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    newest: int = 0


class SessionReader:
    """Reading a request's real-time features from a store's session events: the same for
    every store, so they can only differ in what they hold."""

    def _session_events(self, user_id: str, session_id: str, at_micros: int) -> tuple:
        """(times, type codes, item ids) of the session's events; at least those in the
        window before ``at_micros``."""
        raise NotImplementedError

    def features(
        self,
        user_id: str,
        session_id: str | None,
        at: object,
        candidate_categories: np.ndarray,
        candidate_brands: np.ndarray,
        catalog: Catalog,
    ) -> np.ndarray:
        """The request's real-time features for its candidates (``REALTIME_NAMES`` columns):
        NaN without a session, zeros for a session with nothing before ``at``."""
        n = len(candidate_categories)
        if session_id is None:
            return np.full((n, len(REALTIME_NAMES)), np.nan, dtype=np.float32)
        t = micros(at)
        times, types, items = self._session_events(str(user_id), str(session_id), t)
        cats, brands = catalog.attribute_codes(items)
        return count(
            np.asarray(times, dtype=np.int64), np.asarray(types, dtype=np.int64), cats, brands,
            t, candidate_categories, candidate_brands, catalog.n_categories, catalog.n_brands,
        )  # fmt: skip


class SessionStore(SessionReader):
    """Sessions' recent counted events, keyed by (user pseudonym, session id)."""

    def __init__(
        self,
        *,
        max_sessions: int = 500_000,
        max_events_per_session: int = 1_000,
        lateness: dt.timedelta = dt.timedelta(hours=1),
    ) -> None:
        self.max_sessions = max_sessions
        self.max_events_per_session = max_events_per_session
        self._keep = int((WINDOW + lateness).total_seconds() * 1_000_000)
        self._sessions: collections.OrderedDict[tuple[str, str], _Session] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()
        self.applied = 0
        self.duplicates = 0
        self.evicted_sessions = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def apply(self, events: Iterable[Mapping[str, object]]) -> int:
        """Apply events (event_id, event_type, event_time, user_id as pseudonym, session_id,
        item_id); returns how many were new and counted. Other event types, and events without
        a session, are not real-time features' input and are skipped."""
        new = 0
        with self._lock:
            for e in events:
                etype = e.get("event_type")
                session_id = e.get("session_id")
                if etype not in TYPE_CODES or session_id is None or pd.isna(session_id):
                    continue
                key = (str(e["user_id"]), str(session_id))
                s = self._sessions.get(key)
                if s is None:
                    s = self._sessions[key] = _Session()
                else:
                    self._sessions.move_to_end(key)
                event_id = str(e["event_id"])
                if event_id in s.ids:
                    self.duplicates += 1
                    continue
                t = micros(e["event_time"])
                s.ids.add(event_id)
                s.times.append(t)
                s.types.append(TYPE_CODES[str(etype)])
                s.items.append(str(e["item_id"]))
                s.newest = max(s.newest, t)
                if len(s.times) > self.max_events_per_session or s.times[0] < s.newest - self._keep:
                    self._prune(s)
                new += 1
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
                self.evicted_sessions += 1
        self.applied += new
        return new

    def _prune(self, s: _Session) -> None:
        # Keep the newest events within reach of a request; ids stay, so a dropped event
        # redelivered later is still a duplicate, not a new event.
        order = sorted(range(len(s.times)), key=s.times.__getitem__)
        keep = [i for i in order if s.times[i] >= s.newest - self._keep]
        keep = keep[-self.max_events_per_session :]
        s.times = [s.times[i] for i in keep]
        s.types = [s.types[i] for i in keep]
        s.items = [s.items[i] for i in keep]

    def _session_events(self, user_id: str, session_id: str, at_micros: int) -> tuple:
        with self._lock:
            s = self._sessions.get((user_id, session_id))
            if s is None:
                return [], [], []
            return list(s.times), list(s.types), list(s.items)

    def ping(self) -> bool:
        return True  # in this process: always there

    def stats(self) -> dict[str, object]:
        return {
            "kind": "memory",
            "sessions": len(self._sessions),
            "events_applied": self.applied,
            "duplicates_ignored": self.duplicates,
            "sessions_evicted": self.evicted_sessions,
        }
