"""The mapped feature snapshot (decision 87): the same vectors as the snapshot built in
memory from the same bundle, for every kind of user, with the users' arrays left on disk."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel_assets.features import vector
from flywheel_assets.features.vector import BUNDLE_SOURCES
from flywheel_assets.realtime.features import REALTIME_NAMES
from flywheel_assets.serving import online_features
from flywheel_assets.serving.online_features import (
    MAPPED,
    MAPPED_META,
    SUCCESS,
    FeatureSnapshot,
)
from flywheel_assets.training.model import FeatureSchema

D = dt.date(2026, 3, 1)
WHEN = dt.datetime(2026, 3, 2, 14, 30)
CATS, BRANDS, REGIONS = ["c0", "c1", "c2"], ["b0", "b1", "b2", "b3"], ["r0", "r1"]
# a pseudonym, a plain id, a non-ASCII one, one that is a prefix of another, and ids that
# only the per-user tables hold (no users row)
USERS = ["u_0a1b", "alice", "jöns-ß", "u_0a", "u_0a1b2", "émile"]
PAIR_ONLY = ["only-pairs", "zz-last"]


def frames(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """A small bundle with every column online_features exports (features/vector.py)."""

    def numeric(source: vector.Source, n: int) -> dict[str, np.ndarray]:
        cols = [f.name for f in vector.of_source(source) if f.kind == vector.NUMERIC]
        out = {c: rng.gamma(1.0, 3.0, n) for c in cols}
        for c in out.values():
            c[rng.random(n) < 0.1] = np.nan  # features may be missing
        return out

    by = {s.name: s for s in BUNDLE_SOURCES}
    items = [f"i{n}" for n in range(12)]
    users = pd.DataFrame(
        {"user_id": USERS, "region": ["r0", "r1", None, "r1", "r0", "r1"],
         "device": ["mobile", None, "desktop", "mobile", "tablet", "desktop"],
         **numeric(by["users"], len(USERS))}
    )  # fmt: skip
    out = {
        "users": users,
        "items": pd.DataFrame(
            {
                "item_id": items,
                "category": rng.choice(CATS, len(items)),
                "brand": rng.choice(BRANDS, len(items)),
                **numeric(by["items"], len(items)),
            }
        ),  # fmt: skip
    }
    owners = [*USERS[:5], *PAIR_ONLY]  # "émile" has features but no pairs
    for name, column, values in (
        ("user_category", "category", CATS),
        ("user_brand", "brand", BRANDS),
        ("user_item", "item_id", [*items, "gone-from-catalog"]),
    ):
        pairs = pd.DataFrame(
            [(u, v) for u in owners for v in values if rng.random() < 0.5],
            columns=["user_id", column],
        ).sample(frac=1.0, random_state=1)  # rows in no order, as a query returns them
        out[name] = pairs.assign(**numeric(by[name], len(pairs))).reset_index(drop=True)
    for name, column, values in (
        ("region_category", "category", CATS),
        ("region_brand", "brand", BRANDS),
    ):
        grid = pd.DataFrame([(r, v) for r in REGIONS for v in values], columns=["region", column])
        out[name] = grid.assign(**numeric(by[name], len(grid)))
    return out


def write_bundle(root: Path, data: dict[str, pd.DataFrame], mapped: bool = True) -> Path:
    """A bundle as export_snapshot writes it (its Parquet files, mapped/, _SUCCESS)."""
    bundle = online_features.bundle_dir(root, D)
    bundle.mkdir(parents=True)
    for name, df in data.items():
        df.to_parquet(bundle / f"{name}.parquet", index=False)
    if mapped:
        FeatureSnapshot.from_frames(D, data).save_mapped(bundle / MAPPED)
    (bundle / SUCCESS).write_text(json.dumps({"feature_dt": D.isoformat()}))
    return bundle


SCHEMA = FeatureSchema(
    numeric=list(vector.NUMERIC_NAMES),
    categorical={"region": ["r1", "r0"], "device": ["desktop", "mobile"], "category": CATS[1:],
                 "brand": BRANDS},
)  # fmt: skip


def test_the_mapped_snapshot_gives_the_vectors_of_the_one_built_in_memory(tmp_path) -> None:
    rng = np.random.default_rng(7)
    data = frames(rng)
    bundle = write_bundle(tmp_path, data)
    memory = FeatureSnapshot.from_frames(D, data)
    mapped = FeatureSnapshot.load(bundle)
    assert mapped.mapped and not memory.mapped
    # what grows with users is mapped from disk, not copied
    assert isinstance(mapped.keys, np.memmap)
    assert isinstance(mapped.tables["users"].values, np.memmap)
    for name in ("user_category", "user_brand", "user_item"):
        assert isinstance(mapped.tables[name].values, np.memmap), name
        assert isinstance(mapped.per_user[name].codes, np.memmap), name
    items = [*data["items"]["item_id"], "sku-new", "gone-from-catalog"]
    codes = mapped.item_codes(items)
    assert (codes == memory.item_codes(items)).all()
    fresh = rng.gamma(1.0, 2.0, (len(items), len(REALTIME_NAMES)))
    seen_pairs = 0
    for user in [*USERS, *PAIR_ONLY, "nobody", "u_0a1b2-longer-than-every-id", "", "u_0"]:
        for realtime in (None, fresh):
            a = mapped.matrix(SCHEMA, user, codes, WHEN, realtime)
            b = memory.matrix(SCHEMA, user, codes, WHEN, realtime)
            np.testing.assert_array_equal(a, b, err_msg=user)
        seen_pairs += int(np.isfinite(a[:, SCHEMA.numeric.index("ui_impressions_28d")]).sum())
    assert seen_pairs > 0, "no user x item row was gathered: the lookup went untested"


def test_a_user_gets_exactly_their_own_rows(tmp_path) -> None:
    """The vector's per-user columns are the user's rows of the bundle, found by id."""
    data = frames(np.random.default_rng(3))
    snap = FeatureSnapshot.load(write_bundle(tmp_path, data))
    ui = data["user_item"]
    items = list(data["items"]["item_id"])
    codes = snap.item_codes(items)
    users = data["users"].set_index("user_id")
    for user in [*USERS, *PAIR_ONLY]:
        x = snap.matrix(SCHEMA, user, codes, WHEN)
        mine = ui[ui["user_id"] == user].set_index("item_id")["ui_impressions_28d"]
        want = np.array([mine.get(i, np.nan) for i in items], dtype=np.float32)
        got = x[:, SCHEMA.numeric.index("ui_impressions_28d")]
        np.testing.assert_array_equal(got, want, err_msg=user)
        ctr = users["u_ctr_28d"].get(user, np.nan)
        np.testing.assert_array_equal(x[:, SCHEMA.numeric.index("u_ctr_28d")], np.float32(ctr))
        history = set(snap.item_ids[snap.history(user)])
        assert history == set(mine.index) & set(items), user
    assert set(snap.known_users()) == set(USERS)
    assert set(snap.users_with_history(100)) == set(USERS[:5])


def test_a_bundle_published_before_the_mapped_form_is_built_in_memory(tmp_path) -> None:
    data = frames(np.random.default_rng(5))
    old = FeatureSnapshot.load(write_bundle(tmp_path / "old", data, mapped=False))
    new = FeatureSnapshot.load(write_bundle(tmp_path / "new", data))
    assert not old.mapped and new.mapped
    codes = old.item_codes(list(data["items"]["item_id"]))
    for user in USERS:
        np.testing.assert_array_equal(
            old.matrix(SCHEMA, user, codes, WHEN), new.matrix(SCHEMA, user, codes, WHEN)
        )


def test_a_mapped_form_of_another_format_is_served_from_its_parquet_files(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    data = frames(np.random.default_rng(1))
    bundle = write_bundle(tmp_path, data)
    meta = json.loads((bundle / MAPPED / MAPPED_META).read_text())
    (bundle / MAPPED / MAPPED_META).write_text(json.dumps({**meta, "format": 99}))
    snap = FeatureSnapshot.load(bundle)
    assert not snap.mapped
    assert "re-materialise online_features for 2026-03-01" in caplog.text
    codes = snap.item_codes(list(data["items"]["item_id"]))
    np.testing.assert_array_equal(
        snap.matrix(SCHEMA, "alice", codes, WHEN),
        FeatureSnapshot.from_frames(D, data).matrix(SCHEMA, "alice", codes, WHEN),
    )
    with pytest.raises(ValueError, match="re-materialise online_features for 2026-03-01"):
        FeatureSnapshot.open_mapped(bundle / MAPPED)


def test_a_feature_declared_after_the_bundle_was_mapped_is_missing(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model that reads a feature yesterday's bundle was written without gets NaN for it,
    as from a Parquet bundle without the column, not an error on every request."""
    data = frames(np.random.default_rng(4))
    older = {**data, "users": data["users"].drop(columns=["u_ctr_28d"]),
             "items": data["items"].drop(columns=["i_price"])}  # fmt: skip
    with monkeypatch.context() as m:
        m.setattr(vector, "FEATURES",
                  tuple(f for f in vector.FEATURES if f.name not in ("u_ctr_28d", "i_price")))  # fmt: skip
        bundle = write_bundle(tmp_path, older)
    mapped = FeatureSnapshot.load(bundle)
    assert mapped.mapped and "u_ctr_28d" not in mapped.tables["users"].columns
    memory = FeatureSnapshot.from_frames(D, older)
    codes = mapped.item_codes(list(data["items"]["item_id"]))
    for user in USERS:
        x = mapped.matrix(SCHEMA, user, codes, WHEN)
        np.testing.assert_array_equal(x, memory.matrix(SCHEMA, user, codes, WHEN))
        for name in ("u_ctr_28d", "i_price", "ui_price_ratio"):
            assert np.isnan(x[:, SCHEMA.numeric.index(name)]).all(), name
        assert np.isfinite(x[:, SCHEMA.numeric.index("i_ctr_28d")]).any()


