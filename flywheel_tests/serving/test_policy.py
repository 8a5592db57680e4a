import numpy as np
import pandas as pd
import pytest

from flywheel_assets.serving.policy import epsilon_greedy_slates, uniform_random_slates


def candidates(n_req: int, n_items: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": np.repeat([f"r{i}" for i in range(n_req)], n_items),
            "item_id": np.tile([f"i{j}" for j in range(n_items)], n_req),
        }
    )


def test_greedy_without_exploration_sorts_by_score():
    c = candidates(3, 5)
    scores = np.tile([0.1, 0.9, 0.5, 0.3, 0.7], 3)
    out = epsilon_greedy_slates(c, scores, k=3, epsilon=0.0, seed=0)
    assert out.groupby("request_id")["item_id"].apply(list).tolist() == [["i1", "i4", "i2"]] * 3
    assert (out["propensity"] == 1.0).all()


def test_logged_propensity_is_the_true_probability():
    # Over many identical requests, how often item X lands at position p given the items
    # above it must match the logged propensity: check position 0 where the prefix is empty.
    n_req, n_items, eps = 20_000, 4, 0.3
    c = candidates(n_req, n_items)
    scores = np.tile([0.4, 0.1, 0.9, 0.2], n_req)
    out = epsilon_greedy_slates(c, scores, k=2, epsilon=eps, seed=1)
    top = out[out["position"] == 0]
    freq = top["item_id"].value_counts(normalize=True)
    logged = top.groupby("item_id")["propensity"].first()
    assert logged["i2"] == pytest.approx(1 - eps + eps / 4)
    assert logged["i0"] == pytest.approx(eps / 4)
    for item in ["i0", "i1", "i2", "i3"]:
        assert freq[item] == pytest.approx(logged[item], abs=0.01)


def test_slates_have_no_repeats_and_valid_propensities():
    c = candidates(200, 12)
    out = epsilon_greedy_slates(
        c, np.random.default_rng(0).random(len(c)), k=10, epsilon=0.2, seed=3
    )
    assert not out.duplicated(["request_id", "item_id"]).any()
    assert (
        out.groupby("request_id")["position"].apply(list).map(lambda p: p == list(range(10))).all()
    )
    assert ((out["propensity"] > 0) & (out["propensity"] <= 1)).all()


def test_uniform_random_propensity_is_one_over_remaining():
    out = uniform_random_slates(candidates(50, 6), k=3, seed=0)
    expected = {0: 1 / 6, 1: 1 / 5, 2: 1 / 4}
    for pos, p in expected.items():
        assert np.allclose(out.loc[out["position"] == pos, "propensity"], p)


def test_short_candidate_lists_and_bad_input():
    c = pd.DataFrame({"request_id": ["a", "a", "b"], "item_id": ["x", "y", "z"]})
    out = epsilon_greedy_slates(c, np.array([1.0, 2.0, 3.0]), k=5, epsilon=0.0, seed=0)
    assert out.groupby("request_id").size().to_dict() == {"a": 2, "b": 1}
    with pytest.raises(ValueError, match="epsilon"):
        epsilon_greedy_slates(c, np.zeros(3), k=2, epsilon=1.5, seed=0)
    with pytest.raises(ValueError, match="align"):
        epsilon_greedy_slates(c, np.zeros(2), k=2, epsilon=0.1, seed=0)
