"""The in-memory DuckDB column work equals the plain Python definitions it replaces."""

from __future__ import annotations

import hmac

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from flywheel_assets.platform.arrow_compute import repeated_rows, repeated_rows_vectorised
from flywheel_assets.platform.pseudonym import Pseudonymiser

ODD_IDS = ["user-1", "", " padded ", "é-ü-ß", "日本語", "emoji-🙂", "a\tb", "x" * 5000, "user-1"]


@pytest.mark.parametrize(
    "key",
    [
        "k" * 16,  # the shortest allowed
        "0123456789abcdef" * 4,  # exactly one SHA-256 block
        "a-key-longer-than-one-block-is-hashed-first-" * 3,  # RFC 2104's long-key rule
        "ключ-не-ascii-🙂-0123456789",  # non-ASCII key text
    ],
)
def test_arrow_pseudonyms_are_the_hmac_of_each_value(key: str) -> None:
    ps = Pseudonymiser(key)
    values = pa.array([*ODD_IDS, None, "user-2"], type=pa.string())
    want = [
        None if v is None else "u_" + hmac.digest(key.encode(), v.encode(), "sha256").hex()[:32]
        for v in values.to_pylist()
    ]
    # both ways of doing it (arrow() picks one by size), and the remembered values again
    assert ps.arrow_vectorised(values).to_pylist() == want
    assert ps.arrow_remembered(values).to_pylist() == want
    assert ps.arrow_remembered(values).to_pylist() == want
    # the one-value and pandas paths agree with the Arrow one
    assert [ps.one(v) for v in values.to_pylist()] == want
    assert ps.series(pd.Series(values.to_pylist(), dtype=object)).tolist() == want


def test_arrow_pseudonyms_keep_row_order_over_many_rows() -> None:
    rng = np.random.default_rng(7)
    ids = [f"user-{i}" for i in rng.integers(0, 3000, 50_000)]
    ps = Pseudonymiser("order-key-0123456789")
    want = [ps.one(v) for v in ids]
    chunked = pa.chunked_array([ids[:20_000], ids[20_000:]])
    assert ps.arrow_vectorised(chunked).to_pylist() == want
    assert ps.arrow_remembered(chunked).to_pylist() == want
    for empty in (pa.array([], type=pa.string()), pa.chunked_array([], type=pa.string())):
        assert ps.arrow_vectorised(empty).to_pylist() == []
        assert ps.arrow_remembered(empty).to_pylist() == []


def test_repeated_rows_are_pandas_duplicated_keep_first() -> None:
    rng = np.random.default_rng(3)
    values = [None if r < 0.02 else f"ev-{r}" for r in rng.integers(0, 40_000, 60_000) / 1e5]
    arr = pa.array(values, type=pa.string())
    want = pd.Series(values, dtype=object).duplicated(keep="first").to_numpy()
    assert want.any() and not want.all()
    for way in (repeated_rows, repeated_rows_vectorised):
        assert np.array_equal(way(arr), want)
        assert not way(pa.array(["a", "b", "c"])).any()
        assert way(pa.array(["a"])).tolist() == [False]
        assert way(pa.array([None, None], type=pa.string())).tolist() == [False, True]
