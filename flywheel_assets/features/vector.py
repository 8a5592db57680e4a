"""The model's feature vector, declared once: every feature's name, where it comes from and its
kind. Training and serving are both built from this table:

- training, batch scoring and the demo's ranker run :func:`vector_sql`: the select list is
  generated from :data:`FEATURES`, the joins (and the point-in-time user x item history) are the
  reviewed ``sql/features/feature_vector.sql``;
- the ranking service's bundle (``serving/online_features.py``) exports, per source, the
  declared columns of the snapshot, and assembles a request's vectors from them in memory.

``flywheel_tests/features/test_vector.py`` fails when either path stops matching this table,
and ``flywheel_tests/serving/test_serving.py`` compares both paths value by value.

A feature whose source has no row for a candidate (a new user, an item without a brand) is
missing: NULL in SQL (LEFT JOIN), NaN in serving. Which of these features a model uses is the
model's choice (``training.model.NUMERIC_FEATURES`` and ``CATEGORICAL_FEATURES``).
"""

from __future__ import annotations

from dataclasses import dataclass

from flywheel_assets.platform.warehouse import _ident, load_sql
from flywheel_assets.realtime import features as realtime

NUMERIC = "numeric"
CATEGORICAL = "categorical"


@dataclass(frozen=True)
class Source:
    """Where a group of features comes from for a candidate (user, item) pair."""

    name: str  # the table's name in the serving bundle (``<name>.parquet``)
    alias: str  # the relation's alias in sql/features/feature_vector.sql
    keys: tuple[str, ...] = ()  # the bundle's key columns
    table: str | None = None  # the snapshot table whose partition the bundle holds
    query: str | None = None  # or the SQL file that computes it for the whole snapshot
    realtime: bool = False  # counted per request from the session's events (realtime/)


# The candidate row itself (position, event time): comes with `c.*`, or is computed from it.
REQUEST = Source("request", "c")
USERS = Source("users", "uf", ("user_id",), table="user_features")
ITEMS = Source("items", "i", ("item_id",), table="item_features")
USER_CATEGORY = Source(
    "user_category", "uc", ("user_id", "category"), table="user_category_features"
)
USER_BRAND = Source("user_brand", "ub", ("user_id", "brand"), table="user_brand_features")
# User x item history is not a snapshot table: SQL sums it for the candidate pairs on demand,
# serving exports it for every pair active in the snapshot's window (decision 39).
USER_ITEM = Source("user_item", "ui", ("user_id", "item_id"), query="serving/user_item_features")
REGION_CATEGORY = Source(
    "region_category", "rc", ("region", "category"), table="region_category_features"
)
REGION_BRAND = Source("region_brand", "rb", ("region", "brand"), table="region_brand_features")
# Computed from other sources' columns, in SQL and in serving alike.
DERIVED = Source("derived", "")
# Real-time: the request's session in the hour before it (realtime/features.py). SQL counts them
# over sql/features/session_events.sql; serving reads them from the online store.
REALTIME_SOURCES = {
    realtime.SESSION: Source("session", "rs", realtime=True),
    realtime.SESSION_CATEGORY: Source("session_category", "rsc", ("category",), realtime=True),
    realtime.SESSION_BRAND: Source("session_brand", "rsb", ("brand",), realtime=True),
}

BUNDLE_SOURCES = (USERS, ITEMS, USER_CATEGORY, USER_BRAND, USER_ITEM, REGION_CATEGORY, REGION_BRAND)


@dataclass(frozen=True)
class Feature:
    """One column of the vector: ``source``'s column of the same name, or, for a computed
    feature, the SQL expression ``sql`` (serving computes the same in online_features.py)."""

    name: str
    source: Source
    kind: str = NUMERIC
    sql: str | None = None

    @property
    def computed(self) -> bool:
        return self.sql is not None or self.source is REQUEST

    @property
    def realtime(self) -> bool:
        return self.source.realtime


def _columns(source: Source, *names: str) -> tuple[Feature, ...]:
    return tuple(Feature(n, source) for n in names)


