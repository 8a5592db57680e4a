"""bench/ingest: events/s of flywheel's ingest of one day of events, next to DuckDB's bare load.

Generates N events (default 5M) in the event contract (docs/events.md) and writes them once as
a JSONL, a CSV and a Parquet landing file for 2026-01-01. For each format, in the same run:
  - bare: DuckDB alone, ``CREATE TABLE t AS SELECT * FROM read_json/read_csv/read_parquet(file)``
    into a fresh DuckDB file;
  - flywheel: the real ``raw_events`` asset for partition 2026-01-01, materialised through
    Dagster (``dg.materialize`` of that one asset, in process, SQLite instance) against a fresh
    DuckDB warehouse: read the file, event contract, HMAC pseudonyms, insert, ingested_files log
    (and the day's Kafka rows, none here). The whole ``materialize`` call is timed (run overhead
    included; Dagster's one-time start-up is paid by a warm-up run on a day without files).
    A breakdown then times the same steps as plain function calls (read_landing_file,
    normalise_events, insert_df) to show where the time goes; it is not part of the figures.
Kafka, in the same run: a real broker (Tansu, flywheel_assets.platform.dev_broker), topic with 3
partitions, the same events as JSON messages (``--kafka-events``, default N), then
  - bare: a plain confluent_kafka Consumer reading every message to the end (no parsing);
  - flywheel: ``kafka_ingest.ingest_topic`` (batches of 100k, exactly-once offsets) into a fresh
    DuckDB warehouse.
events/s = events / seconds; ratio = flywheel events/s / bare events/s.
Goals on 2 cores: Parquet >= 1/2 of the bare rate, JSONL >= 1/3, Kafka >= 50,000 events/s.

Growth (``--growth 1000000,2500000,5000000``): the file formats again at each size, each with
its own files and warehouses, printed as µs per event against the smallest size.

Run:  .venv/bin/python bench/ingest.py [--events 5000000] [--kafka-events N] [--growth N,N,N]
      [--out bench/out/ingest.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchkit import code_version, log, peak_rss_gb  # noqa: E402

DAY = dt.date(2026, 1, 1)
TOPIC = "bench.events"
FORMATS = ("jsonl", "csv", "parquet")
GOALS = {"parquet": ("ratio", 1 / 2), "jsonl": ("ratio", 1 / 3), "kafka": ("rate", 50_000)}
EVENT_TYPES = ["impression", "view", "click", "add_to_cart", "purchase"]
EVENT_TYPE_P = [0.80, 0.10, 0.06, 0.03, 0.01]
BARE_READERS = {
    "jsonl": "read_json(?, format='newline_delimited')",
    "csv": "read_csv(?)",
    "parquet": "read_parquet(?)",
}


def _prefixed(prefix: str, values: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(values), pa.string()), "")


def make_events(n: int, seed: int, users: int, items: int) -> pa.Table:
    """``n`` valid events of DAY, vectorised (seconds for millions)."""
    rng = np.random.default_rng(seed)
    start_ms = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    times = np.sort(rng.integers(0, 86_400_000, n)) + start_ms
    stamps = pa.array(times.astype("datetime64[ms]"), pa.timestamp("ms"))
    return pa.table(
        {
            "event_id": _prefixed("ev-", np.arange(n)),
            "event_type": pc.take(
                pa.array(EVENT_TYPES), pa.array(rng.choice(5, n, p=EVENT_TYPE_P).astype(np.int8))
            ),
            "event_time": pc.binary_join_element_wise(
                pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%S"), "Z", ""
            ),
            "user_id": _prefixed("user-", rng.integers(0, users, n)),
            "item_id": _prefixed("item-", rng.integers(0, items, n)),
            "session_id": _prefixed("s-", rng.integers(0, max(n // 25, 1), n)),
            "request_id": _prefixed("r-", rng.integers(0, max(n // 10, 1), n)),
            "position": pa.array(rng.integers(0, 20, n)),
            "propensity": pa.array(np.round(rng.uniform(0.01, 1.0, n), 6)),
            "model_version": pc.take(
                pa.array(["m20251231-77b08fa9", "cold-start"]),
                pa.array((rng.random(n) < 0.05).astype(np.int8)),
            ),
            "variant": pc.take(
                pa.array(["champion", "explore"]),
                pa.array((rng.random(n) < 0.05).astype(np.int8)),
            ),
            "price": pa.array(np.round(rng.gamma(2.0, 15.0, n), 2)),
        }
    )


def write_landing_files(table: pa.Table, tmp: Path) -> dict[str, Path]:
    """One file per format, each in its own landing folder so each run reads just that one."""
    import duckdb
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    paths = {}
    for fmt in FORMATS:
        folder = tmp / f"landing_{fmt}" / "events" / f"dt={DAY.isoformat()}"
        folder.mkdir(parents=True)
        paths[fmt] = folder / f"events.{fmt}"
    pq.write_table(table, paths["parquet"])
    pa_csv.write_csv(table, paths["csv"])
    con = duckdb.connect()
    con.register("ev", table)
    # DuckDB's JSON writer: one object per line, fields in column order.
    con.execute(f"COPY ev TO '{paths['jsonl']}' (FORMAT JSON)")
    con.close()
    return paths


def bare_load(fmt: str, path: Path, tmp: Path, n: int) -> float:
    import duckdb

    con = duckdb.connect(str(tmp / f"bare_{fmt}.duckdb"))
    t = time.perf_counter()
    reader = BARE_READERS[fmt]  # a constant; the file is a bound parameter
    con.execute(f"CREATE TABLE t AS SELECT * FROM {reader}", [str(path)])  # noqa: S608
    seconds = time.perf_counter() - t
    rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
    con.close()
    assert rows == n, f"bare {fmt}: {rows} rows, expected {n}"
    return seconds


def flywheel_dagster(
    fmt: str, tmp: Path, n: int, instance: object, day: dt.date = DAY, check: bool = True
) -> float:
    """The raw_events asset for ``day`` through Dagster; returns the materialize call's seconds."""
    import dagster as dg

    from flywheel_assets.defs.ingestion.assets import raw_events
    from flywheel_assets.defs.resources import WarehouseResource, resources
    from flywheel_assets.platform.warehouse import Warehouse

    url = f"duckdb:///{tmp / f'wh_{fmt}.duckdb'}"
    os.environ["FLYWHEEL_LANDING_DIR"] = str(tmp / f"landing_{fmt}")
    os.environ["FLYWHEEL_WAREHOUSE_URL"] = url
    WarehouseResource().get().dispose()  # the schema exists before the timing (like a live home)
    t = time.perf_counter()
    result = dg.materialize(
        [raw_events],
        partition_key=day.isoformat(),
        resources=resources(),
        instance=instance,
        # The warm-up (no files) warns "no landing files": expected, so kept quiet.
        run_config={
            "loggers": {"console": {"config": {"log_level": "WARNING" if check else "ERROR"}}}
        },
        raise_on_error=False,
    )
    seconds = time.perf_counter() - t
    if not result.success:
        failures = [
            e.step_failure_data.error.to_string() if e.step_failure_data.error else "?"
            for e in result.all_events
            if e.event_type_value == "STEP_FAILURE"
        ]
        raise SystemExit(f"raw_events ({fmt}) failed:\n" + "\n".join(failures))
    if not check:
        return seconds
    wh = Warehouse(url)
    with wh.begin() as conn:
        rows = wh.scalar(conn, "SELECT count(*) FROM raw_events")
        quarantined = wh.scalar(conn, "SELECT count(*) FROM quarantine")
    wh.dispose()
    assert rows == n and quarantined == 0, f"{fmt}: {rows} rows, {quarantined} quarantined"
    return seconds


