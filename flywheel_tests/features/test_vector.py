"""The feature vector's one declaration (flywheel_assets/features/vector.py) against both paths
that build vectors: the SQL (training, batch scoring) and the serving bundle assembled in memory.

Every snapshot table gets one row whose every numeric column holds a value unique to (table,
column); a vector built either way must then show, for each declared feature, exactly the value
of the source and column the declaration names (or the declared computation), and nothing for
a candidate the sources do not know. A feature added to the declaration but not to a path, or
taken from another table than declared, fails here.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel_assets.features import store, vector
from flywheel_assets.features.vector import BUNDLE_SOURCES, FEATURES, REQUEST, USER_ITEM
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.realtime.features import REALTIME_NAMES
from flywheel_assets.serving import online_features
from flywheel_assets.serving.online_features import FeatureSnapshot, export_snapshot
from flywheel_assets.training.model import CATEGORICAL_FEATURES, NUMERIC_FEATURES, FeatureSchema

# The module's tests share an expensive module fixture: one worker runs them all, so it is built once.
pytestmark = pytest.mark.xdist_group("features.test_vector")

ROOT = Path(__file__).resolve().parents[2]
D = dt.date(2026, 3, 10)  # the snapshot
SHOWN = dt.datetime(2026, 3, 11, 13, 0)  # an impression / a request on D + 1
TEXT = {"user_id": "u1", "item_id": "i1", "category": "c1", "brand": "b1", "region": "r1"}
TEXT["device"] = "d1"
# user x item history of (u1, i1): one daily row, and what the vector must sum from it
HISTORY = {"impressions": 7, "views": 5, "clicks": 3, "carts": 2, "purchases": 1}
UI_EXPECTED = {
    "ui_impressions_28d": 7,
    "ui_views_28d": 5,
    "ui_clicks_28d": 3,
    "ui_carts_28d": 2,
    "ui_purchases_28d": 1,
    "ui_days_since_last_click": 14 / 24,  # clicked at D 10:00, the snapshot ends at D + 1
    "ui_days_since_last_event": 12 / 24,
}
NEW_ITEM = "i-new"  # in no snapshot table


def marker(source: vector.Source, column: str, columns: list[str]) -> int:
    return 1000 * (BUNDLE_SOURCES.index(source) + 1) + columns.index(column) + 1


def table_columns(wh: Warehouse, table: str) -> list[str]:
    with wh.begin() as conn:
        df = wh.query_df(conn, load_sql("reporting/table_columns"), table=table)
    return list(df["column_name"])


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Warehouse, dict[str, object]]:
    """A warehouse whose snapshot D has one marked row per table, and the value each declared
    feature must have for (u1, i1)."""
    wh = Warehouse(f"duckdb:///{tmp_path_factory.mktemp('vector') / 'w.duckdb'}")
    wh.migrate()
    expected: dict[str, object] = {}
    with wh.begin() as conn:
        for source in BUNDLE_SOURCES:
            if source.table is None:
                continue
            columns = table_columns(wh, source.table)
            row = {
                c: D if c == "dt" else TEXT[c] if c in TEXT else marker(source, c, columns)
                for c in columns
            }
            wh.insert_df(conn, source.table, pd.DataFrame([row]))
            for f in vector.of_source(source):
                expected[f.name] = row[f.name]
        history = {"dt": D, "event_day": D, "user_id": "u1", "item_id": "i1", **HISTORY}
        history |= {"last_click_time": pd.Timestamp(D) + pd.Timedelta(hours=10)}
        history |= {"last_event_time": pd.Timestamp(D) + pd.Timedelta(hours=12)}
        wh.insert_df(conn, "user_item_activity_daily", pd.DataFrame([history]))
        example = {
            "dt": D + dt.timedelta(days=1),
            "feature_dt": D,
            "request_id": "r1",
            "user_id": "u1",
            "item_id": "i1",
            "event_time": pd.Timestamp(SHOWN),
            "position": 3,
            "propensity": 0.5,
            "model_version": "m",
            "variant": "champion",
            "label_click": 1,
            "label_purchase": 0,
        }
        wh.insert_df(conn, "training_examples", pd.DataFrame([example]))
    expected |= UI_EXPECTED
    expected["ctx_hour"] = SHOWN.hour
    expected["ctx_dow"] = SHOWN.isoweekday() % 7  # SQL's DOW: Sunday = 0
    expected["ui_price_ratio"] = expected["i_price"] / expected["u_avg_click_price_28d"]
    expected["position"] = 3
    return wh, expected


def declared_value(name: str, expected: dict[str, object], item: str) -> object:
    """What the declaration says feature ``name`` is for (u1, ``item``)."""
    f = vector.BY_NAME[name]
    if f.realtime:
        return None  # the example's request has no session (flywheel_tests/realtime/)
    if item == NEW_ITEM and f.source not in (vector.USERS, REQUEST):
        return None  # no row in an item-keyed source (ui_price_ratio needs the item's price)
    return expected[name]


def test_the_model_uses_only_declared_features() -> None:
    assert set(NUMERIC_FEATURES) <= set(vector.NUMERIC_NAMES)
    assert set(CATEGORICAL_FEATURES) == set(vector.CATEGORICAL_NAMES)
    assert len(vector.BY_NAME) == len(FEATURES), "a feature is declared twice"


def test_serving_assembles_every_kind_of_declared_feature() -> None:
    computed = {f.name for f in FEATURES if f.computed and not f.realtime}
    assert computed == set(online_features.COMPUTED)
    # the real-time ones come from the online store, in the declaration's order
    assert tuple(f.name for f in FEATURES if f.realtime) == REALTIME_NAMES
    handled = {*online_features.ITEM_CATEGORICALS, *online_features.USER_CATEGORICALS}
    assert handled == set(vector.CATEGORICAL_NAMES)
    for source in BUNDLE_SOURCES:
        assert vector.bundle_columns(source)[: len(source.keys)] == list(source.keys)


def test_the_sql_vector_has_the_declared_features_in_order(warehouse) -> None:
    wh, _ = warehouse
    candidates = pd.DataFrame(
        {"request_id": "r", "user_id": "u1", "item_id": ["i1"], "position": 0, "event_time": SHOWN}
    )
    frame = store.serving_frame(wh, candidates, D)
    passthrough = [f.name for f in FEATURES if f.source is REQUEST and f.sql is None]
    own = [*candidates.columns, "session_id", "feature_dt"]
    assert set(passthrough) <= set(own)
    assert list(frame.columns) == own + [f.name for f in FEATURES if f.name not in passthrough]


@pytest.mark.parametrize("path", ["training", "serving"])
def test_the_sql_vector_takes_each_feature_from_its_declared_source(warehouse, path) -> None:
    wh, expected = warehouse
    if path == "training":  # the logged impression, through training_candidates.sql
        frame = store.training_frame(wh, D + dt.timedelta(days=1), D + dt.timedelta(days=1))
        items = ["i1"]
    else:
        candidates = pd.DataFrame(
            {
                "request_id": "r",
                "user_id": "u1",
                "item_id": ["i1", NEW_ITEM],
                "position": 3,
                "event_time": SHOWN,
            }
        )
        frame = store.serving_frame(wh, candidates, D)
        items = ["i1", NEW_ITEM]
    assert list(frame["item_id"]) == items
    for n, item in enumerate(items):
        for f in FEATURES:
            want, got = declared_value(f.name, expected, item), frame[f.name].iloc[n]
            if want is None:
                assert pd.isna(got), (item, f.name, got)
            elif isinstance(want, str):
                assert got == want, (item, f.name, got)
            else:
                assert float(got) == pytest.approx(float(want), rel=1e-12), (item, f.name)


def test_the_serving_bundle_and_vectors_follow_the_declaration(warehouse, tmp_path: Path) -> None:
    wh, expected = warehouse
    counts = export_snapshot(wh, D, tmp_path)
    bundle = online_features.bundle_dir(tmp_path, D)
    for source in BUNDLE_SOURCES:
        exported = pd.read_parquet(bundle / f"{source.name}.parquet")
        assert list(exported.columns) == vector.bundle_columns(source), source.name
        assert counts[source.name] == len(exported) == 1, source.name
    snap = FeatureSnapshot.load(bundle)
    schema = FeatureSchema(
        numeric=list(vector.NUMERIC_NAMES),
        categorical={"region": ["r0", "r1"], "device": ["d1"], "category": ["c1"], "brand": ["b1"]},
    )
    items = ["i1", NEW_ITEM]
    x = snap.matrix(schema, "u1", snap.item_codes(items), SHOWN)
    for n, item in enumerate(items):
        for j, name in enumerate(schema.numeric):
            want = 0 if name == "position" else declared_value(name, expected, item)
            if want is None:
                assert np.isnan(x[n, j]), (item, name, x[n, j])
            else:
                assert x[n, j] == pytest.approx(float(want), rel=1e-6), (item, name)
        for k, (name, values) in enumerate(schema.categorical.items()):
            got = x[n, len(schema.numeric) + k]
            want = declared_value(name, expected, item)
            if want is None:
                assert np.isnan(got), (item, name)
            else:
                assert got == values.index(want), (item, name)
    # The SQL path's vector, encoded as training encodes it, is the same matrix.
    candidates = pd.DataFrame(
        {"request_id": "r", "user_id": "u1", "item_id": items, "position": 0, "event_time": SHOWN}
    )
    sql = schema.matrix(store.serving_frame(wh, candidates, D))
    encoded = np.column_stack(
        [
            sql[c].cat.codes.replace(-1, np.nan).to_numpy(np.float32)
            if isinstance(sql[c].dtype, pd.CategoricalDtype)
            else sql[c].to_numpy(np.float32)
            for c in sql.columns
        ]
    )
    np.testing.assert_allclose(x, encoded, rtol=1e-6, equal_nan=True)


def test_a_feature_outside_the_declaration_is_missing_on_both_paths(warehouse, tmp_path) -> None:
    """u_views_28d is a column of user_features but not of the vector: a model asking for it
    gets nothing from SQL, so serving must not find it in the bundle either."""
    wh, _ = warehouse
    assert "u_views_28d" in table_columns(wh, "user_features")
    assert "u_views_28d" not in vector.BY_NAME
    export_snapshot(wh, D, tmp_path)
    snap = FeatureSnapshot.load(online_features.bundle_dir(tmp_path, D))
    schema = FeatureSchema(numeric=["u_views_28d", "u_ctr_28d"], categorical={})
    x = snap.matrix(schema, "u1", snap.item_codes(["i1"]), SHOWN)
    assert np.isnan(x[0, 0]) and not np.isnan(x[0, 1])
    candidates = pd.DataFrame(
        {"request_id": "r", "user_id": "u1", "item_id": ["i1"], "position": 0, "event_time": SHOWN}
    )
    sql = schema.matrix(store.serving_frame(wh, candidates, D))
    assert sql["u_views_28d"].isna().all() and sql["u_ctr_28d"].notna().all()


def test_an_export_query_that_disagrees_with_the_declaration_fails(
    warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh, _ = warehouse
    extra = vector.Feature("ui_not_exported", USER_ITEM)
    monkeypatch.setattr(vector, "FEATURES", (*FEATURES, extra))
    with pytest.raises(ValueError, match="ui_not_exported"):
        export_snapshot(wh, D, tmp_path)
    assert not online_features.list_bundles(tmp_path), "a partial bundle was published"


def test_the_committed_feature_suites_are_what_the_generator_writes() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import generate_feature_suites as generator
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    for table, (keys, description) in generator.TABLES.items():
        committed = json.loads((generator.SUITES / f"{table}.json").read_text())
        assert committed == generator.suite(table, keys, description), (
            f"{table}: run python scripts/generate_feature_suites.py and review the diff"
        )
