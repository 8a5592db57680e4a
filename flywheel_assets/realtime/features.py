"""The real-time features, declared once: what a session has done in the hour before a request.

A request's real-time features count the events of the request's own session (same session id
and same user pseudonym) whose event time lies in ``[request time - WINDOW, request time)``:
strictly before the request, so a feature never sees the request's own feedback. They count
views, clicks and carts, in total and for the candidate item's category and brand (an event's
category and brand are its item's in the feature snapshot the request is scored with).

Three computations follow this one declaration, and tests keep them equal
(``flywheel_tests/realtime/``):

- point-in-time SQL for training and batch scoring: ``features.vector`` generates the
  aggregates of ``sql/features/session_events.sql`` from :data:`REALTIME_FEATURES`;
- the in-process store of the ranking service and the demo (``realtime.store``);
- :func:`count`, the plain definition the store applies per request.

A request without a session id has no real-time features (missing, NaN/NULL); a session with no
events before the request has zeros. No Dagster, no I/O in here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

WINDOW = dt.timedelta(hours=1)
WINDOW_SECONDS = int(WINDOW.total_seconds())
# The event types counted, and the short names of the features that count them.
COUNTED = {"view": "views", "click": "clicks", "add_to_cart": "carts"}

SESSION = "session"  # the whole session
SESSION_CATEGORY = "session_category"  # the session's events on the candidate's category
SESSION_BRAND = "session_brand"  # ... on the candidate's brand
SCOPES = (SESSION, SESSION_CATEGORY, SESSION_BRAND)
_PREFIX = {SESSION: "s", SESSION_CATEGORY: "sc", SESSION_BRAND: "sb"}


@dataclass(frozen=True)
class RealtimeFeature:
    name: str
    scope: str
    event_type: str


def _declare() -> tuple[RealtimeFeature, ...]:
    out = []
    for scope, types in (
        (SESSION, ("view", "click", "add_to_cart")),
        (SESSION_CATEGORY, ("view", "click", "add_to_cart")),
        (SESSION_BRAND, ("click", "add_to_cart")),
    ):
        for t in types:
            out.append(RealtimeFeature(f"{_PREFIX[scope]}_{COUNTED[t]}_1h", scope, t))
    return tuple(out)


# In the order of the model's columns.
REALTIME_FEATURES: tuple[RealtimeFeature, ...] = _declare()
REALTIME_NAMES: tuple[str, ...] = tuple(f.name for f in REALTIME_FEATURES)
TYPE_CODES = {t: n for n, t in enumerate(COUNTED)}


def count(
    event_micros: np.ndarray,
    event_types: np.ndarray,
    event_categories: np.ndarray,
    event_brands: np.ndarray,
    at_micros: int,
    candidate_categories: np.ndarray,
    candidate_brands: np.ndarray,
    n_categories: int,
    n_brands: int,
) -> np.ndarray:
    """One request's real-time features for its candidates: float32, shape (candidates,
    features), columns in :data:`REALTIME_NAMES` order.

    ``event_*`` are one session's events (times in microseconds since the epoch, type codes of
    :data:`TYPE_CODES`, category and brand codes, ``n_categories``/``n_brands`` meaning
    unknown). Candidates' codes use the same coding; an unknown category or brand counts 0."""
    n = len(candidate_categories)
    lo = at_micros - WINDOW_SECONDS * 1_000_000
    inside = (event_micros < at_micros) & (event_micros >= lo)
    types, cats, brands = event_types[inside], event_categories[inside], event_brands[inside]
    n_types = len(COUNTED)
    totals = np.bincount(types, minlength=n_types)
    by_cat = np.zeros((n_types, n_categories + 1))
    np.add.at(by_cat, (types, cats), 1)
    by_brand = np.zeros((n_types, n_brands + 1))
    np.add.at(by_brand, (types, brands), 1)
    by_cat[:, n_categories] = 0  # an unknown category is nobody's category
    by_brand[:, n_brands] = 0
    out = np.empty((n, len(REALTIME_FEATURES)), dtype=np.float32)
    for j, f in enumerate(REALTIME_FEATURES):
        t = TYPE_CODES[f.event_type]
        if f.scope == SESSION:
            out[:, j] = totals[t]
        elif f.scope == SESSION_CATEGORY:
            out[:, j] = by_cat[t, candidate_categories]
        else:
            out[:, j] = by_brand[t, candidate_brands]
    return out
