"""Serving policies: turn candidate scores into shown slates with honest propensities.

Exploration is epsilon-greedy per slot: at each position the policy shows the best remaining
item with probability 1 - epsilon, otherwise a uniformly random remaining item. The logged
propensity of an item at a position is the exact probability the policy had of putting it there
given the items already placed, which is what off-policy estimators need.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLD_START_VERSION = "cold-start"


def epsilon_greedy_slates(
    candidates: pd.DataFrame,
    scores: np.ndarray,
    *,
    k: int,
    epsilon: float,
    seed: int,
) -> pd.DataFrame:
    """Pick up to ``k`` items per request.

    ``candidates`` has one row per (request_id, item_id); ``scores`` aligns with its rows.
    Returns request_id, item_id, position (0-based), propensity and score of the shown items.
    Vectorised over requests: one numpy pass per slot.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    if len(candidates) != len(scores):
        raise ValueError("scores must align with candidates")
    if candidates.empty:
        return pd.DataFrame(columns=["request_id", "item_id", "position", "propensity", "score"])
    codes, request_ids = pd.factorize(candidates["request_id"], sort=False)
    order = np.argsort(codes, kind="stable")
    codes_sorted = codes[order]
    counts = np.bincount(codes_sorted, minlength=len(request_ids))
    width = int(counts.max())
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    col = np.arange(len(order)) - starts[codes_sorted]
    grid_scores = np.full((len(request_ids), width), -np.inf)
    grid_rows = np.full((len(request_ids), width), -1)
    grid_scores[codes_sorted, col] = np.asarray(scores, dtype=float)[order]
    grid_rows[codes_sorted, col] = order
    available = grid_rows >= 0
    rng = np.random.default_rng(seed)
    n_req = len(request_ids)
    shown_rows, shown_pos, shown_prop, shown_req = [], [], [], []
    for position in range(min(k, width)):
        n_left = available.sum(axis=1)
        active = n_left > 0
        if not active.any():
            break
        masked = np.where(available, grid_scores, -np.inf)
        # Ties among equal scores would make "the greedy item" ambiguous; break them by column
        # order, which is part of the policy and so of the propensity.
        greedy = np.argmax(masked, axis=1)
        random_keys = np.where(available, rng.random((n_req, width)), -1.0)
        random_pick = np.argmax(random_keys, axis=1)
        explore = rng.random(n_req) < epsilon
        chosen = np.where(explore, random_pick, greedy)
        propensity = (1.0 - epsilon) * (chosen == greedy) + epsilon / np.maximum(n_left, 1)
        idx = np.flatnonzero(active)
        shown_rows.append(grid_rows[idx, chosen[idx]])
        shown_pos.append(np.full(len(idx), position))
        shown_prop.append(propensity[idx])
        shown_req.append(idx)
        available[idx, chosen[idx]] = False
    rows = np.concatenate(shown_rows)
    out = pd.DataFrame(
        {
            "request_id": candidates["request_id"].to_numpy()[rows],
            "item_id": candidates["item_id"].to_numpy()[rows],
            "position": np.concatenate(shown_pos).astype(np.int64),
            "propensity": np.concatenate(shown_prop),
            "score": np.asarray(scores, dtype=float)[rows],
        }
    )
    return out.sort_values(["request_id", "position"], kind="stable").reset_index(drop=True)


def uniform_random_slates(candidates: pd.DataFrame, *, k: int, seed: int) -> pd.DataFrame:
    """The cold-start policy before any model exists: every order equally likely."""
    return epsilon_greedy_slates(candidates, np.zeros(len(candidates)), k=k, epsilon=1.0, seed=seed)


def epsilon_greedy_slate(
    scores: np.ndarray, *, k: int, epsilon: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The same policy as ``epsilon_greedy_slates`` for one request, without the batch
    machinery (the ranking service's hot path): the chosen candidate indices in slate order and
    each one's propensity at its position given the items above it.

    Ties are broken by candidate order, as in the batch version, so both log the same
    probabilities for the same scores."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    # Remaining candidates, best first; stable, so equal scores keep candidate order.
    remaining = list(np.argsort(-np.asarray(scores, dtype=float), kind="stable"))
    n = min(k, len(remaining))
    chosen = np.empty(n, dtype=np.int64)
    propensity = np.empty(n)
    explore = rng.random(n) < epsilon
    for slot in range(n):
        n_left = len(remaining)
        pick = int(rng.integers(n_left)) if explore[slot] else 0
        chosen[slot] = remaining.pop(pick)
        propensity[slot] = (1.0 - epsilon) * (pick == 0) + epsilon / n_left
    return chosen, propensity