def test_rows_without_a_user_id_match_no_user(tmp_path) -> None:
    data = frames(np.random.default_rng(6))
    stray = {
        name: pd.concat([df, df.head(1).assign(user_id=None)], ignore_index=True)
        for name, df in data.items()
        if "user_id" in df.columns
    }
    snap = FeatureSnapshot.load(write_bundle(tmp_path, {**data, **stray}))
    clean = FeatureSnapshot.from_frames(D, data)
    codes = snap.item_codes(list(data["items"]["item_id"]))
    for user in [*USERS, *PAIR_ONLY, "None", "nan", ""]:
        np.testing.assert_array_equal(
            snap.matrix(SCHEMA, user, codes, WHEN), clean.matrix(SCHEMA, user, codes, WHEN)
        )


def test_an_id_the_snapshot_cannot_hold_is_refused_when_it_is_written() -> None:
    data = frames(np.random.default_rng(2))
    data["users"].loc[0, "user_id"] = "ends-in-nul\0"
    with pytest.raises(ValueError, match="ends in a NUL byte"):
        FeatureSnapshot.from_frames(D, data)


def test_a_mapped_snapshot_keeps_serving_after_its_bundle_is_replaced(tmp_path) -> None:
    """export_snapshot swaps a re-exported day's folder and deletes the old one while a
    service may still map it: the mapping stays valid until the service lets it go."""
    data = frames(np.random.default_rng(9))
    bundle = write_bundle(tmp_path, data)
    snap = FeatureSnapshot.load(bundle)
    assert snap.mapped
    codes = snap.item_codes(list(data["items"]["item_id"]))
    before = snap.matrix(SCHEMA, "alice", codes, WHEN)
    online_features.shutil.rmtree(bundle)
    write_bundle(tmp_path, frames(np.random.default_rng(10)))
    np.testing.assert_array_equal(snap.matrix(SCHEMA, "alice", codes, WHEN), before)


