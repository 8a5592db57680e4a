"""Training beyond one machine: the same XGBoost model, fitted with ``xgboost.dask`` on a cluster.

When ``FLYWHEEL_DASK_SCHEDULER`` names a Dask scheduler (``tcp://host:8786``), the challenger is
trained on the cluster from the training window's *parts* (one per day), so no process ever
holds the whole window: each worker reads its days (``training_parts``: the same
training-candidates + feature-vector SQL as ``feature_store.training_frame``, one day at a time;
or ``parquet_parts``: Parquet exports), and only small summaries (row counts, the categories, a
sample of event times) ever reach the driver. Unset, training stays in one process
(``training.train_model``).

What is the same as the single-process path (``training.train_model``):

* the feature matrix: every chunk goes through one ``FeatureSchema.matrix``, fitted before any
  chunk is converted (by default the union of the training rows' categories, computed on the
  cluster: exactly what ``FeatureSchema.fit`` gives on the concatenated training rows), so the
  categorical codes agree across workers and the model scores with the registry's schema;
* the validation split, when ``valid`` is not given: the rows later than the ``1 -
  valid_fraction`` quantile of ``event_time``, as ``training.time_split``. The quantile is the
  exact order statistic over all parts, found in two small passes (a sorted sample of each
  part's times brackets it, then only the times inside the bracket are fetched), so the split
  is row for row the single-process one. (``time_split`` interpolates the quantile in float64:
  exact for the warehouse's microsecond timestamps; with nanosecond ones the two could differ
  by the rows of one instant.) The validation rows usually sit in the last day or two, so
  they are sliced across the workers: XGBoost needs rows of every DMatrix on every worker
  that trains with categorical features;
* the parameters (``DEFAULT_PARAMS`` without ``nthread``: each worker uses its own threads),
  the bias corrections that act on single rows (``position``, ``ipw``, ``position+ipw``,
  ``none``; IPW weights normalised over all rows of a side, as ``training.ipw_weights``),
  warm starts, early stopping on the later rows, the trees cut at the best iteration, and the
  result type (``TrainedModel``), so registry, scoring and evaluation code is unchanged.
  ``unbiased_lambdarank`` (whole requests as query groups) is refused: it trains in one
  process.

Quality, not bytes: XGBoost sketches the histogram bins per worker and samples rows per worker,
so the distributed model is as good as the single-process one (the test compares AUC and log
loss on fresh data) but not byte-identical to it: re-training it in one process (``flywheel
model reproduce``) gives another SHA-256. Repeated runs on the same parts and cluster size
gave the same bytes in our runs.

Where the data comes from, in production: the workers connect to the warehouse themselves.
Use PostgreSQL, or Parquet exports on storage every worker can read. DuckDB allows one writing
process per file, and a reader in another process fails while any process holds the file for
writing, so a DuckDB warehouse (opened read-only by the workers, which must see the same file)
only works while nothing else has it open to write: fine for a test or a laptop (the
``flywheel_warehouse`` pool runs one warehouse step at a time, and the training step holds no
connection while the cluster reads), not for a deployment with concurrent writers.
The warehouse URL travels to the workers inside the task graph: give ``None`` to let each
worker read ``FLYWHEEL_WAREHOUSE_URL`` from its own environment instead, so a password in the
URL never leaves the machines that already have it. Workers need this package installed (the
``distributed`` extra) at the same version as the driver.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
import xgboost as xgb

from flywheel_assets.training.model import (
    CATEGORICAL_FEATURES,
    DEFAULT_PARAMS,
    LABELS,
    FeatureSchema,
    TrainedModel,
    numeric_features,
)

# Every column a model may train on: a model's schema picks among them.
_ALL_FEATURES = (*numeric_features(realtime=True), *CATEGORICAL_FEATURES)

if TYPE_CHECKING:
    import dask.dataframe as dd
    from dask.delayed import Delayed
    from distributed import Client, Future

SCHEDULER_ENV = "FLYWHEEL_DASK_SCHEDULER"
TIME_COL = "event_time"
# Columns of the slim per-part frames kept on the workers.
_LABEL = "__label"
_TIME_NS = "__event_time_ns"
_WEIGHT = "__weight"
# Sorted sample points per part when bracketing the validation cutoff: the bracket then holds
# about 2 / _SAMPLE_POINTS of the rows.
_SAMPLE_POINTS = 1024
# How many times a matrix whose rows the scheduler moved off their workers is built again.
_PLACEMENT_ATTEMPTS = 3

# Parameters that belong to one process, not to a cluster whose workers own their threads.
_PROCESS_PARAMS = ("nthread", "n_jobs")
# The bias corrections that weight or feature single rows; unbiased LambdaMART needs whole
# requests, sorted, in one group each, and stays single-process.
_POINTWISE = ("position", "ipw", "position+ipw", "none")


def _require_dask() -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the dev extra installs both
        raise ImportError(
            "distributed training needs Dask: pip install 'flywheel[distributed]' "
            f"(on the driver and on every worker): {exc}"
        ) from exc


# ----- configuration ---------------------------------------------------------------------------


def scheduler_address() -> str | None:
    """The Dask scheduler from ``FLYWHEEL_DASK_SCHEDULER`` (e.g. ``tcp://dask:8786``), or None
    for single-process training. Read when a run starts, never at import time."""
    from flywheel_assets.training.settings import TrainingSettings

    return TrainingSettings.resolve().dask_scheduler


@contextmanager
def client_for(address: str, *, timeout: str = "30s") -> Iterator[Client]:
    """A ``distributed.Client`` connected to ``address``, closed on exit (the cluster stays)."""
    _require_dask()
    from distributed import Client

    client = Client(address, timeout=timeout, set_as_default=False)
    try:
        yield client
    finally:
        client.close()


# ----- parts: where the chunks come from ------------------------------------------------------


def _read_only_url(url: str) -> str:
    """The warehouse URL for a reader: DuckDB files opened read-only, anything else as given."""
    u = sa.engine.make_url(url)
    if (
        u.get_backend_name() == "duckdb"
        and u.database not in (None, "", ":memory:")
        and "access_mode" not in u.query
    ):
        u = u.update_query_dict({"access_mode": "read_only"})
    return u.render_as_string(hide_password=False)


def read_training_day(
    warehouse_url: str | None, day: dt.date, *, before: pd.Timestamp | None = None
) -> pd.DataFrame:
    """One day of labelled examples with their feature vectors (``training_frame(wh, day,
    day)``: training_candidates.sql with start_dt = end_dt = day, wrapped in
    feature_vector.sql); with ``before``, only the rows with ``event_time < before``. Runs on a
    worker; ``warehouse_url`` None means the worker's own ``FLYWHEEL_WAREHOUSE_URL``."""
    from flywheel_assets.features.store import training_frame
    from flywheel_assets.platform.governance import Roles
    from flywheel_assets.platform.settings import FlywheelPaths, WarehouseSettings
    from flywheel_assets.platform.warehouse import Warehouse

    url = warehouse_url or FlywheelPaths.from_env().warehouse_url
    wh = Warehouse(_read_only_url(url))
    prefix = WarehouseSettings.resolve().roles
    if prefix:  # a worker reads as the training stage, as the step that sent it would
        training_role = Roles(prefix).name("training")
        wh.session_role = lambda: training_role
    try:
        df = training_frame(wh, day, day)
    finally:
        wh.dispose()
    if before is not None and not df.empty:
        df = df[pd.to_datetime(df[TIME_COL]) < pd.Timestamp(before)].reset_index(drop=True)
    return df


def training_parts(
    warehouse_url: str | None,
    start: dt.date,
    end: dt.date,
    *,
    before: pd.Timestamp | None = None,
) -> list[Delayed]:
    """One lazy task per day of [start, end], each reading only its day on a worker.

    ``before`` (exclusive, on event_time) keeps a holdout out of training: the challenger holds
    out the last hours of its last day. Nothing is read until the parts are computed."""
    _require_dask()
    import dask

    if end < start:
        raise ValueError(f"empty training window: {start} > {end}")
    run = uuid.uuid4().hex[:8]
    return [
        dask.delayed(read_training_day, pure=False)(
            warehouse_url,
            day,
            before=before,
            dask_key_name=f"flywheel-training-day-{day:%Y%m%d}-{run}",
        )
        for day in (start + dt.timedelta(days=i) for i in range((end - start).days + 1))
    ]


def parquet_parts(
    paths: str | Sequence[str], *, columns: Sequence[str] | None = None, **kwargs: Any
) -> dd.DataFrame:
    """Parquet exports (a glob, a directory or a list of files, on any fsspec URL every worker
    can read) as a lazy ``dask.dataframe``: each file (or row group) is a partition, read on
    the workers. ``train_model_distributed`` reads only the columns the model needs."""
    _require_dask()
    import dask.dataframe as dd

    return dd.read_parquet(
        paths if isinstance(paths, str) else list(paths),
        columns=list(columns) if columns is not None else None,
        **kwargs,
    )


# ----- worker-side steps -----------------------------------------------------------------------


def _time_ns(values: pd.Series) -> np.ndarray:
    t = pd.to_datetime(values)
    if isinstance(t.dtype, pd.DatetimeTZDtype):
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return t.astype("datetime64[ns]").to_numpy().astype("int64")


def _clipped_ipw(propensity: pd.Series, max_weight: float) -> np.ndarray:
    """``training.ipw_weights`` before its normalisation to mean 1, which needs every row of
    a side and so happens once the parts' sums are known (a test keeps the two equal)."""
    p = pd.to_numeric(propensity, errors="coerce").to_numpy(dtype="float64")
    ok = np.isfinite(p) & (p > 0) & (p <= 1)
    w = np.ones(len(p))
    w[ok] = np.minimum(1.0 / p[ok], max_weight)
    return w


def _slim(df: pd.DataFrame, label_col: str, max_ipw_weight: float | None = None) -> pd.DataFrame:
    """What training needs of a raw part: the numeric features as float32 (as
    ``FeatureSchema.matrix`` converts them), the categorical ones as read, the label, the
    event time and, for IPW, the clipped inverse propensity; the rest is dropped at once."""
    needed = [label_col, TIME_COL, *(["propensity"] if max_ipw_weight is not None else [])]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"a training part lacks the columns {missing}")
    out = pd.DataFrame(index=pd.RangeIndex(len(df)))
    for c in numeric_features(realtime=True):  # every numeric column a model may ask for
        if c in df.columns:
            out[c] = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype="float32")
    for c in CATEGORICAL_FEATURES:
        if c in df.columns:
            out[c] = df[c].to_numpy()
    out[_LABEL] = pd.to_numeric(df[label_col], errors="raise").to_numpy(dtype="float32")
    out[_TIME_NS] = _time_ns(df[TIME_COL])
    if max_ipw_weight is not None:
        out[_WEIGHT] = _clipped_ipw(df["propensity"], max_ipw_weight)
    return out


