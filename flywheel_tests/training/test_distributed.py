"""Distributed training on a real local Dask cluster (two worker processes, no mocks): the same
model quality as the single-process path, from parts that only the workers ever read."""

import datetime as dt
import importlib
import os
import subprocess
import sys
import time

# Dask is a dev dependency (flywheel[distributed]): if it is missing these tests fail, never
# skip. dask.dataframe and xgboost.dask are imported up front, so the driver-memory measurement
# below sees data, not module imports.
import dask
import dask.dataframe  # noqa: F401
import distributed
import numpy as np
import pandas as pd
import pytest
import xgboost.dask  # noqa: F401

from flywheel_assets.evaluation import auc, log_loss
from flywheel_assets.features.store import training_frame
from flywheel_assets.platform.warehouse import Warehouse
from flywheel_assets.training.distributed import (
    SCHEDULER_ENV,
    _clipped_ipw,
    _part_stats,
    _placed_matrix,
    _placement,
    _slim,
    _time_quantile,
    client_for,
    parquet_parts,
    scheduler_address,
    train_model_distributed,
    training_parts,
)
from flywheel_assets.training.model import (
    FEATURES,
    ipw_weights,
    predict,
    time_split,
    train_model,
)

# The module's tests share an expensive module fixture: one worker runs them all, so it is built once.
pytestmark = pytest.mark.xdist_group("training.test_distributed")

DAYS = 5
START = pd.Timestamp("2026-01-01")


def frame(n: int, seed: int, start: pd.Timestamp = START, days: int = DAYS) -> pd.DataFrame:
    """Like test_training.frame, spread irregularly over ``days`` days: purchases depend on a
    region x category interaction and fall with position; every other feature is noise."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({c: rng.random(n) for c in FEATURES})
    df["category"] = rng.choice(["a", "b", "c"], n)
    df["region"] = rng.choice(["n", "s"], n)
    df["device"] = rng.choice(["mobile", "desktop"], n)
    df["brand"] = rng.choice(["x", "y"], n)
    df["position"] = rng.integers(0, 10, n)
    good = (df["region"] == "n") == (df["category"] == "a")
    logit = -2.5 + 3.0 * good - 0.3 * df["position"]
    df["label_purchase"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df["propensity"] = np.where(rng.random(n) < 0.02, np.nan, 1 / (1 + df["position"]))
    df["label_click"] = df["label_purchase"]
    seconds = np.sort(rng.random(n)) * days * 86_400
    df["event_time"] = (start + pd.to_timedelta(seconds.round(3), unit="s")).astype(
        "datetime64[us]"
    )
    df["dt"] = df["event_time"].dt.date
    df["request_id"] = np.arange(n) // 10
    return df


def read_day(path: str, driver_pid: int) -> pd.DataFrame:
    """A chunk reader that fails if it ever runs in the test's own (driver) process."""
    if os.getpid() == driver_pid:
        raise AssertionError(f"{path} was read in the driver process")
    return pd.read_parquet(path)


def quality(model, test: pd.DataFrame) -> tuple[float, float]:
    p = predict(model.booster, model.schema, test)
    y = test["label_purchase"].to_numpy()
    return auc(y, p), log_loss(y, p)


def assert_same_quality(single, dist, test: pd.DataFrame, *, auc_tol=0.01, ll_tol=0.02):
    (auc_s, ll_s), (auc_d, ll_d) = quality(single, test), quality(dist, test)
    print(
        f"\nAUC single {auc_s:.4f} distributed {auc_d:.4f}; log loss single {ll_s:.4f} "
        f"distributed {ll_d:.4f}; best iteration {single.best_iteration} / "
        f"{dist.best_iteration}"
    )
    assert auc_s > 0.8 and auc_d > 0.8
    assert abs(auc_d - auc_s) <= auc_tol
    assert abs(ll_d - ll_s) <= ll_tol * ll_s


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster, set_as_default=False) as client:
        # Warm the workers up (pandas, XGBoost, Dask DataFrame, this module for read_day:
        # seconds on two busy cores), so the timings below are of training.
        client.run(importlib.import_module, __name__)
        yield client


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> tuple[pd.DataFrame, list[str]]:
    """40k examples over five days, exported as one Parquet file per day."""
    folder = tmp_path_factory.mktemp("training-exports")
    full = frame(40_000, seed=0)
    paths = []
    for day, rows in full.groupby("dt"):
        path = folder / f"dt={day}.parquet"
        rows.to_parquet(path, index=False)
        paths.append(str(path))
    return full, paths


