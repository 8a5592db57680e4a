"""Keyed pseudonyms for personal identifiers (HMAC-SHA256, never a bare hash).

A bare hash of a user id can be reversed by hashing every candidate id; a keyed HMAC cannot
without the key, and rotating the key unlinks old pseudonyms.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# From VECTOR_ROWS rows on, hashing in DuckDB beats Python's one call per distinct id plus
# Arrow's single-threaded dictionary encoding; below it, remembered pseudonyms win (a Kafka
# consumer sees the same users batch after batch). Measured in decision 89.
from flywheel_assets.platform.arrow_compute import VECTOR_ROWS, query_column

MIN_KEY_BYTES = 16
_BLOCK = 64  # SHA-256's block size, the HMAC key's padded length (RFC 2104)
_CACHE_LIMIT = 2_000_000  # pseudonyms remembered per process (~250 MB at most)


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
        # RFC 2104: a key longer than the block is hashed first; then padded and XORed.
        block = hashlib.sha256(key_bytes).digest() if len(key_bytes) > _BLOCK else key_bytes
        block = block.ljust(_BLOCK, b"\0")
        self._ipad = bytes(b ^ 0x36 for b in block)
        self._opad = bytes(b ^ 0x5C for b in block)
        self._cache: dict[str, str] = {}

    def _digest(self, text: str) -> str:
        # hmac.digest is OpenSSL's one-shot HMAC: same bytes as hmac.new(...).digest(), 5x faster.
        return f"u_{hmac.digest(self._key, text.encode(), 'sha256').hex()[:32]}"

    def one(self, value: object) -> str | None:
        if value is None or (isinstance(value, float) and value != value):
            return None
        return self._digest(str(value))

    def series(self, values: pd.Series) -> pd.Series:
        """Pseudonymise a column, computing each distinct value once (ids repeat a lot)."""
        if values.empty:
            return values.astype(object)
        codes, uniques = pd.factorize(values)  # missing -> code -1
        mapped = np.array([self._digest(str(u)) for u in uniques] + [None], dtype=object)
        return pd.Series(mapped[codes], index=values.index, dtype=object, name=values.name)

    def arrow(self, values: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Pseudonymise an Arrow string array (nulls stay null), each distinct value once."""
        if len(values) >= VECTOR_ROWS:
            return self.arrow_vectorised(values)
        return self.arrow_remembered(values)

    def arrow_remembered(self, values: pa.Array | pa.ChunkedArray) -> pa.Array:
        """``arrow`` in Python, remembering recent pseudonyms across calls."""
        encoded = pc.dictionary_encode(values)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()  # one dictionary for all chunks
        cache = self._cache
        out = []
        for u in encoded.dictionary.to_pylist():
            p = cache.get(u)
            if p is None:
                p = cache[u] = self._digest(u)
            out.append(p)
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        return pa.array(out, type=pa.string()).take(encoded.indices)

    def arrow_vectorised(self, values: pa.Array | pa.ChunkedArray) -> pa.Array:
        """``arrow`` in an in-memory DuckDB: the same HMAC, each distinct value hashed once,
        on every core (a day of millions of events spent seconds in the Python loop)."""
        if len(values) == 0:
            return pa.array([], type=pa.string())
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        out = query_column("platform/compute/hmac_pseudonyms", values, [self._ipad, self._opad])
        return out.cast(pa.string())