def flywheel_breakdown(fmt: str, path: Path, tmp: Path, n: int) -> dict[str, float]:
    """The same steps as plain function calls, each timed (where the time goes)."""
    from flywheel_assets.ingestion.contract import normalise_events
    from flywheel_assets.ingestion.landing import LINE_NO, read_landing_file
    from flywheel_assets.platform.pseudonym import Pseudonymiser
    from flywheel_assets.platform.warehouse import Warehouse

    parts: dict[str, float] = {}
    t = time.perf_counter()
    parsed = read_landing_file(path, typed_numbers=True)  # as read_source_files reads it
    parts["read_landing_file"] = time.perf_counter() - t
    t = time.perf_counter()
    start = dt.datetime(2026, 1, 1)
    batch = normalise_events(
        parsed.records,
        pseudonymiser=Pseudonymiser("bench-key-0123456789abcdef"),
        partition_start=start,
        partition_end=start + dt.timedelta(days=1),
        now=dt.datetime(2026, 1, 2, 1),
    )
    parts["normalise_events"] = time.perf_counter() - t
    assert len(batch.accepted) == n and parsed.bad_lines.empty, f"{fmt}: not all rows accepted"
    t = time.perf_counter()
    line_nos = parsed.records[LINE_NO].reindex(batch.accepted.index)
    # as ingest._insert_accepted builds them: typed constant columns
    accepted = batch.accepted.assign(
        source_file=_constant(str(path), pa.string(), len(batch.accepted), batch.accepted.index),
        line_no=line_nos.to_numpy(dtype="int64"),
    )
    accepted.insert(0, "dt", _constant(DAY, pa.date32(), len(accepted), accepted.index))
    parts["assign_columns"] = time.perf_counter() - t
    del parsed, batch
    wh = Warehouse(f"duckdb:///{tmp / f'wh_fn_{fmt}.duckdb'}")
    wh.migrate()
    t = time.perf_counter()
    with wh.begin() as conn:
        wh.insert_df(conn, "raw_events", accepted)
    parts["insert_df"] = time.perf_counter() - t
    wh.dispose()
    del accepted
    gc.collect()
    return parts