@pytest.fixture(scope="module")
def test_set() -> pd.DataFrame:
    return frame(20_000, seed=1, start=START + pd.Timedelta(days=DAYS), days=2)


def day_readers(paths: list[str]) -> list:
    """Lazy per-day readers, which refuse to run in this (the driver) process."""
    return [dask.delayed(read_day, pure=False)(p, os.getpid()) for p in paths]


def test_day_parts_train_the_single_process_model_on_the_cluster(client, exports, test_set):
    full, paths = exports
    train, valid = time_split(full, 0.2)
    t0 = time.perf_counter()
    single = train_model(train, valid)
    t1 = time.perf_counter()
    model = train_model_distributed(client, day_readers(paths))
    print(f"\nsingle process {t1 - t0:.1f}s, distributed {time.perf_counter() - t1:.1f}s")

    # The same split (exact time quantile over the parts), schema and parameters.
    assert (model.n_train_rows, model.n_valid_rows) == (len(train), len(valid))
    assert model.schema == single.schema
    assert "nthread" not in model.params
    assert {k: v for k, v in single.params.items() if k != "nthread"} == model.params
    # Trees cut at the best iteration, as the single-process path does.
    assert model.booster.num_boosted_rounds() == model.best_iteration + 1
    assert_same_quality(single, model, test_set)


def test_the_driver_never_holds_the_window(exports):
    # Everything the driver allocates while training (tracemalloc follows numpy and Arrow
    # buffers received from workers too) stays far below the window's size: only counts,
    # categories, a sample of times and the booster come back. Ten rounds suffice, since the
    # data path does not depend on the number of rounds; the parts are readers that refuse to
    # run in the driver. The driver is a fresh process with a cluster of its own: tracemalloc
    # counts every thread, and in the test process other tests' threads (brokers, servers)
    # allocate too; the module's cluster is left alone for the other tests.
    full, paths = exports
    window_bytes = int(full.memory_usage(deep=True).sum())
    driver = f"""
import importlib
import tracemalloc
import distributed
from flywheel_assets.training.distributed import train_model_distributed
from flywheel_tests.training.test_distributed import day_readers
cluster = distributed.LocalCluster(
    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
)
with cluster, distributed.Client(cluster, set_as_default=False) as client:
    client.run(importlib.import_module, "flywheel_tests.training.test_distributed")
    readers = day_readers({paths!r})
    tracemalloc.start()
    model = train_model_distributed(client, readers, num_boost_round=10)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
print(model.n_train_rows + model.n_valid_rows, peak)
"""
    out = subprocess.run(
        [sys.executable, "-c", driver], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows, peak = map(int, out.stdout.split()[-2:])
    print(f"\ndriver peak {peak / 1e6:.1f} MB for a {window_bytes / 1e6:.1f} MB window")
    assert rows == len(full)
    assert peak < window_bytes / 4


def test_parquet_exports_with_separate_validation_days_and_ipw(client, exports, test_set):
    full, paths = exports
    learn, later = paths[:-1], paths[-1:]
    last_day = full["dt"] == full["dt"].max()
    t0 = time.perf_counter()
    single = train_model(full[~last_day], full[last_day], bias_correction="position+ipw")
    t1 = time.perf_counter()
    model = train_model_distributed(
        client,
        parquet_parts(learn),
        valid=parquet_parts(later),
        bias_correction="position+ipw",
    )
    print(f"\nsingle process {t1 - t0:.1f}s, distributed {time.perf_counter() - t1:.1f}s")

    assert (model.n_train_rows, model.n_valid_rows) == (int((~last_day).sum()), last_day.sum())
    assert model.schema == single.schema
    assert_same_quality(single, model, test_set)

    # Warm start: boosting continues from that model, with its schema.
    more = train_model_distributed(
        client,
        parquet_parts(paths),
        schema=model.schema,
        warm_start=model.booster,
        num_boost_round=5,
        bias_correction="position+ipw",
    )
    assert more.booster.num_boosted_rounds() > model.booster.num_boosted_rounds()
    assert more.booster.num_boosted_rounds() == more.best_iteration + 1


def test_ipw_weights_are_normalised_over_the_whole_side():
    p = pd.Series([0.5, 0.01, np.nan, 0.0, 1.0, 2.0, 0.2])
    raw = _clipped_ipw(p, 20.0)
    np.testing.assert_allclose(raw / raw.mean(), ipw_weights(p, 20.0))


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.013])
def test_validation_cutoff_is_time_splits_exactly(client, fraction):
    # Overlapping parts of uneven sizes, one empty, with many tied timestamps: the cutoff found
    # from samples and a bracket is the exact one, so the split is time_split's to the row.
    rng = np.random.default_rng(11)
    sizes = [5_000, 1, 0, 3_000, 12_000, 700]
    chunks = [
        pd.DataFrame(
            {
                "event_time": START + pd.to_timedelta(rng.integers(0, 4_000, n), unit="s"),
                "label_purchase": rng.integers(0, 2, n),
            }
        )
        for n in sizes
    ]
    whole = pd.concat(chunks, ignore_index=True)
    _, later = time_split(whole, fraction)
    slim = client.scatter([_slim(c, "label_purchase") for c in chunks])
    cutoff = _time_quantile(client, slim, 1.0 - fraction)
    stats = client.gather(client.map(_part_stats, slim, side="after", cutoff=cutoff))
    assert sum(s["rows"] for s in stats) == len(later)
    times = whole["event_time"].astype("datetime64[ns]").astype("int64")
    assert cutoff in set(times) and ((times > cutoff) == whole.index.isin(later.index)).all()


