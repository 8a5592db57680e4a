"""Keyed pseudonyms for personal identifiers (HMAC-SHA256, never a bare hash).

A bare hash of a user id can be reversed by hashing every candidate id; a keyed HMAC cannot
without the key, and rotating the key unlinks old pseudonyms.
"""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd

MIN_KEY_BYTES = 16


class Pseudonymiser:
    """Maps personal identifiers to stable, keyed pseudonyms."""

    def __init__(self, key: str | bytes) -> None:
        key_bytes = key.encode() if isinstance(key, str) else key
        if len(key_bytes) < MIN_KEY_BYTES:
            raise ValueError(
                f"FLYWHEEL_PSEUDONYM_KEY must be at least {MIN_KEY_BYTES} bytes; "
                "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        self._key = key_bytes

    def one(self, value: object) -> str | None:
        if value is None or (isinstance(value, float) and value != value):
            return None
        digest = hmac.new(self._key, str(value).encode(), hashlib.sha256).hexdigest()
        return f"u_{digest[:32]}"

    def series(self, values: pd.Series) -> pd.Series:
        """Pseudonymise a column, computing each distinct value once (ids repeat a lot)."""
        if values.empty:
            return values.astype(object)
        uniques = pd.unique(values.dropna())
        mapping = {v: self.one(v) for v in uniques}
        return values.map(mapping).astype(object)
