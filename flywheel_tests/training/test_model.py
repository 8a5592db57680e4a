import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from flywheel_assets.training.model import (
    FEATURES,
    FeatureSchema,
    load_artefact,
    model_bytes,
    predict,
    save_artefact,
    time_split,
    train_model,
)


def frame(n: int = 4_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({c: rng.random(n) for c in FEATURES})
    df["category"] = rng.choice(["a", "b", "c"], n)
    df["region"] = rng.choice(["n", "s"], n)
    df["device"] = "mobile"
    df["brand"] = rng.choice(["x", "y"], n)
    df["position"] = rng.integers(0, 10, n)
    # Purchases depend on a region x category interaction and fall with position.
    logit = -2 + 2.5 * ((df["region"] == "n") == (df["category"] == "a")) - 0.2 * df["position"]
    df["label_purchase"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df["label_click"] = df["label_purchase"]
    df["event_time"] = pd.date_range("2026-01-01", periods=n, freq="min")
    df["request_id"] = np.arange(n) // 10
    return df


def test_time_split_is_strictly_later():
    df = frame()
    train, valid = time_split(df, 0.25)
    assert train["event_time"].max() < valid["event_time"].min()
    assert len(valid) == pytest.approx(len(df) * 0.25, rel=0.01)


def test_learns_interaction_and_is_reproducible_byte_for_byte():
    df = frame()
    train, valid = time_split(df, 0.2)
    a = train_model(train, valid)
    b = train_model(train, valid)
    assert model_bytes(a.booster) == model_bytes(b.booster)
    test = frame(seed=1)
    p = predict(a.booster, a.schema, test, at_top=True)
    good = ((test["region"] == "n") == (test["category"] == "a")).to_numpy()
    # Ranking is what the model is for: nearly every "good" pair must score above every other
    # (AUC from the Mann-Whitney U statistic), among dozens of pure-noise features.
    auc = mannwhitneyu(p[good], p[~good]).statistic / (good.sum() * (~good).sum())
    assert auc > 0.95
    assert p[good].mean() > 1.5 * p[~good].mean()


def test_no_positive_labels_is_a_clear_error():
    df = frame().assign(label_purchase=0)
    with pytest.raises(ValueError, match="no positive purchase labels"):
        train_model(df, df.iloc[:0])


def test_unseen_categories_become_missing_not_errors():
    df = frame()
    model = train_model(*time_split(df, 0.2))
    new = df.head(5).assign(category="never-seen", region=None)
    assert np.isfinite(predict(model.booster, model.schema, new)).all()
    schema = FeatureSchema.from_json(model.schema.to_json())
    assert schema == model.schema


def test_artefacts_are_content_addressed_immutable_and_verified(tmp_path):
    data = model_bytes(train_model(*time_split(frame(), 0.2)).booster)
    uri, sha = save_artefact(data, tmp_path, "m")
    assert save_artefact(data, tmp_path, "m") == (uri, sha)  # a rerun reuses it
    assert load_artefact(uri, sha).num_boosted_rounds() > 0
    path = tmp_path / uri.rsplit("/", 1)[-1]
    path.write_bytes(data + b"tampered")
    with pytest.raises(RuntimeError, match="altered"):
        load_artefact(uri, sha)
    with pytest.raises(RuntimeError, match="immutable"):
        save_artefact(data, tmp_path, "m")


def test_artefacts_live_at_any_fsspec_url_with_the_same_guarantees():
    # fsspec's in-memory filesystem stands in for an object store (s3://, gs://): the same
    # code path as a remote URL, no network.
    import uuid

    from upath import UPath

    folder = f"memory://flywheel-test-{uuid.uuid4().hex[:8]}/models"
    data = model_bytes(train_model(*time_split(frame(), 0.2)).booster)
    uri, sha = save_artefact(data, folder, "m")
    assert uri.startswith(folder + "/") and uri.endswith(".ubj")
    assert save_artefact(data, folder, "m") == (uri, sha)
    assert load_artefact(uri, sha).num_boosted_rounds() > 0
    UPath(uri).write_bytes(data + b"tampered")
    with pytest.raises(RuntimeError, match="altered"):
        load_artefact(uri, sha)
    with pytest.raises(RuntimeError, match="immutable"):
        save_artefact(data, folder, "m")