def test_placement_reads_where_each_partition_of_a_matrix_is(client, exports):
    # Training rebuilds a matrix whose rows the scheduler moved off their planned workers, so
    # the placement it reads must be the scheduler's own account, partition by partition.
    full, _ = exports
    chunks = [_slim(rows, "label_purchase") for _, rows in full.groupby("dt")]
    slim = client.scatter(chunks)
    stats = client.gather(client.map(_part_stats, slim, side="upto", cutoff=None))
    model = train_model(full.head(4_000), full.tail(1_000), num_boost_round=2)
    workers = sorted(client.nthreads())
    frame, plan = _placed_matrix(
        client, slim, stats, model.schema, "upto", None, workers, weighted=False
    )
    assert sorted(set(plan)) == workers and len(plan) == frame.npartitions
    with client.as_current():
        matrix = xgboost.dask.DaskQuantileDMatrix(
            client, frame[frame.columns[:-2]], frame[frame.columns[-2]], enable_categorical=True
        )
    parts = sorted(
        (f for fs in matrix.worker_map.values() for f in fs),
        key=lambda f: matrix.partition_order[f.key],
    )
    who_has = client.who_has(parts)
    assert len(parts) == frame.npartitions
    assert _placement(matrix) == [next(iter(who_has[f.key])) for f in parts]


def test_an_off_plan_matrix_is_built_again_and_one_that_stays_off_fails_loudly(
    client, exports, monkeypatch
):
    # Work stealing cannot be ordered on a quiet cluster, so the scheduler's account of the
    # first matrix built is made to read as off-plan; the real one is used after it.
    from flywheel_assets.training import distributed as trainer

    real, reads = trainer._placement, []

    def first_off(dmatrix):
        reads.append(real(dmatrix))
        return ["tcp://elsewhere"] * len(reads[-1]) if len(reads) == 1 else reads[-1]

    _, paths = exports
    monkeypatch.setattr(trainer, "_placement", first_off)
    model = train_model_distributed(client, parquet_parts(paths), num_boost_round=3)
    assert model.n_valid_rows > 0 and len(reads) == 4  # two matrices, built twice

    monkeypatch.setattr(trainer, "_placement", lambda d: ["tcp://elsewhere"])
    with pytest.raises(RuntimeError, match="not where they were placed after 3 attempts"):
        train_model_distributed(client, parquet_parts(paths), num_boost_round=3)


