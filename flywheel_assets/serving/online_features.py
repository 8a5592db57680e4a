"""Serving-time features: a published snapshot of the feature tables, held in memory.

The pipeline's ``online_features`` asset exports snapshot D (the feature tables as of the end
of day D, which is what serving on D + 1 may use) as Parquet files to
``FLYWHEEL_HOME/serving/features/dt=D/``, with ``_SUCCESS`` written last. The ranking service
loads the newest complete bundle into memory and assembles a request's feature vectors with
numpy: no database on the request path, and none in the serving process at all (with the
embedded DuckDB warehouse, a second process holding the file would block the pipeline).

What the bundle holds and how a vector is assembled both come from the one declaration of the
feature vector, ``features/vector.py``, which the training SQL is generated from too: the
vectors are the ones ``features.vector.vector_sql()`` gives for the same pairs
(``flywheel_tests/serving/test_serving.py`` compares both, column by column, on a real
warehouse; ``flywheel_tests/features/test_vector.py`` checks both against the declaration).
The real-time features are not in the bundle: the caller passes them in from the online store
(``realtime.store``), and the snapshot is the catalog they are counted by.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from flywheel_assets.features import vector
from flywheel_assets.features.vector import BUNDLE_SOURCES, Source
from flywheel_assets.platform.warehouse import Warehouse, load_sql
from flywheel_assets.realtime.features import REALTIME_NAMES
from flywheel_assets.realtime.store import CatalogSizes
from flywheel_assets.training.model import FeatureSchema

SUCCESS = "_SUCCESS"
KEEP_BUNDLES = 3
# The computed features (features/vector.py) and categoricals this module assembles itself;
# a feature declared later must be added here (the plan refuses to serve it as missing).
COMPUTED = ("position", "ctx_hour", "ctx_dow", "ui_price_ratio")
ITEM_CATEGORICALS = ("category", "brand")
USER_CATEGORICALS = ("region", "device")


def bundle_dir(serving_dir: Path, feature_dt: dt.date) -> Path:
    return serving_dir / "features" / f"dt={feature_dt.isoformat()}"


def export_snapshot(wh: Warehouse, feature_dt: dt.date, serving_dir: Path) -> dict[str, int]:
    """Write snapshot ``feature_dt`` as a bundle; returns rows per table. Rewrites a bundle
    that exists (re-materialising a day is safe) and keeps the newest ``KEEP_BUNDLES``."""
    final = bundle_dir(serving_dir, feature_dt)
    staging = final.with_name(f".{final.name}.staging")
    old = final.with_name(f".{final.name}.old")
    if not final.exists() and (old / SUCCESS).exists():
        old.rename(final)  # a writer was killed between its two renames: put the bundle back
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    counts: dict[str, int] = {}
    with wh.begin() as conn:
        for source in BUNDLE_SOURCES:
            df = _export(wh, conn, source, feature_dt)
            df.to_parquet(staging / f"{source.name}.parquet", index=False)
            counts[source.name] = len(df)
    (staging / SUCCESS).write_text(
        json.dumps({"feature_dt": feature_dt.isoformat(), "rows": counts}, indent=2)
    )
    # Readers only take folders with _SUCCESS; swap the whole folder so none sees a mixture.
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(final)
    for stale in list_bundles(serving_dir)[:-KEEP_BUNDLES]:
        shutil.rmtree(stale, ignore_errors=True)
    return counts


def _export(wh: Warehouse, conn: Connection, source: Source, feature_dt: dt.date) -> pd.DataFrame:
    """``source``'s rows of snapshot ``feature_dt``: its keys and declared features."""
    columns = vector.bundle_columns(source)
    if source.table is not None:
        return wh.read_partition(conn, source.table, feature_dt, columns)
    df = wh.query_df(conn, load_sql(source.query), feature_dt=feature_dt)
    missing = sorted(set(columns) - set(df.columns))
    if missing:  # the query and the declaration disagree: no bundle rather than NaN features
        raise ValueError(f"sql/{source.query}.sql gives no {missing} (features/vector.py)")
    return df[columns]


def list_bundles(serving_dir: Path) -> list[Path]:
    """Complete bundles, oldest first."""
    root = serving_dir / "features"
    if not root.is_dir():
        return []
    found = {p.name: p for p in root.glob("dt=*") if (p / SUCCESS).exists()}
    # Between a writer's two renames (or after a writer killed between them) a day's bundle
    # exists only as .dt=….old, complete: readers take that one, the old bundle, not none.
    for p in root.glob(".dt=*.old"):
        if _day_name(p) not in found and (p / SUCCESS).exists():
            found[_day_name(p)] = p
    return [found[name] for name in sorted(found)]