def _time_sample(df: pd.DataFrame, points: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(rows, ranks, sorted times at those ranks): evenly spaced order statistics of a part,
    always including its first and last."""
    t = np.sort(df[_TIME_NS].to_numpy())
    n = len(t)
    if n == 0:
        return 0, np.empty(0, "int64"), np.empty(0, "int64")
    ranks = np.unique(np.linspace(0, n - 1, min(n, points)).round().astype("int64"))
    return n, ranks, t[ranks]


def _time_window(df: pd.DataFrame, lo: int | None, hi: int) -> tuple[int, np.ndarray]:
    """(rows with time <= lo, sorted times in (lo, hi])."""
    t = df[_TIME_NS].to_numpy()
    above = t > lo if lo is not None else np.ones(len(t), bool)
    below = int(len(t) - above.sum())
    return below, np.sort(t[above & (t <= hi)])


def _split_mask(df: pd.DataFrame, side: str, cutoff: int | None) -> np.ndarray:
    """The rows of one side of the time split: "upto" (time <= cutoff; every row when there is
    no cutoff) or "after" (time > cutoff; none when there is no cutoff)."""
    t = df[_TIME_NS].to_numpy()
    if side not in ("upto", "after"):
        raise ValueError(f"unknown side {side!r}")
    if cutoff is None:
        return np.full(len(t), side == "upto")
    return t <= cutoff if side == "upto" else t > cutoff


def _part_stats(df: pd.DataFrame, side: str, cutoff: int | None) -> dict[str, Any]:
    """Rows, positives, the IPW weight sum and the distinct categories of one part's rows on
    one side."""
    rows = df[_split_mask(df, side, cutoff)]
    return {
        "rows": len(rows),
        "positives": float(rows[_LABEL].sum()),
        "weight": float(rows[_WEIGHT].sum()) if _WEIGHT in rows.columns else float(len(rows)),
        "categories": {
            c: {str(v) for v in rows[c].dropna().unique()} if c in rows.columns else set()
            for c in CATEGORICAL_FEATURES
        },
    }


def _prepare(
    df: pd.DataFrame,
    schema: FeatureSchema,
    side: str,
    cutoff: int | None,
    piece: int = 0,
    pieces: int = 1,
    weight_scale: float | None = None,
) -> pd.DataFrame:
    """One part's rows of one side (or its ``piece``-th of ``pieces`` row slices) as the
    model's input: ``schema.matrix``, the label and, with ``weight_scale``, the IPW weight
    normalised over the whole side."""
    rows = df[_split_mask(df, side, cutoff)]
    if pieces > 1:
        rows = rows.iloc[len(rows) * piece // pieces : len(rows) * (piece + 1) // pieces]
    out = schema.matrix(rows)
    out[_LABEL] = rows[_LABEL].to_numpy(dtype="float32")
    if weight_scale is not None:
        out[_WEIGHT] = rows[_WEIGHT].to_numpy(dtype="float64") * weight_scale
    return out.reset_index(drop=True)


# ----- the driver ------------------------------------------------------------------------------


def _delayed_parts(parts: Any, label_col: str) -> list[Any]:
    """Parts as Delayed/Future objects; a DataFrame in this process is refused, since the point
    is that no process holds the whole window."""
    import dask
    from dask.delayed import Delayed
    from distributed import Future

    if isinstance(parts, pd.DataFrame):
        raise TypeError(
            "train_model_distributed takes parts computed on the cluster (dask.delayed, "
            "futures, callables or a dask DataFrame), not a pandas DataFrame: use train_model"
        )
    if hasattr(parts, "to_delayed") and hasattr(parts, "columns"):  # a dask DataFrame
        keep = [
            c for c in (*_ALL_FEATURES, label_col, TIME_COL, "propensity") if c in parts.columns
        ]
        return list(parts[keep].to_delayed())
    out: list[Any] = []
    for p in parts:
        if isinstance(p, Delayed | Future):
            out.append(p)
        elif isinstance(p, pd.DataFrame):
            raise TypeError(
                "a training part must be computed on the cluster (a dask.delayed, a future or a "
                "callable), not a DataFrame already in this process"
            )
        elif callable(p):
            out.append(dask.delayed(p, pure=False)())
        else:
            raise TypeError(f"not a training part: {type(p).__name__}")
    return out


def _slim_futures(
    client: Client, parts: Any, label_col: str, max_ipw_weight: float | None
) -> list[Future]:
    import dask

    return client.compute(
        [
            dask.delayed(_slim)(p, label_col, max_ipw_weight)
            for p in _delayed_parts(parts, label_col)
        ]
    )


def _time_quantile(client: Client, slim: list[Future], q: float) -> int | None:
    """The order statistic of rank floor((rows - 1) * q) of the event times over all parts
    (None without rows), exactly, moving only a sample and a narrow bracket. The rows later
    than it are those ``time_split`` puts after its ``quantile(q)``, whatever the
    interpolation."""
    samples = client.gather(client.map(_time_sample, slim, points=_SAMPLE_POINTS))
    samples = [s for s in samples if s[0] > 0]
    n = sum(s[0] for s in samples)
    if n == 0:
        return None
    k = math.floor((n - 1) * q)
    candidates = np.unique(np.concatenate([values for _, _, values in samples]))
    # Bounds on how many times are <= each candidate, from each part's sorted sample.
    lower = np.zeros(len(candidates), "int64")
    upper = np.zeros(len(candidates), "int64")
    for rows, ranks, values in samples:
        j = np.searchsorted(values, candidates, side="right")  # sample points <= candidate
        lower += np.where(j > 0, ranks[np.maximum(j - 1, 0)] + 1, 0)
        upper += np.where(j < len(values), ranks[np.minimum(j, len(values) - 1)], rows)
    # At most k times are <= lo, at least k + 1 are <= hi: the answer is in (lo, hi].
    below = candidates[upper < k + 1]
    lo = int(below[-1]) if len(below) else None
    hi = int(candidates[np.argmax(lower >= k + 1)])
    windows = client.gather(client.map(_time_window, slim, lo=lo, hi=hi))
    before = sum(b for b, _ in windows)
    inside = np.sort(np.concatenate([w for _, w in windows]))
    return int(inside[k - before])


def _gather_stats(client: Client, slim: list[Future], side: str, cutoff: int | None) -> list:
    return client.gather(client.map(_part_stats, slim, side=side, cutoff=cutoff))


def _slices(rows: list[int], need: int) -> list[int]:
    """Into how many row slices to cut each part so that there are at least ``need`` non-empty
    slices (whole parts when there are enough), cutting the largest slices first."""
    counts = [1 if r > 0 else 0 for r in rows]
    while sum(counts) < need:
        i = max((i for i, r in enumerate(rows) if r > counts[i]), key=lambda i: rows[i] / counts[i])
        counts[i] += 1
    return counts


def _placed_matrix(
    client: Client,
    slim: list[Future],
    stats: list[dict[str, Any]],
    schema: FeatureSchema,
    side: str,
    cutoff: int | None,
    workers: list[str],
    weighted: bool,
) -> tuple[dd.DataFrame, list[str]]:
    """One side's model input as a dask DataFrame whose partitions are pinned so that every
    training worker holds some rows: XGBoost refuses a worker with an empty categorical
    DMatrix (it could not know the categories), and the validation rows often sit in one part.
    Slices are balanced by rows, deterministically (not by where a part was read). IPW
    weights are normalised to mean 1 over the side, as ``training.ipw_weights`` does.
    Returns the frame and the worker each of its partitions is pinned to, in order."""
    import dask.dataframe as dd

    rows = [s["rows"] for s in stats]
    scale = sum(rows) / sum(s["weight"] for s in stats) if weighted else None
    slices = [
        (i, piece, n, rows[i] / n)
        for i, n in enumerate(_slices(rows, len(workers)))
        for piece in range(n)
    ]
    load = dict.fromkeys(workers, 0.0)
    futures, placed = [], []
    # Placement depends only on the slices and the sorted workers, never on where the reads
    # happened to run: which rows each worker holds shapes its histogram sketch, so a
    # placement that followed the scheduler would make re-training give other bytes.
    for i, piece, n, size in sorted(slices, key=lambda x: (-x[3], x[0], x[1])):
        worker = min(sorted(workers), key=lambda w: load[w])
        load[worker] += size
        placed.append(worker)
        futures.append(
            client.submit(
                _prepare,
                slim[i],
                schema,
                side,
                cutoff,
                piece,
                n,
                scale,
                workers=[worker],
                allow_other_workers=False,
                pure=False,
            )
        )
    columns = (*_ALL_FEATURES, _LABEL, _TIME_NS, *([_WEIGHT] if weighted else []))
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    meta = _prepare(empty, schema, "upto", None, weight_scale=scale)
    return dd.from_delayed(futures, meta=meta, verify_meta=False), placed


def _placement(dmatrix: Any) -> list[str]:
    """The worker holding each partition of an ``xgboost.dask.DaskDMatrix``, in order."""
    where = {f.key: w for w, parts in dmatrix.worker_map.items() for f in parts}
    return [where[key] for key, _ in sorted(dmatrix.partition_order.items(), key=lambda x: x[1])]


def _matrices_as_placed(
    client: Client,
    schema: FeatureSchema,
    weighted: bool,
    train: tuple[dd.DataFrame, list[str]],
    valid: tuple[dd.DataFrame | None, list[str]],
) -> tuple[Any, Any]:
    """The training and (if any) validation ``DaskQuantileDMatrix`` of frames placed by
    ``_placed_matrix``, each partition on its planned worker.

    xgboost.dask builds a matrix with unpinned tasks (column selections, its own packing) that
    the scheduler's work stealing may run on another worker than the pinned rows. Off-plan rows
    give other bytes and may leave a training worker without validation rows, so an off-plan
    pair is dropped and built again (rare: seen once in CI), and fails loudly after
    ``_PLACEMENT_ATTEMPTS``."""
    import xgboost.dask as dxgb

    columns = [*schema.numeric, *schema.categorical]

    def matrix(frame: dd.DataFrame, ref: Any = None) -> Any:
        return dxgb.DaskQuantileDMatrix(
            client,
            frame[columns],
            frame[_LABEL],
            weight=frame[_WEIGHT] if weighted else None,
            ref=ref,
            enable_categorical=True,
        )

    (train_df, train_plan), (valid_df, valid_plan) = train, valid
    for _ in range(_PLACEMENT_ATTEMPTS):
        dtrain = matrix(train_df)
        dvalid = None if valid_df is None else matrix(valid_df, ref=dtrain)
        got = [_placement(d) for d in (dtrain, dvalid) if d is not None]
        if got == [train_plan, valid_plan][: len(got)]:
            return dtrain, dvalid
        del dtrain, dvalid  # the off-plan matrices go before they are built again
    raise RuntimeError(
        f"the training rows were not where they were placed after {_PLACEMENT_ATTEMPTS} "
        f"attempts (planned {train_plan} and {valid_plan}, got {got}): a worker was lost while "
        "the data were loaded, or the scheduler keeps moving tasks (work stealing on a busy "
        "cluster). Retry the run, or train when the cluster is quieter."
    )


def _fit_schema(stats: list, numeric: list[str]) -> FeatureSchema:
    """``FeatureSchema.fit`` of the concatenated rows, from the parts' distinct categories."""
    categories = {
        c: sorted(set().union(*(s["categories"][c] for s in stats))) for c in CATEGORICAL_FEATURES
    }
    return FeatureSchema(numeric=list(numeric), categorical=categories)


def train_model_distributed(
    client: Client,
    parts: Sequence[Delayed | Future | Callable[[], pd.DataFrame]] | dd.DataFrame,
    *,
    schema: FeatureSchema | None = None,
    label: str = "purchase",
    params: dict[str, object] | None = None,
    num_boost_round: int = 1000,
    early_stopping_rounds: int = 20,
    valid: Sequence[Delayed | Future | Callable[[], pd.DataFrame]] | dd.DataFrame | None = None,
    valid_fraction: float = 0.2,
    bias_correction: str = "position",
    max_ipw_weight: float = 20.0,
    warm_start: xgb.Booster | None = None,
    realtime_features: bool = False,
) -> TrainedModel:
    """``train_model`` on a Dask cluster, from parts that are only ever read on the workers.

    ``parts``: ``dask.delayed`` objects, futures or callables each returning one chunk (e.g.
    ``training_parts``), or a ``dask.dataframe`` (e.g. ``parquet_parts``); a chunk has the
    feature columns, the label column, ``event_time`` and, for IPW, ``propensity``.
    ``schema``: the ``FeatureSchema`` every chunk is converted with; None fits it on the
    cluster from the training rows (the union of their categories: ``FeatureSchema.fit`` of
    the whole training set). ``valid``: validation parts for early stopping; None splits
    ``parts`` by time as ``time_split(learn, valid_fraction)`` does (the rows after the exact
    quantile validate). ``bias_correction`` (``position``, ``ipw``, ``position+ipw``, ``none``),
    ``max_ipw_weight`` and ``warm_start`` (with its ``schema``) as in ``train_model``; the
    listwise ``unbiased_lambdarank`` trains in one process only. Returns the single-process
    ``TrainedModel``: trees cut at the best iteration, params without ``nthread``.
    """
    _require_dask()
    import xgboost.dask as dxgb

    if label not in LABELS:
        raise ValueError(f"label must be one of {sorted(LABELS)}, got {label!r}")
    if bias_correction not in _POINTWISE:
        raise ValueError(
            f"distributed training supports bias_correction in {list(_POINTWISE)}, got "
            f"{bias_correction!r} (unbiased_lambdarank needs whole requests in one process: "
            "train it without FLYWHEEL_DASK_SCHEDULER)"
        )
    if not 0 < valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    label_col = LABELS[label]
    merged = {**DEFAULT_PARAMS, **(params or {})}
    for key in _PROCESS_PARAMS:
        merged.pop(key, None)
    numeric = numeric_features(bias_correction, realtime_features)
    weighted = "ipw" in bias_correction
    max_weight = max_ipw_weight if weighted else None

    learn = _slim_futures(client, parts, label_col, max_weight)
    if not learn:
        raise ValueError("no training parts")
    if valid is None:
        # The time-based split of the single-process path: validation = the later rows.
        cutoff = _time_quantile(client, learn, 1.0 - valid_fraction)
        held_out, valid_side = learn, "after"
    else:
        cutoff = None  # every row of `parts` trains, every row of `valid` validates
        held_out, valid_side = _slim_futures(client, valid, label_col, max_weight), "upto"
    train_stats = _gather_stats(client, learn, "upto", cutoff)
    valid_stats = _gather_stats(client, held_out, valid_side, cutoff)
    n_train = sum(s["rows"] for s in train_stats)
    n_valid = sum(s["rows"] for s in valid_stats)
    if n_train == 0 or sum(s["positives"] for s in train_stats) == 0:
        raise ValueError(
            f"no positive {label} labels in the training window ({n_train} rows): "
            "widen the training window or wait for more feedback"
        )
    if schema is None:
        schema = _fit_schema(train_stats, numeric)

    # Every worker that trains needs rows on both sides (see _placed_matrix).
    workers = sorted(client.nthreads())[: max(1, min(n_train, n_valid or n_train))]
    train_df, train_plan = _placed_matrix(
        client, learn, train_stats, schema, "upto", cutoff, workers, weighted
    )
    valid_df, valid_plan = (
        _placed_matrix(client, held_out, valid_stats, schema, valid_side, cutoff, workers, weighted)
        if n_valid
        else (None, [])
    )
    del learn, held_out  # the slim parts go once the matrices are built from them
    # xgboost.dask looks the client up as the current one even when it is given one.
    with client.as_current():
        dtrain, dvalid = _matrices_as_placed(
            client, schema, weighted, (train_df, train_plan), (valid_df, valid_plan)
        )
        # As train_model: only the validation rows are evaluated each round (early stopping
        # reads them alone).
        validation = [] if dvalid is None else [(dvalid, "valid")]
        out = dxgb.train(
            client,
            merged,
            dtrain,
            num_boost_round=num_boost_round,
            evals=validation,
            early_stopping_rounds=early_stopping_rounds if validation else None,
            verbose_eval=False,
            xgb_model=warm_start,
        )
    booster: xgb.Booster = out["booster"]
    best = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
    if validation:
        # Keep only the trees up to the best round, so the saved model is what was validated.
        booster = booster[: best + 1]
    return TrainedModel(booster, schema, merged, best, n_train, n_valid)