def build_warehouse(url: str, days: list[dt.date], per_day: int = 2_500) -> None:
    """A small DuckDB warehouse: training examples with their users' and items' snapshots."""
    rng = np.random.default_rng(7)
    users = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(300)],
            "region": rng.choice(["n", "s"], 300),
            "device": rng.choice(["mobile", "desktop"], 300),
            "u_clicks_28d": rng.integers(0, 20, 300),
        }
    )
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(60)],
            "category": rng.choice(["a", "b", "c"], 60),
            "brand": rng.choice(["x", "y"], 60),
            "i_price": rng.uniform(5, 200, 60).round(2),
        }
    )
    examples = []
    for day in days:
        u = users.sample(per_day, replace=True, random_state=rng.integers(1 << 31))
        i = items.sample(per_day, replace=True, random_state=rng.integers(1 << 31))
        position = rng.integers(0, 10, per_day)
        good = (u["region"].to_numpy() == "n") == (i["category"].to_numpy() == "a")
        p = 1 / (1 + np.exp(-(-2.5 + 3.0 * good - 0.3 * position)))
        purchase = (rng.random(per_day) < p).astype(int)
        seconds = np.sort(rng.random(per_day)) * 86_400
        examples.append(
            pd.DataFrame(
                {
                    "dt": day,
                    "feature_dt": day - dt.timedelta(days=1),
                    "request_id": [f"{day}-{k // 10}" for k in range(per_day)],
                    "user_id": u["user_id"].to_numpy(),
                    "item_id": i["item_id"].to_numpy(),
                    "event_time": pd.Timestamp(day) + pd.to_timedelta(seconds.round(6), unit="s"),
                    "position": position,
                    "propensity": 0.1,
                    "label_click": np.maximum(purchase, rng.random(per_day) < 0.1),
                    "label_purchase": purchase,
                }
            )
        )
    snapshots = [day - dt.timedelta(days=1) for day in days]
    wh = Warehouse(url)
    try:
        wh.migrate()
        with wh.begin() as conn:
            wh.insert_df(conn, "training_examples", pd.concat(examples, ignore_index=True))
            wh.insert_df(conn, "user_features", pd.concat([users.assign(dt=d) for d in snapshots]))
            wh.insert_df(conn, "item_features", pd.concat([items.assign(dt=d) for d in snapshots]))
    finally:
        wh.dispose()  # DuckDB: the workers can open the file read-only only once no one writes


def test_warehouse_day_parts_as_the_challenger_splits(client, tmp_path):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    days = [dt.date(2026, 2, 1) + dt.timedelta(days=k) for k in range(4)]
    build_warehouse(url, days)
    start, day = days[0], days[-1]
    reference = training_frame(Warehouse(url), start, day)

    # One query per day on the workers gives, together, exactly the window's frame.
    chunks = client.gather(client.compute(training_parts(url, start, day)))
    assert [len(c) for c in chunks] == [2_500] * 4
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), reference)

    # The challenger's split: the last hours of the last day held out, the rest split by time.
    _, holdout = time_split(reference[reference["dt"] == day], 0.25)
    cutoff = holdout["event_time"].min()
    learn = reference[reference["event_time"] < cutoff]
    train, valid = time_split(learn, 0.2)
    single = train_model(train, valid)
    model = train_model_distributed(client, training_parts(url, start, day, before=cutoff))

    assert (model.n_train_rows, model.n_valid_rows) == (len(train), len(valid))
    assert model.schema == single.schema
    assert_same_quality(single, model, holdout, auc_tol=0.02, ll_tol=0.03)


def test_frames_in_the_driver_and_missing_labels_are_refused(client, exports):
    full, paths = exports
    with pytest.raises(TypeError, match="use train_model"):
        train_model_distributed(client, full)
    with pytest.raises(TypeError, match="not a DataFrame"):
        train_model_distributed(client, [full.head(10)])
    no_labels = [dask.delayed(lambda: frame(500, seed=3).assign(label_purchase=0))()]
    with pytest.raises(ValueError, match="no positive purchase labels"):
        train_model_distributed(client, no_labels)
    with pytest.raises(ValueError, match="unbiased_lambdarank"):
        train_model_distributed(client, paths, bias_correction="unbiased_lambdarank")


def test_scheduler_address_from_the_environment(cluster, monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert scheduler_address() is None
    monkeypatch.setenv(SCHEDULER_ENV, "  ")
    assert scheduler_address() is None
    monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
    address = scheduler_address()
    assert address == cluster.scheduler_address
    with client_for(address) as client:
        assert len(client.nthreads()) == 2
    assert client.status == "closed"
