"""Which reviewed SQL builds each feature table.

Most tables have their own file, ``sql/features/<table>.sql``. Tables that differ only in the
segment they group by share one template, filled with checked identifiers from the template's
own allow-list (``platform/warehouse.py``, ``load_sql``): user x category and user x brand
(``user_segment_features.sql``), region x category and region x brand
(``region_segment_features.sql``).
"""

from __future__ import annotations

from flywheel_assets.platform.warehouse import load_sql

TEMPLATES: dict[str, tuple[str, dict[str, str]]] = {
    "user_category_features": (
        "features/user_segment_features",
        {"segment": "category", "p": "uc"},
    ),
    "user_brand_features": ("features/user_segment_features", {"segment": "brand", "p": "ub"}),
    "region_category_features": (
        "features/region_segment_features",
        {"segment": "category", "p": "rc"},
    ),
    "region_brand_features": ("features/region_segment_features", {"segment": "brand", "p": "rb"}),
}


def build_sql(table: str) -> str:
    """The INSERT that computes ``table``'s rows for the bound window (``:dt``, or
    ``:start_dt`` .. ``:end_dt`` for the daily aggregates)."""
    name, identifiers = TEMPLATES.get(table, (f"features/{table}", {}))
    return load_sql(name, **identifiers)
