"""Field maps from configuration: a producer's own field names and event-type values, per source.

A YAML (or JSON) file, named by ``FLYWHEEL_FIELD_MAP`` or the ``field_map_file`` setting, extends
the built-in aliases (docs/events.md, "Producers with other field names")::

    events:
      fields:        # producer field -> contract field
        visitorid: user_id
        timestamp: event_time
      event_types:   # producer value -> contract event type
        transaction: purchase
    catalog:
      fields: {product_code: item_id}
    users:
      fields: {customer_no: user_id}
    orders:
      fields: {basket_ref: order_id}

Mistakes (an unknown source, a target that is not a contract field, a target event type that
does not exist) fail loudly when the file is read, before any row is ingested.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from flywheel_assets.ingestion.contract import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    ITEM_COLUMNS,
    ORDER_COLUMNS,
    USER_COLUMNS,
    FieldMap,
)

SOURCE_COLUMNS: dict[str, list[str]] = {
    "events": EVENT_COLUMNS,
    "catalog": ITEM_COLUMNS,
    "users": USER_COLUMNS,
    "orders": ORDER_COLUMNS,
}


class FieldMapError(ValueError):
    """A field-map file that cannot be used, with what to change."""


def load_field_maps(path: str | Path | None) -> dict[str, FieldMap]:
    """One FieldMap per source: the defaults, extended by the file at ``path`` if given."""
    maps = {source: FieldMap.default(source) for source in SOURCE_COLUMNS}
    if not path:
        return maps
    p = Path(path).expanduser()
    if not p.is_file():
        raise FieldMapError(f"field map file {p} does not exist (set by FLYWHEEL_FIELD_MAP)")
    try:
        text = p.read_text(encoding="utf-8")
        spec = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise FieldMapError(f"field map file {p} cannot be read: {exc}") from exc
    return field_maps_from_spec(spec or {}, origin=str(p))


def field_maps_from_spec(spec: Any, *, origin: str = "field map") -> dict[str, FieldMap]:
    """Validate a parsed field-map document and build the per-source maps."""
    if not isinstance(spec, Mapping):
        raise FieldMapError(f"{origin}: expected a mapping of sources, got {type(spec).__name__}")
    maps = {source: FieldMap.default(source) for source in SOURCE_COLUMNS}
    for source, section in spec.items():
        if source not in SOURCE_COLUMNS:
            raise FieldMapError(
                f"{origin}: unknown source {source!r}; use one of {sorted(SOURCE_COLUMNS)}"
            )
        section = section or {}
        if not isinstance(section, Mapping) or set(section) - {"fields", "event_types"}:
            raise FieldMapError(
                f"{origin}: {source} takes only 'fields' and 'event_types' mappings"
            )
        fields = _str_mapping(section.get("fields") or {}, f"{origin}: {source}.fields")
        wanted = SOURCE_COLUMNS[source]
        for producer, target in fields.items():
            if target not in wanted:
                raise FieldMapError(
                    f"{origin}: {source}.fields maps {producer!r} to {target!r}, which is not a "
                    f"{source} field; use one of {wanted}"
                )
        event_types = _str_mapping(
            section.get("event_types") or {}, f"{origin}: {source}.event_types"
        )
        if event_types and source != "events":
            raise FieldMapError(f"{origin}: event_types belong under 'events', not {source!r}")
        for producer, target in event_types.items():
            if target not in EVENT_TYPES:
                raise FieldMapError(
                    f"{origin}: events.event_types maps {producer!r} to {target!r}; "
                    f"use one of {list(EVENT_TYPES)}"
                )
        maps[source] = FieldMap.from_mapping(fields, event_types, source=source)
    return maps


def _str_mapping(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise FieldMapError(f"{where}: expected a mapping of names, got {type(value).__name__}")
    out = {}
    for k, v in value.items():
        if not isinstance(v, str) or not str(k).strip():
            raise FieldMapError(f"{where}: {k!r}: {v!r} is not a name-to-name entry")
        out[str(k)] = v.strip().lower()
    return out