def _constant(value: object, typ: pa.DataType, n: int, index: object) -> object:
    import pandas as pd

    return pd.Series(
        pd.arrays.ArrowExtensionArray(pa.repeat(pa.scalar(value, typ), n)), index=index
    )


def growth(
    sizes: list[int], formats: list[str], args: argparse.Namespace, tmp: Path, instance: object
) -> list[dict[str, object]]:
    """The file formats at each size (fresh files and warehouses): how time grows with events."""
    out: list[dict[str, object]] = []
    for size in sizes:
        folder = tmp / f"growth_{size}"
        folder.mkdir()
        table = make_events(size, args.seed, args.users, args.items)
        paths = write_landing_files(table, folder)
        del table
        gc.collect()
        for fmt in formats:
            bare_s = bare_load(fmt, paths[fmt], folder, size)
            fly_s = flywheel_dagster(fmt, folder, size, instance)
            r = row(fmt, size, fly_s, bare_s)
            r["flywheel_us_per_event"] = round(fly_s / size * 1e6, 3)
            out.append(r)
            log(f"  growth {fmt} {size:,}: flywheel {fly_s:.2f}s, bare {bare_s:.2f}s")
            gc.collect()
        for p in paths.values():
            p.unlink()
    return out


def produce(bootstrap: str, jsonl: Path, n: int) -> float:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "batch.num.messages": 100_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    failed = 0

    def on_delivery(err: object, _msg: object) -> None:
        nonlocal failed
        if err is not None:
            failed += 1

    ts = int(dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC).timestamp() * 1000)
    t = time.perf_counter()
    with open(jsonl, "rb") as fh:
        for i, line in enumerate(fh):
            if i >= n:
                break
            while True:
                try:
                    producer.produce(
                        TOPIC,
                        line.rstrip(b"\n"),
                        partition=i % 3,
                        timestamp=ts,
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            if i % 10_000 == 0:
                producer.poll(0)
    left = producer.flush(300)
    seconds = time.perf_counter() - t
    assert left == 0 and failed == 0, f"produce: {left} undelivered, {failed} failed"
    return seconds


def bare_consume(bootstrap: str, n: int) -> float:
    """Every message read by a plain consumer, values touched, nothing parsed."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-bare",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "queued.max.messages.kbytes": 256 * 1024,
        }
    )
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(3)])
    got = 0
    last = time.monotonic()
    t = time.perf_counter()
    # Tansu's ListOffsets end can lag: read until every produced message is seen.
    while got < n:
        msgs = consumer.consume(num_messages=100_000, timeout=1.0)
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(err.str())
                continue
            m.value()
            got += 1
        if msgs:
            last = time.monotonic()
        elif time.monotonic() - last > 60:
            raise RuntimeError(f"bare consumer stalled at {got} of {n} messages")
    seconds = time.perf_counter() - t
    consumer.close()
    return seconds


def kafka_bench(jsonl: Path, tmp: Path, n: int) -> dict[str, float]:
    from flywheel_assets.ingestion.kafka import KafkaSettings, ingest_topic
    from flywheel_assets.platform.dev_broker import DevBroker, create_topic
    from flywheel_assets.platform.pseudonym import Pseudonymiser
    from flywheel_assets.platform.warehouse import Warehouse

    with DevBroker(log_path=tmp / "tansu.log") as broker:
        create_topic(broker.bootstrap, TOPIC, partitions=3)
        log(f"kafka: producing {n:,} messages to Tansu (not measured)...")
        produce_s = produce(broker.bootstrap, jsonl, n)
        log(f"  produced in {produce_s:.1f}s; bare consumer...")
        bare_s = bare_consume(broker.bootstrap, n)
        log(f"  bare consume {bare_s:.1f}s; flywheel ingest_topic...")
        wh = Warehouse(f"duckdb:///{tmp / 'wh_kafka.duckdb'}")
        wh.migrate()
        t = time.perf_counter()
        report = ingest_topic(
            KafkaSettings(broker.bootstrap, TOPIC, batch_size=100_000),
            wh,
            Pseudonymiser("bench-key-0123456789abcdef"),
            now=lambda: dt.datetime(2026, 1, 2, 1),
        )
        flywheel_s = time.perf_counter() - t
        with wh.begin() as conn:
            rows = wh.scalar(conn, "SELECT count(*) FROM kafka_events WHERE dt = :d", d=DAY)
        wh.dispose()
    assert report.accepted == n and rows == n, (
        f"kafka: accepted {report.accepted}, {rows} rows of {DAY}, expected {n} "
        f"(quarantined {report.quarantined})"
    )
    return {"produce": produce_s, "bare": bare_s, "flywheel": flywheel_s}


def row(name: str, n: int, fly_s: float, bare_s: float) -> dict[str, object]:
    fly_rate, bare_rate = n / fly_s, n / bare_s
    ratio = fly_rate / bare_rate
    goal = GOALS.get(name)
    if goal is None:
        goal_text, met = "-", None
    elif goal[0] == "ratio":
        goal_text, met = f"ratio >= {goal[1]:.2f}", ratio >= goal[1]
    else:
        goal_text, met = f">= {goal[1]:,} ev/s", fly_rate >= goal[1]
    return {
        "format": name,
        "events": n,
        "flywheel_seconds": round(fly_s, 2),
        "flywheel_events_per_s": round(fly_rate),
        "bare_seconds": round(bare_s, 2),
        "bare_events_per_s": round(bare_rate),
        "ratio": round(ratio, 3),
        "goal": goal_text,
        "met": met,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--kafka-events", type=int, default=None, help="default: --events")
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--formats", default="jsonl,csv,parquet,kafka")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the per-step timing")
    parser.add_argument(
        "--growth",
        default="",
        help="comma-separated event counts: also run the file formats at each (growth table)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "ingest.json"))
    args = parser.parse_args()
    n = args.events
    n_kafka = min(args.kafka_events or n, n)
    wanted = args.formats.split(",")
    t_all = time.perf_counter()

    import dagster as dg
    import duckdb

    from flywheel_assets.simulation.demo import prepare_home

    tmp = Path(tempfile.mkdtemp(prefix="fw-bench-ingest-"))
    prepare_home(tmp / "home")
    instance = dg.DagsterInstance.get()

    log(f"generating {n:,} events...")
    t = time.perf_counter()
    table = make_events(n, args.seed, args.users, args.items)
    paths = write_landing_files(table, tmp)
    del table
    gc.collect()
    sizes = {fmt: round(p.stat().st_size / 1e6, 1) for fmt, p in paths.items()}
    log(f"  written in {time.perf_counter() - t:.1f}s (setup, not measured): {sizes} MB")

    # Dagster's one-time costs (instance storage, first run) outside the timings: a warm-up run
    # of the same asset on a day without files.
    flywheel_dagster("warmup", tmp, 0, instance, day=DAY - dt.timedelta(days=1), check=False)

    rows: list[dict[str, object]] = []
    breakdown: dict[str, dict[str, float]] = {}
    for fmt in FORMATS:
        if fmt not in wanted:
            continue
        log(f"{fmt}: bare DuckDB load...")
        bare_s = bare_load(fmt, paths[fmt], tmp, n)
        log(f"  bare {bare_s:.2f}s; flywheel raw_events through Dagster...")
        fly_s = flywheel_dagster(fmt, tmp, n, instance)
        gc.collect()
        log(f"  flywheel {fly_s:.2f}s (peak RSS so far {peak_rss_gb():.1f} GB)")
        rows.append(row(fmt, n, fly_s, bare_s))
        if not args.no_breakdown:
            parts = flywheel_breakdown(fmt, paths[fmt], tmp, n)
            breakdown[fmt] = {k: round(v, 2) for k, v in parts.items()}
            log(f"  breakdown (functions, not Dagster): {breakdown[fmt]}")
        gc.collect()

    grown: list[dict[str, object]] = []
    if args.growth:
        sizes = [int(x) for x in args.growth.split(",")]
        grown = growth(sizes, [f for f in FORMATS if f in wanted], args, tmp, instance)

    kafka: dict[str, float] = {}
    if "kafka" in wanted:
        kafka = kafka_bench(paths["jsonl"], tmp, n_kafka)
        rows.append(row("kafka", n_kafka, kafka["flywheel"], kafka["bare"]))

    total_s = time.perf_counter() - t_all
    machine = (
        f"{platform.platform()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, duckdb {duckdb.__version__}"
    )
    code = code_version()
    command = "python bench/ingest.py " + " ".join(sys.argv[1:])
    figures = {
        "date": dt.date.today().isoformat(),
        "events": n,
        "kafka_events": n_kafka if kafka else None,
        "flywheel_path": "dagster materialize of raw_events (files); kafka_ingest.ingest_topic (kafka)",
        "file_mb": sizes,
        "results": rows,
        "breakdown_seconds": breakdown,
        "growth": grown,
        "kafka_produce_seconds": round(kafka["produce"], 2) if kafka else None,
        "peak_rss_gb": round(peak_rss_gb(), 1),
        "total_seconds": round(total_s, 1),
        "machine": machine,
        "code": code,
        "command": command,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2))

    head = f"{'format':<8} {'fly s':>8} {'fly ev/s':>11} {'bare s':>8} {'bare ev/s':>11} {'ratio':>7}  {'goal':<20} met"
    print(head)
    print("-" * len(head))
    for r in rows:
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        print(
            f"{r['format']:<8} {r['flywheel_seconds']:>8.2f} {r['flywheel_events_per_s']:>11,} "
            f"{r['bare_seconds']:>8.2f} {r['bare_events_per_s']:>11,} {r['ratio']:>7.3f}  "
            f"{r['goal']:<20} {met}"
        )
    if breakdown:
        print("\nwhere flywheel's time goes (same steps as plain functions, seconds):")
        for fmt, parts in breakdown.items():
            print(f"  {fmt:<8} " + ", ".join(f"{k} {v}" for k, v in parts.items()))
    if grown:
        print("\ngrowth (each size its own files; µs per event, and against the smallest size):")
        for fmt in dict.fromkeys(str(g["format"]) for g in grown):
            mine = [g for g in grown if g["format"] == fmt]
            first = float(mine[0]["flywheel_us_per_event"])
            for g in mine:
                us = float(g["flywheel_us_per_event"])
                print(
                    f"  {fmt:<8} {g['events']:>10,} events: flywheel {g['flywheel_seconds']:>7.2f}s "
                    f"{us:6.2f} µs/event (x{us / first:.2f}), bare {g['bare_seconds']:>6.2f}s, "
                    f"ratio {g['ratio']:.3f}"
                )
    if kafka:
        print(f"\nkafka: produced {n_kafka:,} messages in {kafka['produce']:.1f}s (not measured)")
    print(
        f"\ncode: {code}; machine: {machine}; peak RSS {peak_rss_gb():.1f} GB; total {total_s:.0f}s"
    )
    print(f"reproduce: {command}   (JSON: {args.out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