def _day_name(bundle: Path) -> str:
    """``dt=YYYY-MM-DD`` of a bundle folder, also of a ``.dt=YYYY-MM-DD.old`` one."""
    return bundle.name.removeprefix(".").removesuffix(".old")


def latest_bundle(serving_dir: Path, before: dt.date | None = None) -> Path | None:
    """The newest complete bundle (with ``before``: the newest with feature_dt < before)."""
    bundles = list_bundles(serving_dir)
    if before is not None:
        bundles = [p for p in bundles if _day_name(p) < f"dt={before.isoformat()}"]
    return bundles[-1] if bundles else None


@dataclass
class _Table:
    """A feature table as a float matrix with a trailing all-NaN row, so that index -1
    (not found) gathers missing values, as the SQL's LEFT JOIN does."""

    columns: list[str]
    values: np.ndarray

    @classmethod
    def of(cls, df: pd.DataFrame, source: Source) -> _Table:
        """``source``'s numeric features (features/vector.py) as floats; a column the bundle
        lacks (one written before the feature was declared) is missing."""
        cols = [f.name for f in vector.of_source(source) if f.kind == vector.NUMERIC]
        values = np.full((len(df) + 1, len(cols)), np.nan)
        present = [c for c in cols if c in df.columns]
        if len(df) and present:
            idx = [cols.index(c) for c in present]
            values[:-1, idx] = df[present].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        return cls(cols, values)