def old_item_codes(items: pd.DataFrame, pairs: pd.DataFrame) -> dict[str, list[int]]:
    """Each user's item codes as the snapshot defined them before codes were looked up by
    hash join: a dict lookup of ``str(id)`` per pair, -1 for an id not in the catalog."""
    ids = items.drop_duplicates("item_id")["item_id"].astype(str).to_numpy(dtype=object)
    index = {i: n for n, i in enumerate(ids)}
    out: dict[str, list[int]] = {}
    for user, item in zip(pairs["user_id"], pairs["item_id"], strict=True):
        out.setdefault(user, []).append(index.get(str(item), -1))
    return {u: sorted(c) for u, c in out.items()}


@pytest.mark.parametrize(
    ("catalog", "pair_items"),
    [
        # the catalog is empty: every pair keeps code -1
        ([], ["i9", "i1"]),
        # missing ids on either side never match each other
        (["i1", None, "c"], ["a", "x", None, "c"]),
        # ids literally "None" and "nan" in the catalog
        (["None", "nan", "i1"], [None, "nan", "i1", "None"]),
    ],
)
def test_item_codes_of_user_item_pairs_are_the_catalogs(catalog, pair_items) -> None:
    data = frames(np.random.default_rng(3))
    items = data["items"].head(0) if not catalog else data["items"].head(len(catalog))
    items = items.assign(item_id=pd.Series(catalog, dtype=object, index=items.index))
    users = [f"u{n}" for n in range(len(pair_items))]
    pairs = pd.DataFrame({"user_id": users, "item_id": pd.Series(pair_items, dtype=object)})
    pairs = pairs.reindex(columns=data["user_item"].columns)
    data.update(items=items, user_item=pairs)
    snap = FeatureSnapshot.from_frames(D, data)
    got = {u: sorted(snap.per_user["user_item"].codes_of(snap.user_key(u))) for u in users}
    assert got == old_item_codes(items, pairs)


def test_numeric_categories_brands_and_regions_are_written_as_json(tmp_path) -> None:
    # A shop whose categories are numbers (a query that does not cast them to text).
    data = frames(np.random.default_rng(5))
    number = {c: n + 1 for n, c in enumerate(CATS)}
    for name in ("items", "user_category", "region_category"):
        data[name] = data[name].assign(category=data[name]["category"].map(number))
    snap = FeatureSnapshot.from_frames(D, data)
    assert snap.categories == [1, 2, 3] and type(snap.categories[0]) is int
    snap.save_mapped(tmp_path / MAPPED)  # json.dumps of numpy integers would raise
    assert FeatureSnapshot.open_mapped(tmp_path / MAPPED).categories == snap.categories