# In the order of the vector's columns (after the candidates' own).
FEATURES: tuple[Feature, ...] = (
    Feature("position", REQUEST),  # logged in training; serving scores at the top (0)
    Feature("region", USERS, CATEGORICAL),
    Feature("device", USERS, CATEGORICAL),
    Feature("category", ITEMS, CATEGORICAL),
    Feature("brand", ITEMS, CATEGORICAL),
    Feature("ctx_hour", REQUEST, sql="EXTRACT(HOUR FROM c.event_time)"),
    Feature("ctx_dow", REQUEST, sql="EXTRACT(DOW FROM c.event_time)"),  # Sunday = 0
    *_columns(
        USERS,
        "u_days_since_signup",
        "u_impressions_28d",
        "u_clicks_28d",
        "u_carts_28d",
        "u_purchases_28d",
        "u_clicks_7d",
        "u_purchases_7d",
        "u_ctr_28d",
        "u_conversion_28d",
        "u_avg_click_price_28d",
        "u_days_since_last_event",
        "u_impressions_1d",
        "u_clicks_1d",
        "u_purchases_1d",
        "u_impressions_7d",
        "u_carts_7d",
        "u_active_days_28d",
        "u_avg_purchase_price_28d",
    ),
    *_columns(
        ITEMS,
        "i_price",
        "i_price_change_7d",
        "i_days_in_catalog",
        "i_impressions_28d",
        "i_clicks_28d",
        "i_purchases_28d",
        "i_ctr_28d",
        "i_conversion_28d",
        "i_impressions_7d",
        "i_clicks_7d",
        "i_purchases_7d",
        "i_carts_28d",
    ),
    Feature(
        "ui_price_ratio",
        DERIVED,
        sql="CASE WHEN uf.u_avg_click_price_28d > 0 THEN i.i_price / uf.u_avg_click_price_28d END",
    ),
    *_columns(
        USER_CATEGORY,
        "uc_impressions_28d",
        "uc_clicks_28d",
        "uc_carts_28d",
        "uc_purchases_28d",
        "uc_ctr_28d",
        "uc_click_share_28d",
    ),
    *_columns(
        USER_ITEM,
        "ui_impressions_28d",
        "ui_clicks_28d",
        "ui_purchases_28d",
        "ui_days_since_last_click",
        "ui_views_28d",
        "ui_carts_28d",
        "ui_days_since_last_event",
    ),
    *_columns(
        USER_BRAND,
        "ub_impressions_28d",
        "ub_clicks_28d",
        "ub_carts_28d",
        "ub_purchases_28d",
        "ub_ctr_28d",
        "ub_click_share_28d",
    ),
    *_columns(REGION_CATEGORY, "rc_impressions_28d", "rc_ctr_28d", "rc_purchase_rate_28d"),
    *_columns(REGION_BRAND, "rb_impressions_28d", "rb_ctr_28d", "rb_purchase_rate_28d"),
    # A session with nothing before the request counts 0; a request without a session is missing.
    *(
        Feature(
            f.name,
            REALTIME_SOURCES[f.scope],
            sql=(
                "CASE WHEN c.session_id IS NOT NULL THEN "
                f"COALESCE({REALTIME_SOURCES[f.scope].alias}.{f.name}, 0) END"
            ),
        )
        for f in realtime.REALTIME_FEATURES
    ),
)
BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
NUMERIC_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == NUMERIC)
CATEGORICAL_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == CATEGORICAL)


def of_source(source: Source) -> tuple[Feature, ...]:
    """The features read from ``source``'s own columns."""
    return tuple(f for f in FEATURES if f.source is source and not f.computed)


def bundle_columns(source: Source) -> list[str]:
    """The columns the serving bundle holds for ``source``: its keys, then its features."""
    return [*source.keys, *(f.name for f in of_source(source) if f.name not in source.keys)]


def select_list(realtime: bool = True) -> str:
    """The vector's columns as SQL, from :data:`FEATURES`: a source's column by its alias, a
    computed feature by its expression (constants of this module, never data). Without
    ``realtime``, the real-time features are NULL (their joins are left out)."""
    parts = []
    for f in FEATURES:
        if f.source is REQUEST and f.sql is None:
            continue  # a column of the candidates themselves: already in c.*
        expression = f.sql or f"{_ident(f.source.alias)}.{_ident(f.name)}"
        if f.realtime and not realtime:
            expression = "CAST(NULL AS DOUBLE PRECISION)"
        parts.append(f"{expression} AS {_ident(f.name)}")
    return ",\n       ".join(parts)


_REQUEST_KEY = ("request_id", "user_id", "session_id", "event_time")


def realtime_joins() -> str:
    """The real-time features' joins: per scope, the counts over ``session_events`` (generated
    from realtime.features.REALTIME_FEATURES, constants only), joined to each candidate by its
    request and, for a category or brand scope, the candidate item's attribute (alias ``i``)."""
    joins = []
    for scope, source in REALTIME_SOURCES.items():
        group = [*_REQUEST_KEY, *source.keys]
        # COUNT, not SUM of ones: BIGINT on both backends (DuckDB's SUM gives HUGEINT, which
        # reaches pandas as Python Decimal objects, seconds slower for a day's training frame).
        counts = ",\n           ".join(
            f"COUNT(CASE WHEN event_type = '{f.event_type}' THEN 1 END) AS {_ident(f.name)}"
            for f in realtime.REALTIME_FEATURES
            if f.scope == scope
        )
        present = (
            f"    WHERE {' AND '.join(f'{k} IS NOT NULL' for k in source.keys)}\n"
            if source.keys
            else ""
        )
        on = " AND ".join(
            [
                *(f"{source.alias}.{k} = c.{k}" for k in _REQUEST_KEY),
                *(f"{source.alias}.{k} = i.{k}" for k in source.keys),
            ]
        )
        # constants of this module and realtime.features, never data
        body = f"SELECT {', '.join(group)},\n           {counts}\n    FROM session_events\n"  # noqa: S608
        joins.append(
            f"LEFT JOIN (\n    {body}{present}"
            f"    GROUP BY {', '.join(group)}\n) {source.alias} ON {on}"
        )
    return "\n".join(joins)


def vector_sql(candidates_sql: str | None = None, realtime: bool = True) -> str:
    """The feature-vector query over a relation named ``candidates`` (see the SQL file): a
    table the caller registered, or ``candidates_sql`` as a common table expression. Without
    ``realtime`` the real-time features are NULL and their joins are not run: for callers
    whose models do not use them (they add about half to the query's time)."""
    ctes = [f"candidates AS (\n{candidates_sql}\n)"] if candidates_sql is not None else []
    if realtime:
        ctes.append(f"session_events AS (\n{load_sql('features/session_events')}\n)")
    return (
        (f"WITH {', '.join(ctes)}\n" if ctes else "")
        + f"SELECT c.*,\n       {select_list(realtime)}\n"
        + f"{load_sql('features/feature_vector').rstrip()}\n"
        + (realtime_joins() if realtime else "")
    )
