"""Serving-time features: a published snapshot of the feature tables.

The pipeline's ``online_features`` asset exports snapshot D (the feature tables as of the end
of day D, which is what serving on D + 1 may use) to ``FLYWHEEL_HOME/serving/features/dt=D/``:
the tables as Parquet files, the same rows as flat arrays in ``mapped/`` for the service, and
``_SUCCESS`` written last. The ranking service maps the newest complete bundle (decision 87)
and assembles a request's feature vectors with numpy: no database on the request path, and
none in the serving process at all (with the embedded DuckDB warehouse, a second process
holding the file would block the pipeline). What grows with users stays in the page cache,
shared by the replicas on a host, and is read a few pages per request.

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
import logging
import mmap
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

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
MAPPED = "mapped"  # the bundle's arrays for serving, mapped by FeatureSnapshot.load
MAPPED_META = "meta.json"
MAPPED_FORMAT = 1
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
    frames: dict[str, pd.DataFrame] = {}
    with wh.begin() as conn:
        for source in BUNDLE_SOURCES:
            df = _export(wh, conn, source, feature_dt)
            df.to_parquet(staging / f"{source.name}.parquet", index=False)
            counts[source.name] = len(df)
            frames[source.name] = df
    FeatureSnapshot.from_frames(feature_dt, frames).save_mapped(staging / MAPPED)
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
    def of(cls, df: pd.DataFrame, source: Source, dtype: type = np.float64) -> _Table:
        """``source``'s numeric features (features/vector.py) as floats; a column the bundle
        lacks (one written before the feature was declared) is missing."""
        cols = [f.name for f in vector.of_source(source) if f.kind == vector.NUMERIC]
        values = np.full((len(df) + 1, len(cols)), np.nan, dtype=dtype)
        present = [c for c in cols if c in df.columns]
        if len(df) and present:
            idx = [cols.index(c) for c in present]
            values[:-1, idx] = df[present].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        return cls(cols, values)


@dataclass
class _PerUser:
    """One user's rows of a user x (category | brand | item) table, as compressed sparse rows:
    user key k owns table rows ``offsets[k]:offsets[k + 1]``, whose codes are sorted."""

    offsets: np.ndarray
    codes: np.ndarray

    def rows(self, key: int, wanted: np.ndarray) -> np.ndarray:
        """Table row of each ``wanted`` code for user ``key``; -1 where absent."""
        if key < 0:
            return np.full(len(wanted), -1, dtype=np.int64)
        start, end = int(self.offsets[key]), int(self.offsets[key + 1])
        if start == end:
            return np.full(len(wanted), -1, dtype=np.int64)
        codes = np.asarray(self.codes[start:end])
        pos = np.minimum(np.searchsorted(codes, wanted), end - start - 1)
        # code -1 is "not in the snapshot" on both sides: such items never match
        return np.where((codes[pos] == wanted) & (wanted >= 0), start + pos, -1)

    def codes_of(self, key: int) -> np.ndarray:
        if key < 0:
            return np.empty(0, dtype=np.int64)
        return np.asarray(self.codes[int(self.offsets[key]) : int(self.offsets[key + 1])])


# The per-user tables, keyed (user_id, their column) by their declaration in features/vector.py.
PER_USER = (vector.USER_CATEGORY, vector.USER_BRAND, vector.USER_ITEM)


@dataclass
class FeatureSnapshot(CatalogSizes):
    """One bundle, indexed for per-request lookups.

    Everything that grows with users (the user ids, the per-user tables) is a flat array
    that :meth:`load` maps from the bundle's ``mapped/`` folder (decision 87): a replica's own
    memory is the catalog (items, categories, brands, regions), and the users' pages are read
    on demand from the operating system's page cache, which every replica on a host shares.
    A user is found by binary search in the sorted ids (``keys``)."""

    feature_dt: dt.date
    path: Path | None
    item_ids: np.ndarray
    item_index: dict[str, int]
    item_price: np.ndarray
    categories: list[str]
    brands: list[str]
    regions: list[str]
    devices: list[str]
    item_category: np.ndarray  # code into categories; len(categories) = unknown
    item_brand: np.ndarray
    keys: np.ndarray  # sorted user ids (UTF-8 bytes) of every per-user table
    user_row: np.ndarray  # key -> row in the users table, -1 for none
    user_region: np.ndarray  # users row -> code into regions; len(regions) = none
    user_device: np.ndarray  # users row -> code into devices; len(devices) = none
    tables: dict[str, _Table]
    per_user: dict[str, _PerUser]  # user_category, user_brand, user_item
    region_category_rows: np.ndarray  # (regions + 1, categories + 1) -> row or -1
    region_brand_rows: np.ndarray
    mapped: bool = False
    _plans: dict[str, _Plan] = field(default_factory=dict, repr=False)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @classmethod
    def load(cls, path: Path) -> FeatureSnapshot:
        """The bundle at ``path``: mapped when it has its ``mapped/`` form (written by
        :func:`export_snapshot`), else built in memory from its Parquet files (a bundle
        published before decision 87)."""
        meta = json.loads((path / SUCCESS).read_text())
        mapped = path / MAPPED
        if (mapped / MAPPED_META).exists():
            found = json.loads((mapped / MAPPED_META).read_text()).get("format")
            if found == MAPPED_FORMAT:
                return cls.open_mapped(mapped, path)
            # Serve rather than refuse: the Parquet files hold the same rows.
            log.warning(
                "%s is mapped format %s, this service reads %s: building it in memory from its "
                "Parquet files; re-materialise online_features for %s to map it",
                mapped, found, MAPPED_FORMAT, meta["feature_dt"],
            )  # fmt: skip
        frames = {s.name: pd.read_parquet(path / f"{s.name}.parquet") for s in BUNDLE_SOURCES}
        return cls.from_frames(dt.date.fromisoformat(meta["feature_dt"]), frames, path)

    @classmethod
    def from_frames(
        cls, feature_dt: dt.date, frames: dict[str, pd.DataFrame], path: Path | None = None
    ) -> FeatureSnapshot:
        items = frames["items"].drop_duplicates("item_id").reset_index(drop=True)
        # A row without a user id can never be asked for (the SQL's joins never match it).
        users = frames["users"].dropna(subset=["user_id"]).drop_duplicates("user_id")
        users = users.reset_index(drop=True)
        pairs = {
            s.name: frames[s.name].dropna(subset=["user_id"]).reset_index(drop=True)
            for s in PER_USER
        }
        uc, ub = pairs["user_category"], pairs["user_brand"]
        rc, rb = frames["region_category"], frames["region_brand"]

        def distinct(*columns: pd.Series) -> list[str]:
            # Each column's distinct values first (a hash pass), then the few that remain.
            return sorted({v for c in columns for v in c.dropna().unique().tolist()})

        categories = distinct(items["category"], uc["category"], rc["category"])
        brands = distinct(items["brand"], ub["brand"], rb["brand"])
        regions = distinct(users["region"], rc["region"], rb["region"])
        devices = sorted({str(d) for d in users["device"].dropna()})
        cat_code = {c: i for i, c in enumerate(categories)}
        brand_code = {b: i for i, b in enumerate(brands)}
        region_code = {r: i for i, r in enumerate(regions)}
        device_code = {d: i for i, d in enumerate(devices)}
        item_ids = items["item_id"].astype(str).to_numpy(dtype=object)
        item_index = {i: n for n, i in enumerate(item_ids)}

        def codes(values: pd.Series, mapping: dict[str, int]) -> np.ndarray:
            # The mapping's keys in order are its codes; a value not among them (or missing)
            # gets len(mapping). One hash join instead of a dict lookup per row.
            found = pd.Index(list(mapping)).get_indexer(values)
            return np.where(found < 0, len(mapping), found).astype(np.int64)

        # Every user id of every per-user table, sorted by its UTF-8 bytes (which is the
        # order of the strings' code points): a key is a position in that order.
        all_ids = pd.concat(
            [users["user_id"], *(df["user_id"] for df in pairs.values())], ignore_index=True
        ).astype(str)
        key_of, uniques = pd.factorize(all_ids, sort=True)
        keys = _id_bytes(list(uniques))
        bounds = np.cumsum([0, len(users), *(len(df) for df in pairs.values())])
        user_row = np.full(len(keys), -1, dtype=np.int64)
        user_row[key_of[: bounds[1]]] = np.arange(len(users))

        tables = {
            s.name: _Table.of({**frames, "items": items, "users": users}[s.name], s)
            for s in BUNDLE_SOURCES
            if s.name not in pairs
        }
        per_user: dict[str, _PerUser] = {}
        for n, source in enumerate(PER_USER):
            name, df, column = source.name, pairs[source.name], source.keys[1]
            owner = key_of[bounds[n + 1] : bounds[n + 2]]
            if source is vector.USER_ITEM:  # pairs whose item left the catalog keep code -1
                ids = df[column]
                missing = ids.isna().to_numpy()
                text = (
                    ids
                    if pd.api.types.is_string_dtype(ids)
                    else ids.astype(object).map(str, na_action="ignore")
                )
                found = pd.Index(list(item_index), dtype=object).get_indexer(text)
                # position len(item_index) is -1: an id not in the catalog
                rows = np.append(np.fromiter(item_index.values(), np.int64, len(item_index)), -1)
                col_codes = rows[found]
                # A missing id is looked up as its text ("None", "nan"), as it always was,
                # never matched to a catalog row whose id is missing.
                col_codes[missing] = [item_index.get(str(i), -1) for i in ids[missing]]
            else:
                col_codes = codes(df[column], cat_code if column == "category" else brand_code)
            order = np.lexsort((col_codes, owner))
            offsets = np.zeros(len(keys) + 1, dtype=np.int64)
            np.cumsum(np.bincount(owner, minlength=len(keys)), out=offsets[1:])
            per_user[name] = _PerUser(offsets, col_codes[order])
            # float32 is what the model reads; the cast here is the one assembly would do
            tables[name] = _Table.of(df.iloc[order], source, np.float32)

        def region_rows(df: pd.DataFrame, col: str, mapping: dict[str, int]) -> np.ndarray:
            grid = np.full((len(regions) + 1, len(mapping) + 1), -1, dtype=np.int64)
            if len(df):
                grid[codes(df["region"], region_code), codes(df[col], mapping)] = np.arange(len(df))
            grid[len(regions), :] = -1  # unknown region or category: no row
            grid[:, len(mapping)] = -1
            return grid

        return cls(
            feature_dt=feature_dt,
            path=path,
            item_ids=item_ids,
            item_index=item_index,
            item_price=pd.to_numeric(
                items.get("i_price", pd.Series(np.nan, index=items.index)), errors="coerce"
            ).to_numpy(dtype=float),
            categories=categories,
            brands=brands,
            regions=regions,
            devices=devices,
            item_category=codes(items["category"], cat_code),
            item_brand=codes(items["brand"], brand_code),
            keys=keys,
            user_row=user_row,
            user_region=codes(users["region"], region_code),
            user_device=codes(
                users["device"].map(lambda d: None if pd.isna(d) else str(d)), device_code
            ),  # fmt: skip
            tables=tables,
            per_user=per_user,
            region_category_rows=region_rows(rc, "category", cat_code),
            region_brand_rows=region_rows(rb, "brand", brand_code),
        )

    # ----- the mapped form ----------------------------------------------------------------

    def save_mapped(self, folder: Path) -> None:
        """Write the snapshot as flat ``.npy`` arrays and a ``meta.json`` (last) that
        :meth:`open_mapped` maps without reading them. Written whole beside ``folder`` and
        renamed into place: a file that a replica maps is never rewritten under it."""
        if folder.exists():
            raise FileExistsError(f"{folder} exists: a published snapshot is never rewritten")
        partial = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        arrays = {
            "item_ids": _id_bytes(list(self.item_ids)),
            "item_price": self.item_price,
            "item_category": self.item_category,
            "item_brand": self.item_brand,
            "keys": self.keys,
            "user_row": self.user_row,
            "user_region": self.user_region,
            "user_device": self.user_device,
            "region_category_rows": self.region_category_rows,
            "region_brand_rows": self.region_brand_rows,
            **{f"table.{name}": t.values for name, t in self.tables.items()},
            **{f"{name}.offsets": p.offsets for name, p in self.per_user.items()},
            **{f"{name}.codes": p.codes for name, p in self.per_user.items()},
        }
        for name, values in arrays.items():
            np.save(partial / f"{name}.npy", np.ascontiguousarray(values), allow_pickle=False)
        meta = {
            "format": MAPPED_FORMAT,
            "feature_dt": self.feature_dt.isoformat(),
            "categories": self.categories,
            "brands": self.brands,
            "regions": self.regions,
            "devices": self.devices,
            "columns": {name: t.columns for name, t in self.tables.items()},
        }
        (partial / MAPPED_META).write_text(json.dumps(meta))
        partial.rename(folder)

    @classmethod
    def open_mapped(cls, folder: Path, path: Path | None = None) -> FeatureSnapshot:
        """Map a :meth:`save_mapped` folder read-only. Only the catalog is read into memory."""
        meta = json.loads((folder / MAPPED_META).read_text())
        if meta.get("format") != MAPPED_FORMAT:
            raise ValueError(
                f"{folder} is mapped format {meta.get('format')}, this service reads "
                f"{MAPPED_FORMAT}: re-materialise online_features for {meta.get('feature_dt')}"
            )

        def arr(name: str, mapped: bool = True) -> np.ndarray:
            values = np.load(folder / f"{name}.npy", mmap_mode="r" if mapped else None)
            # Requests read a few pages of random users: without this hint a fault on a cold
            # cache reads ahead pages of users nobody asked for. (The kernel may still map a
            # whole cached folio: page cache shared by the host, not the replica's memory.)
            handle = getattr(values, "_mmap", None)
            if handle is not None and hasattr(mmap, "MADV_RANDOM"):
                handle.madvise(mmap.MADV_RANDOM)
            return values

        item_ids = np.array(
            [b.decode("utf-8", "surrogatepass") for b in arr("item_ids", False)], dtype=object
        )
        columns = meta["columns"]
        return cls(
            feature_dt=dt.date.fromisoformat(meta["feature_dt"]),
            path=path,
            item_ids=item_ids,
            item_index={i: n for n, i in enumerate(item_ids)},
            item_price=arr("item_price", False),
            categories=meta["categories"],
            brands=meta["brands"],
            regions=meta["regions"],
            devices=meta["devices"],
            item_category=arr("item_category", False),
            item_brand=arr("item_brand", False),
            keys=arr("keys"),
            user_row=arr("user_row"),
            user_region=arr("user_region"),
            user_device=arr("user_device"),
            tables={name: _Table(cols, arr(f"table.{name}")) for name, cols in columns.items()},
            per_user={
                s.name: _PerUser(arr(f"{s.name}.offsets"), arr(f"{s.name}.codes")) for s in PER_USER
            },
            region_category_rows=arr("region_category_rows", False),
            region_brand_rows=arr("region_brand_rows", False),
            mapped=True,
        )

    # ----- users ----------------------------------------------------------------------------

    def user_key(self, user_id: str) -> int:
        """Position of ``user_id`` among the snapshot's users, -1 if it has none."""
        wanted = user_id.encode("utf-8", "surrogatepass")
        width = self.keys.dtype.itemsize
        if len(self.keys) == 0 or len(wanted) > width or wanted.endswith(b"\0"):
            return -1  # longer than every known id, or not representable: unknown
        pos = int(np.searchsorted(self.keys, np.bytes_(wanted)))
        return pos if pos < len(self.keys) and self.keys[pos] == wanted else -1

    def known_users(self) -> list[str]:
        """Ids of the users the users table holds (for tests and tools; reads every key)."""
        return [
            bytes(k).decode("utf-8", "surrogatepass")
            for k in np.asarray(self.keys)[np.asarray(self.user_row) >= 0]
        ]

    def history(self, user_id: str) -> np.ndarray:
        """Snapshot rows of the items ``user_id`` has user x item history with (items that
        left the catalog are not among them)."""
        codes = self.per_user["user_item"].codes_of(self.user_key(user_id))
        return codes[codes >= 0]

    def users_with_history(self, limit: int) -> list[str]:
        """Up to ``limit`` ids of users with features and user x item history, in key order."""
        offsets = np.asarray(self.per_user["user_item"].offsets)
        with_rows = np.flatnonzero((np.diff(offsets) > 0) & (np.asarray(self.user_row) >= 0))
        with_rows = with_rows[:limit]
        return [bytes(self.keys[k]).decode("utf-8", "surrogatepass") for k in with_rows]

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
        key = self.user_key(user_id)
        user_row = int(self.user_row[key]) if key >= 0 else -1
        cat, brand = self.attributes_of(item_codes)
        region_code = int(self.user_region[user_row]) if user_row >= 0 else len(self.regions)
        rows = {
            "items": item_codes,
            "users": np.full(n, user_row),
            "user_category": self.per_user["user_category"].rows(key, cat),
            "user_brand": self.per_user["user_brand"].rows(key, brand),
            "user_item": self.per_user["user_item"].rows(key, item_codes),
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
        if (
            plan.price_ratio is not None
            and plan.price_col is not None
            and plan.avg_click_price_col is not None
        ):
            price = self.tables["items"].values[item_codes, plan.price_col]
            avg = self.tables["users"].values[user_row, plan.avg_click_price_col]
            with np.errstate(divide="ignore", invalid="ignore"):
                x[:, plan.price_ratio] = np.where(avg > 0, price / avg, np.nan)
        for target, mapping in plan.item_categoricals:
            source = cat if mapping.kind == "category" else brand
            x[:, target] = mapping.codes[source]
        for target, column, codes in plan.user_categoricals:
            values = self.user_region if column == "region" else self.user_device
            x[:, target] = codes[int(values[user_row]) if user_row >= 0 else -1]
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
    price_col: int | None  # None: a bundle without the column, the ratio is missing
    avg_click_price_col: int | None
    item_categoricals: list[tuple[int, _CategoryMap]]
    user_categoricals: list[tuple[int, str, np.ndarray]]
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
            if column not in snap.tables[table].columns:
                continue  # a mapped bundle written before the feature was declared: missing
            gathers.setdefault(table, ([], []))
            gathers[table][0].append(j)
            gathers[table][1].append(snap.tables[table].columns.index(column))
        item_cats: list[tuple[int, _CategoryMap]] = []
        user_cats: list[tuple[int, str, np.ndarray]] = []
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
                names = snap.regions if column == "region" else snap.devices
                # the snapshot's code (+ none) -> the schema's code or NaN
                codes = np.array([index.get(v, np.nan) for v in names] + [np.nan])
                user_cats.append((offset + j, column, codes))
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
            price_col=items.index("i_price") if "i_price" in items else None,
            avg_click_price_col=(
                users.index("u_avg_click_price_28d") if "u_avg_click_price_28d" in users else None
            ),
            item_categoricals=item_cats,
            user_categoricals=user_cats,
            realtime_targets=np.array([t for t, _ in realtime], dtype=np.int64),
            realtime_sources=np.array([s for _, s in realtime], dtype=np.int64),
        )


def _id_bytes(ids: list[str]) -> np.ndarray:
    """Ids as a fixed-width bytes array (UTF-8), which numpy sorts and searches. numpy drops
    trailing NUL bytes, so an id ending in one is refused (ingestion refuses NULs anyway)."""
    encoded = [i.encode("utf-8", "surrogatepass") for i in ids]
    bad = next((i for i, e in zip(ids, encoded, strict=True) if e.endswith(b"\0")), None)
    if bad is not None:
        raise ValueError(f"id {bad!r} ends in a NUL byte: the snapshot cannot hold it")
    return np.array(encoded, dtype=f"S{max([1, *map(len, encoded)])}")
