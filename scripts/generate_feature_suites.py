"""Regenerate the GX suites of the feature tables from their CREATE TABLE statements.

The suites are reviewed JSON in flywheel_assets/quality/gx_suites/; this script writes the
part that follows mechanically from the schema (exact column set, non-null unique keys, value
ranges by column-name convention) so a new feature column cannot be forgotten. Run it after
changing a feature table in sql/schema/ and review the diff (a test fails until you do:
flywheel_tests/features/test_vector.py):

    python scripts/generate_feature_suites.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "sql" / "schema"
SUITES = ROOT / "flywheel_assets" / "quality" / "gx_suites"

TABLES: dict[str, tuple[list[str], str]] = {
    "user_activity_daily": (
        ["event_day", "user_id"],
        "One arrival day of per-user activity, by event day.",
    ),
    "item_activity_daily": (
        ["event_day", "item_id"],
        "One arrival day of per-item activity, by event day.",
    ),
    "user_item_activity_daily": (
        ["event_day", "user_id", "item_id"],
        "One arrival day of per user x item activity, by event day.",
    ),
    "user_features": (["user_id"], "One day-end snapshot of per-user features."),
    "item_features": (["item_id"], "One day-end snapshot of per-item features."),
    "user_category_features": (
        ["user_id", "category"],
        "One day-end snapshot of user x category affinity.",
    ),
    "user_brand_features": (
        ["user_id", "brand"],
        "One day-end snapshot of user x brand affinity.",
    ),
    "region_category_features": (
        ["region", "category"],
        "One day-end snapshot of region x category response.",
    ),
    "region_brand_features": (
        ["region", "brand"],
        "One day-end snapshot of region x brand response.",
    ),
}

COUNT_WORDS = ("impressions", "views", "clicks", "carts", "purchases", "active_days", "_n")
WHY = {
    "columns": "Training and serving read these columns by name; a renamed or extra column "
    "silently changes the model's inputs.",
    "count": "Counts cannot be negative.",
    "rate": "A smoothed rate is a probability.",
    "conversion": "Conversion (purchases per click, smoothed) is never negative; it may exceed "
    "1 when a click leads to several purchases.",
    "price": "Prices are never negative.",
    "age": "An age or recency before the snapshot is negative only if the future leaked in.",
    "unique": "One row per key per snapshot: a duplicate doubles the rows of every example "
    "joined to it.",
}


def table_columns(table: str) -> list[str]:
    text = "\n".join(p.read_text() for p in sorted(SCHEMA.glob("*.sql")))
    m = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", text, re.S)
    if m is None:
        raise SystemExit(f"no CREATE TABLE for {table} in {SCHEMA}")
    return [ln.split()[0] for ln in m.group(1).strip().splitlines() if ln.strip()]


def _between(column: str, why: str, lo: float, hi: float | None = None) -> dict[str, object]:
    kwargs: dict[str, object] = {"column": column, "min_value": lo}
    if hi is not None:
        kwargs["max_value"] = hi
    return {
        "type": "expect_column_values_to_be_between",
        "kwargs": kwargs,
        "severity": "error",
        "why": WHY[why],
    }


def rule_for(column: str) -> dict[str, object] | None:
    if "price_change" in column:
        return None
    if column.endswith(("_ctr_28d", "_rate_28d", "_share_28d")):
        return _between(column, "rate", 0, 1)
    if "conversion" in column:
        return _between(column, "conversion", 0)
    if "price" in column:
        return _between(column, "price", 0)
    if "days_since" in column or "days_in" in column:
        return _between(column, "age", 0)
    if any(w in column for w in COUNT_WORDS):
        return _between(column, "count", 0)
    return None


def suite(table: str, keys: list[str], description: str) -> dict[str, object]:
    columns = table_columns(table)
    expectations: list[dict[str, object]] = [
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {"column_set": columns, "exact_match": True},
            "severity": "error",
            "why": WHY["columns"],
        }
    ]
    for key in keys:
        expectations.append(
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": key},
                "severity": "error",
                "why": f"{key} is part of the key features are joined on; null keys join to "
                "nothing.",
            }
        )
    if len(keys) == 1:
        unique = {"type": "expect_column_values_to_be_unique", "kwargs": {"column": keys[0]}}
    else:
        unique = {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": keys}}
    expectations.append({**unique, "severity": "error", "why": WHY["unique"]})
    expectations += [r for c in columns if c not in keys and (r := rule_for(c)) is not None]
    return {
        "suite": table,
        "description": description,
        "row_id": keys,
        "expectations": expectations,
    }


def main() -> None:
    for table, (keys, description) in TABLES.items():
        path = SUITES / f"{table}.json"
        path.write_text(json.dumps(suite(table, keys, description), indent=2) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