@dataclass
class FeatureSnapshot(CatalogSizes):
    """One bundle in memory, indexed for per-request lookups."""

    feature_dt: dt.date
    path: Path | None
    item_ids: np.ndarray
    item_index: dict[str, int]
    item_price: np.ndarray
    categories: list[str]
    brands: list[str]
    regions: list[str]
    item_category: np.ndarray  # code into categories; len(categories) = unknown
    item_brand: np.ndarray
    user_index: dict[str, int]
    user_region: list[str | None]
    user_device: list[str | None]
    tables: dict[str, _Table]
    # per user: (sorted category / brand / item codes, row in the table)
    user_category_rows: dict[str, tuple[np.ndarray, np.ndarray]]
    user_brand_rows: dict[str, tuple[np.ndarray, np.ndarray]]
    user_item_rows: dict[str, tuple[np.ndarray, np.ndarray]]
    region_category_rows: np.ndarray  # (regions + 1, categories + 1) -> row or -1
    region_brand_rows: np.ndarray
    _plans: dict[str, _Plan] = field(default_factory=dict, repr=False)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @classmethod
    def load(cls, path: Path) -> FeatureSnapshot:
        meta = json.loads((path / SUCCESS).read_text())
        frames = {s.name: pd.read_parquet(path / f"{s.name}.parquet") for s in BUNDLE_SOURCES}
        return cls.from_frames(dt.date.fromisoformat(meta["feature_dt"]), frames, path)

    @classmethod
    def from_frames(
        cls, feature_dt: dt.date, frames: dict[str, pd.DataFrame], path: Path | None = None
    ) -> FeatureSnapshot:
        items = frames["items"].drop_duplicates("item_id").reset_index(drop=True)
        users = frames["users"].drop_duplicates("user_id").reset_index(drop=True)
        uc, ub = frames["user_category"], frames["user_brand"]
        ui, rc, rb = frames["user_item"], frames["region_category"], frames["region_brand"]
        categories = sorted(
            {*items["category"].dropna(), *uc["category"].dropna(), *rc["category"].dropna()}
        )
        brands = sorted({*items["brand"].dropna(), *ub["brand"].dropna(), *rb["brand"].dropna()})
        regions = sorted(
            {*users["region"].dropna(), *rc["region"].dropna(), *rb["region"].dropna()}
        )
        cat_code = {c: i for i, c in enumerate(categories)}
        brand_code = {b: i for i, b in enumerate(brands)}
        region_code = {r: i for i, r in enumerate(regions)}
        item_ids = items["item_id"].astype(str).to_numpy(dtype=object)
        item_index = {i: n for n, i in enumerate(item_ids)}

        def codes(values: pd.Series, mapping: dict[str, int]) -> np.ndarray:
            return np.array([mapping.get(v, len(mapping)) for v in values], dtype=np.int64)

        def per_user(df: pd.DataFrame, col_codes: np.ndarray) -> dict[str, tuple]:
            out: dict[str, tuple] = {}
            if df.empty:
                return out
            order = np.lexsort((col_codes, df["user_id"].to_numpy(dtype=object).astype(str)))
            users_sorted = df["user_id"].to_numpy(dtype=object)[order]
            starts = np.flatnonzero(np.r_[True, users_sorted[1:] != users_sorted[:-1]])
            ends = np.r_[starts[1:], len(order)]
            for s, e in zip(starts, ends, strict=True):
                out[users_sorted[s]] = (col_codes[order[s:e]], order[s:e])
            return out

        def region_rows(df: pd.DataFrame, col: str, mapping: dict[str, int]) -> np.ndarray:
            grid = np.full((len(regions) + 1, len(mapping) + 1), -1, dtype=np.int64)
            if len(df):
                grid[codes(df["region"], region_code), codes(df[col], mapping)] = np.arange(len(df))
            grid[len(regions), :] = -1  # unknown region or category: no row
            grid[:, len(mapping)] = -1
            return grid

        ui_codes = np.array([item_index.get(str(i), -1) for i in ui["item_id"]], dtype=np.int64)
        unique = {**frames, "items": items, "users": users}
        return cls(
            feature_dt=feature_dt,
            path=path,
            item_ids=item_ids,
            item_index=item_index,
            item_price=pd.to_numeric(items["i_price"], errors="coerce").to_numpy(dtype=float),
            categories=categories,
            brands=brands,
            regions=regions,
            item_category=codes(items["category"], cat_code),
            item_brand=codes(items["brand"], brand_code),
            user_index={u: n for n, u in enumerate(users["user_id"].astype(str))},
            user_region=[None if pd.isna(v) else str(v) for v in users["region"]],
            user_device=[None if pd.isna(v) else str(v) for v in users["device"]],
            tables={s.name: _Table.of(unique[s.name], s) for s in BUNDLE_SOURCES},
            user_category_rows=per_user(uc, codes(uc["category"], cat_code)),
            user_brand_rows=per_user(ub, codes(ub["brand"], brand_code)),
            # pairs whose item left the catalog keep code -1 and never match a candidate
            user_item_rows=per_user(ui, ui_codes),
            region_category_rows=region_rows(rc, "category", cat_code),
            region_brand_rows=region_rows(rb, "brand", brand_code),
        )

    # ----- per request ------------------------------------------------------------------------

    def item_codes(self, item_ids: Sequence[str]) -> np.ndarray:
        """Row of each item in the snapshot, -1 for items it does not know (new today)."""
        get = self.item_index.get
        return np.fromiter((get(i, -1) for i in item_ids), dtype=np.int64, count=len(item_ids))

    # ----- the catalog the real-time features count by (realtime.store.Catalog) -----------

    def attribute_codes(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.attributes_of(self.item_codes(item_ids))

    def attributes_of(self, item_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Category and brand codes of snapshot rows (unknown for -1)."""
        cat = np.where(item_codes >= 0, self.item_category[item_codes], len(self.categories))
        brand = np.where(item_codes >= 0, self.item_brand[item_codes], len(self.brands))
        return cat, brand

    def matrix(
        self,
        schema: FeatureSchema,
        user_id: str,
        item_codes: np.ndarray,
        request_time: dt.datetime,
        realtime: np.ndarray | None = None,
    ) -> np.ndarray:
        """The model input for one user and candidate items: float32, columns in the schema's
        order, categorical values as their index in the schema's categories (NaN unseen),
        every row scored as if shown at position 0 (``training.predict(at_top=True)``).
        ``realtime``: the request's real-time features (``realtime.features.REALTIME_NAMES``
        columns, from the online store); without it they are missing, as for a request
        without a session."""
        plan = self._plan(schema)
        n = len(item_codes)
        user_row = self.user_index.get(user_id, -1)
        cat, brand = self.attributes_of(item_codes)
        region = self.user_region[user_row] if user_row >= 0 else None
        region_code = self.regions.index(region) if region in self.regions else len(self.regions)
        rows = {
            "items": item_codes,
            "users": np.full(n, user_row),
            "user_category": _lookup(self.user_category_rows.get(user_id), cat),
            "user_brand": _lookup(self.user_brand_rows.get(user_id), brand),
            "user_item": _lookup(self.user_item_rows.get(user_id), item_codes),
            "region_category": self.region_category_rows[region_code, cat],
            "region_brand": self.region_brand_rows[region_code, brand],
        }
        x = np.full((n, plan.width), np.nan, dtype=np.float32)
        for table, (targets, sources) in plan.gathers.items():
            x[:, targets] = self.tables[table].values[rows[table]][:, sources]
        if realtime is not None and len(plan.realtime_targets):
            x[:, plan.realtime_targets] = realtime[:, plan.realtime_sources]
        if plan.position is not None:
            x[:, plan.position] = 0.0
        if plan.hour is not None:
            x[:, plan.hour] = request_time.hour
        if plan.dow is not None:
            x[:, plan.dow] = (request_time.weekday() + 1) % 7  # SQL's DOW: Sunday = 0
        if plan.price_ratio is not None:
            price = self.tables["items"].values[item_codes, plan.price_col]
            avg = self.tables["users"].values[user_row, plan.avg_click_price_col]
            with np.errstate(divide="ignore", invalid="ignore"):
                x[:, plan.price_ratio] = np.where(avg > 0, price / avg, np.nan)
        for target, mapping in plan.item_categoricals:
            source = cat if mapping.kind == "category" else brand
            x[:, target] = mapping.codes[source]
        for target, column, lookup in plan.user_categoricals:
            values = self.user_region if column == "region" else self.user_device
            x[:, target] = lookup.get(values[user_row] if user_row >= 0 else None, np.nan)
        return x

    def uses_realtime(self, schema: FeatureSchema) -> bool:
        return self._plan(schema).uses_realtime

    def _plan(self, schema: FeatureSchema) -> _Plan:
        key = schema.to_json()
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _Plan.build(self, schema)
        return plan


@dataclass
class _CategoryMap:
    kind: str  # "category" or "brand"
    codes: np.ndarray  # snapshot code (+ unknown) -> schema code or NaN


@dataclass
class _Plan:
    """Where each of a schema's columns comes from in a snapshot."""

    width: int
    gathers: dict[str, tuple[np.ndarray, np.ndarray]]
    position: int | None
    hour: int | None
    dow: int | None
    price_ratio: int | None
    price_col: int
    avg_click_price_col: int
    item_categoricals: list[tuple[int, _CategoryMap]]
    user_categoricals: list[tuple[int, str, dict[str | None, float]]]
    realtime_targets: np.ndarray  # the schema's real-time columns
    realtime_sources: np.ndarray  # ... and their index in REALTIME_NAMES

    @property
    def uses_realtime(self) -> bool:
        return len(self.realtime_targets) > 0

    @classmethod
    def build(cls, snap: FeatureSnapshot, schema: FeatureSchema) -> _Plan:
        """Each schema column from where features/vector.py declares it. A column the
        declaration lacks is missing, as in SQL (the vector has no such column)."""
        gathers: dict[str, tuple[list[int], list[int]]] = {}
        special: dict[str, int] = {}
        realtime: list[tuple[int, int]] = []
        for j, column in enumerate(schema.numeric):
            feature = vector.BY_NAME.get(column)
            if feature is None or feature.kind != vector.NUMERIC:
                continue  # not in the vector: missing in the SQL too, it stays NaN
            if feature.realtime:
                realtime.append((j, REALTIME_NAMES.index(column)))
                continue
            if feature.computed:
                if column not in COMPUTED:
                    raise ValueError(f"serving cannot compute declared feature {column!r}")
                special[column] = j
                continue
            table = feature.source.name
            gathers.setdefault(table, ([], []))
            gathers[table][0].append(j)
            gathers[table][1].append(snap.tables[table].columns.index(column))
        item_cats: list[tuple[int, _CategoryMap]] = []
        user_cats: list[tuple[int, str, dict[str | None, float]]] = []
        offset = len(schema.numeric)
        for j, (column, values) in enumerate(schema.categorical.items()):
            feature = vector.BY_NAME.get(column)
            if feature is None or feature.kind != vector.CATEGORICAL:
                continue
            index = {v: float(n) for n, v in enumerate(values)}
            if column in ITEM_CATEGORICALS:
                names = snap.categories if column == "category" else snap.brands
                codes = np.array([index.get(v, np.nan) for v in names] + [np.nan])
                item_cats.append((offset + j, _CategoryMap(column, codes)))
            elif column in USER_CATEGORICALS:
                user_cats.append((offset + j, column, index))
            else:
                raise ValueError(f"serving cannot encode declared categorical {column!r}")
        items, users = snap.tables["items"].columns, snap.tables["users"].columns
        return cls(
            width=offset + len(schema.categorical),
            gathers={t: (np.array(a), np.array(b)) for t, (a, b) in gathers.items()},
            position=special.get("position"),
            hour=special.get("ctx_hour"),
            dow=special.get("ctx_dow"),
            price_ratio=special.get("ui_price_ratio"),
            price_col=items.index("i_price"),
            avg_click_price_col=users.index("u_avg_click_price_28d"),
            item_categoricals=item_cats,
            user_categoricals=user_cats,
            realtime_targets=np.array([t for t, _ in realtime], dtype=np.int64),
            realtime_sources=np.array([s for _, s in realtime], dtype=np.int64),
        )


def _lookup(entry: tuple[np.ndarray, np.ndarray] | None, wanted: np.ndarray) -> np.ndarray:
    """Rows of ``wanted`` codes among one user's (sorted codes, rows); -1 where absent."""
    if entry is None:
        return np.full(len(wanted), -1, dtype=np.int64)
    codes, rows = entry
    pos = np.minimum(np.searchsorted(codes, wanted), len(codes) - 1)
    # code -1 is "not in the snapshot" on both sides: such items never match
    return np.where((codes[pos] == wanted) & (wanted >= 0), rows[pos], -1)
