"""Kafka ingestion against a real broker (Tansu) and real warehouses: exactly once through a
killed run, hostile messages, a broker that stops answering, and the Dagster assets on top."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from flywheel_assets.ingestion.kafka import KafkaIngestError, KafkaSettings, ingest_topic
from flywheel_assets.platform.dev_broker import DevBroker, create_topic
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import Warehouse

# The module's tests share an expensive module fixture: one worker runs them all, so it is built once.
pytestmark = pytest.mark.xdist_group("ingestion.test_kafka")

KEY = "kafka-test-key-0123456789"
DAY = dt.date(2026, 3, 2)
DAY_MS = int(dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC).timestamp() * 1000)
NOW = dt.datetime(2026, 3, 3, 0, 30)


def _event(i: int, **overrides: object) -> dict:
    row = {
        "event_id": f"e{i}",
        "event_type": "view",
        "event_time": "2026-03-02T11:00:00Z",
        "user_id": f"raw-user-{i % 500}",
        "item_id": f"i{i % 40}",
        "session_id": f"s{i % 900}",
    }
    row.update(overrides)
    return row


def _produce(bootstrap: str, topic: str, values: list[bytes | None], partitions: int = 3) -> None:
    """A plain confluent-kafka producer: not flywheel's code."""
    create_topic(bootstrap, topic, partitions)
    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i, value in enumerate(values):
        producer.produce(
            topic,
            key=str(i % 101).encode(),
            value=value,
            timestamp=DAY_MS,
            on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
        )
        if i % 5000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []


def _topic_end(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's end offset, from the end-of-partition event of a consumer that reads
    from the last few messages on (Tansu's ListOffsets can lag behind the real end)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "test-end", "enable.partition.eof": True}
    )
    try:
        parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        listed = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in parts
        }
        consumer.assign([TopicPartition(topic, p, max(0, listed[p] - 1)) for p in parts])
        ends: dict[int, int] = {}
        deadline = time.monotonic() + 30
        while len(ends) < len(parts) and time.monotonic() < deadline:
            for m in consumer.consume(10_000, timeout=1):
                if m.error() is not None and m.error().code() == KafkaError._PARTITION_EOF:
                    ends[m.partition()] = m.offset()
        return ends
    finally:
        consumer.close()


def _settings(broker: DevBroker, topic: str, **kw: object) -> KafkaSettings:
    return KafkaSettings(broker.bootstrap, topic, **kw)  # type: ignore[arg-type]


def _ingest(wh: Warehouse, settings: KafkaSettings, **kw: object):
    return ingest_topic(settings, wh, Pseudonymiser(KEY), now=lambda: NOW, **kw)  # type: ignore[arg-type]


def _query(wh: Warehouse, sql: str) -> pd.DataFrame:
    with wh.begin() as conn:
        return wh.query_df(conn, sql)


def _offsets(wh: Warehouse, topic: str) -> dict[int, int]:
    df = _query(wh, "SELECT kafka_partition, next_offset, topic FROM kafka_offsets")
    df = df[df["topic"] == topic]
    return dict(zip(df["kafka_partition"].astype(int), df["next_offset"].astype(int), strict=True))


# ----- exactly once -----------------------------------------------------------------------

_KILLABLE_INGEST = textwrap.dedent(
    """
    import datetime as dt, sys
    from flywheel_assets.ingestion.kafka import KafkaSettings, ingest_topic
    from flywheel_assets.platform.pseudonym import Pseudonymiser
    from flywheel_assets.platform.warehouse import Warehouse
    url, bootstrap, topic, key = sys.argv[1:5]
    wh = Warehouse(url)
    wh.migrate()
    ingest_topic(
        KafkaSettings(bootstrap, topic, batch_size=4000),
        wh,
        Pseudonymiser(key),
        now=lambda: dt.datetime(2026, 3, 3, 0, 30),
        on_batch=lambda b: print("batch", b.messages, flush=True),
    )
    print("finished", flush=True)
    """
)


def test_100k_events_from_a_foreign_producer_exactly_once_through_a_killed_ingest(
    broker: DevBroker, pg_database: str
) -> None:
    topic = "exactly-once"
    n = 100_000
    _produce(broker.bootstrap, topic, [json.dumps(_event(i)).encode() for i in range(n)])
    ends = _topic_end(broker.bootstrap, topic)
    assert sum(ends.values()) == n

    child = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE_INGEST, pg_database, broker.bootstrap, topic, KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    batches = 0
    for line in child.stdout:
        if line.startswith("batch"):
            batches += 1
        if batches == 3:
            child.send_signal(signal.SIGKILL)  # mid-way: the 4th batch is being read or written
            break
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    wh = Warehouse(pg_database)
    killed = _query(wh, "SELECT COUNT(*) AS n FROM kafka_events")["n"].iloc[0]
    stored = _offsets(wh, topic)
    # Whatever was committed, the stored offsets say exactly which messages are in.
    assert 3 * 4000 <= killed < n
    assert killed == sum(stored.values())

    report = _ingest(wh, _settings(broker, topic, batch_size=20_000))
    assert report.messages == n - killed
    totals = _query(
        wh,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids, "
        "COUNT(DISTINCT topic || ':' || CAST(kafka_partition AS VARCHAR) || ':' "
        "|| CAST(kafka_offset AS VARCHAR)) AS positions FROM kafka_events",
    ).iloc[0]
    assert (totals["n"], totals["ids"], totals["positions"]) == (n, n, n)
    assert _offsets(wh, topic) == ends
    assert _query(wh, "SELECT COUNT(*) AS n FROM quarantine")["n"].iloc[0] == 0
    # A third run finds nothing new.
    assert _ingest(wh, _settings(broker, topic)).messages == 0
    wh.dispose()


def test_concurrent_commit_from_a_second_consumer_is_refused(
    broker: DevBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The offset moves by compare-and-set: a batch whose start offset is stale is refused."""
    topic = "cas"
    _produce(broker.bootstrap, topic, [json.dumps(_event(i)).encode() for i in range(100)], 1)
    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    wh.migrate()
    _ingest(wh, _settings(broker, topic, batch_size=50), max_messages=50)
    with wh.begin() as conn:  # another consumer committed meanwhile
        conn.execute(sa.text("UPDATE kafka_offsets SET next_offset = 70"))
    from flywheel_assets.ingestion import kafka as kafka_ingest

    # This consumer read its offsets before the other one committed: it still believes 50.
    monkeypatch.setattr(kafka_ingest, "stored_offsets", lambda *a: {0: 50})
    with pytest.raises(KafkaIngestError, match="another flywheel consumer"):
        _ingest(wh, _settings(broker, topic))
    assert _query(wh, "SELECT COUNT(*) AS n FROM kafka_events")["n"].iloc[0] == 50


# ----- hostile input ------------------------------------------------------------------------


def test_hostile_messages_are_quarantined_with_partition_and_offset(
    broker: DevBroker, tmp_path: Path
) -> None:
    topic = "hostile"
    good = [_event(i) for i in range(20)]
    sql_text = "x'); DROP TABLE raw_events; --"
    cases: list[tuple[bytes | None, str | None]] = [
        *[(json.dumps(e).encode(), None) for e in good],
        (b'{"event_id": "t1", "event_type": "view", "user_id": "raw-user-1"', "malformed_json"),
        (b'{"event_id": "u1", "user_id": "\xff\xfe"}', "invalid_utf8"),
        (None, "empty_message"),
        (b"   ", "empty_message"),
        (b"[1, 2, 3]", "not_an_object"),
        (json.dumps(_event(100, user_id=None)).encode(), "missing_required:user_id"),
        (json.dumps(_event(101, event_type="hover")).encode(), "invalid_event_type"),
        (json.dumps(_event(102, price=-3)).encode(), "invalid_price"),
        (json.dumps(_event(103, event_time="2027-01-01T00:00:00Z")).encode(), "future_event"),
        (json.dumps(_event(104, event_time="not a time")).encode(), "invalid_timestamp"),
        # a redelivery in the same batch (across batches, accepted_events drops it)
        (json.dumps(_event(19)).encode(), "duplicate_event_id"),
        (json.dumps(_event(105, position="1.5")).encode(), "invalid_position"),
        (json.dumps(_event(106, email="alice@example.com", user_id=None)).encode(), "missing"),
        # Valid rows whose text is hostile: stored as data, never run as SQL.
        (json.dumps(_event(107, item_id=sql_text)).encode(), None),
        (json.dumps(_event(108, session_id="<script>alert(1)</script>")).encode(), None),
        (json.dumps(_event(109, session_id="A" * 100_000)).encode(), "field_too_long"),
        # Another producer's field names through the default aliases, epoch milliseconds.
        (
            json.dumps(
                {"visitorid": 42, "itemid": 7, "event": "addtocart", "timestamp": DAY_MS - 10}
            ).encode(),
            None,
        ),
    ]
    _produce(broker.bootstrap, topic, [v for v, _ in cases], partitions=1)
    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    wh.migrate()
    report = _ingest(wh, _settings(broker, topic, batch_size=16))  # 3 batches
    assert report.messages == len(cases)
    accepted = _query(wh, "SELECT * FROM kafka_events ORDER BY kafka_offset")
    quarantined = _query(wh, "SELECT * FROM quarantine ORDER BY line_no")
    expected_ok = [i for i, (_, reason) in enumerate(cases) if reason is None]
    assert accepted["kafka_offset"].tolist() == expected_ok
    assert len(accepted) + len(quarantined) == len(cases)
    assert quarantined["line_no"].tolist() == [i for i, (_, r) in enumerate(cases) if r]
    for offset, reason in zip(quarantined["line_no"], quarantined["reason"], strict=True):
        assert reason.startswith(cases[offset][1]), (offset, reason)
    assert set(quarantined["source_file"]) == {f"kafka://{topic}/0"}
    assert set(quarantined["stage"]) == {"kafka"}
    assert set(accepted["dt"]) == {DAY}
    assert sql_text in accepted["item_id"].tolist()
    assert accepted["user_id"].str.startswith("u_").all()
    assert set(accepted.loc[accepted["item_id"] == "7", "event_type"]) == {"add_to_cart"}
    # No raw personal value anywhere: neither in rows nor in quarantined payloads.
    everything = accepted.astype(str).to_csv() + quarantined.astype(str).to_csv()
    assert "raw-user-" not in everything and "alice@example.com" not in everything
    # Re-reading changes nothing: offsets are stored.
    assert _ingest(wh, _settings(broker, topic)).messages == 0
    assert len(_query(wh, "SELECT * FROM kafka_events")) == len(accepted)


# ----- faults -------------------------------------------------------------------------------


def test_broker_that_stops_answering_fails_loudly_and_a_rerun_completes(
    broker: DevBroker, tmp_path: Path
) -> None:
    topic = "frozen"
    n = 20_000
    _produce(broker.bootstrap, topic, [json.dumps(_event(i)).encode() for i in range(n)], 2)
    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    wh.migrate()
    assert broker.process is not None
    pid = broker.process.pid

    def freeze_after_first(_batch: object) -> None:
        os.kill(pid, signal.SIGSTOP)  # the broker is alive but answers nothing

    try:
        with pytest.raises(KafkaIngestError, match="not answering.*re-run"):
            _ingest(
                wh,
                _settings(
                    broker,
                    topic,
                    batch_size=2000,
                    stall_timeout_s=3,
                    # small fetches, so the client has not prefetched the whole topic
                    client_config={
                        "max.partition.fetch.bytes": "32768",
                        "queued.max.messages.kbytes": "64",
                    },
                ),
                on_batch=freeze_after_first,
            )
    finally:
        os.kill(pid, signal.SIGCONT)
    partial = _query(wh, "SELECT COUNT(*) AS n FROM kafka_events")["n"].iloc[0]
    assert 2000 <= partial < n
    assert partial == sum(_offsets(wh, topic).values())
    _ingest(wh, _settings(broker, topic))
    totals = _query(wh, "SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids FROM kafka_events")
    assert totals.iloc[0].tolist() == [n, n]


def test_unreachable_broker_fails_with_what_to_do(tmp_path: Path) -> None:
    from flywheel_assets.platform.dev_broker import free_port

    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    wh.migrate()
    settings = KafkaSettings(
        f"127.0.0.1:{free_port()}",
        "t",
        client_config={"socket.connection.setup.timeout.ms": "1000"},
    )
    with pytest.raises(KafkaIngestError, match="FLYWHEEL_KAFKA_BOOTSTRAP"):
        _ingest(wh, settings)


# ----- through Dagster --------------------------------------------------------------------


def test_kafka_events_asset_feeds_raw_events_and_accounting(
    broker: DevBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The asset reads the topic; raw_events of the day takes the topic's rows with the
    landing files'; an event in both is accepted once; every row is accounted for."""
    from flywheel_assets.defs.ingestion.assets import catalog_items, raw_events
    from flywheel_assets.defs.ingestion.kafka import kafka_events
    from flywheel_assets.defs.quality.assets import accepted_events
    from flywheel_assets.defs.quality.checks import accepted_events_accounted, raw_events_accounted
    from flywheel_assets.defs.resources import resources

    topic = "dagster-events"
    home = tmp_path / "home"
    landing = home / "landing"
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    monkeypatch.setenv("FLYWHEEL_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("FLYWHEEL_KAFKA_BOOTSTRAP", broker.bootstrap)
    monkeypatch.setenv("FLYWHEEL_KAFKA_TOPIC", topic)
    monkeypatch.delenv("FLYWHEEL_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("FLYWHEEL_LANDING_DIR", raising=False)
    catalog = landing / "catalog" / f"dt={DAY}"
    catalog.mkdir(parents=True)
    (catalog / "items.jsonl").write_text(
        "\n".join(
            json.dumps({"item_id": f"i{k}", "category": "c", "price": 1.0}) for k in range(40)
        )
    )
    files = landing / "events" / f"dt={DAY}"
    files.mkdir(parents=True)
    (files / "a.jsonl").write_text("\n".join(json.dumps(_event(i)) for i in range(0, 60)))
    # Offsets 0..99 on the topic: e50..e149, so e50..e59 arrive by file and by topic.
    _produce(
        broker.bootstrap,
        topic,
        [json.dumps(_event(i)).encode() for i in range(50, 150)] + [b"{broken"],
        partitions=2,
    )
    instance = dg.DagsterInstance.ephemeral()
    res = dg.materialize([kafka_events], resources=resources(), instance=instance)
    meta = res.asset_materializations_for_node("kafka_events")[0].metadata
    assert meta["messages_read"].value == 101 and meta["messages_quarantined"].value == 1
    assert meta["days"].value == [DAY.isoformat()]
    # Each committed batch is also observed, so a run failing later still reports its days.
    observed = instance.fetch_observations(kafka_events.key, limit=10).records
    assert observed and all(
        r.asset_observation.metadata["days"].value == [DAY.isoformat()] for r in observed
    )

    run = dg.materialize(
        [
            catalog_items,
            raw_events,
            accepted_events,
            raw_events_accounted,
            accepted_events_accounted,
        ],
        partition_key=DAY.isoformat(),
        resources=resources(),
        instance=instance,
    )
    assert run.success
    checks = run.get_asset_check_evaluations()
    assert len(checks) == 2 and all(c.passed for c in checks)
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    events = _query(wh, "SELECT event_id FROM events")
    assert sorted(events["event_id"]) == sorted(f"e{i}" for i in range(150))
    counts = _query(
        wh,
        "SELECT stage, reason, COUNT(*) AS n FROM quarantine GROUP BY stage, reason ORDER BY stage",
    )
    assert counts.to_dict("records") == [
        {"stage": "kafka", "reason": counts["reason"].iloc[0], "n": 1},
        {"stage": "quality", "reason": "duplicate_event_id", "n": 10},
    ]
    files_log = _query(
        wh, "SELECT path, fmt, rows_read FROM ingested_files WHERE source = 'events'"
    )
    assert files_log["rows_read"].sum() == 60 + 101
    assert set(files_log["fmt"]) == {"jsonl", "kafka"}


def test_warehouse_going_away_mid_ingest_fails_loudly_and_a_rerun_completes(
    broker: DevBroker, pg_database: str
) -> None:
    """PostgreSQL refuses the warehouse database after the first batch (connections cut, new
    ones refused): the run stops saying what to do; once it is back, a rerun completes."""
    from flywheel_tests.support.environment import PG_ADMIN_URL

    topic = "db-outage"
    n = 12_000
    _produce(broker.bootstrap, topic, [json.dumps(_event(i)).encode() for i in range(n)], 2)
    wh = Warehouse(pg_database)
    wh.migrate()
    db = sa.engine.make_url(pg_database).database
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def outage(_batch: object) -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false'))
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": db},
            )

    try:
        with pytest.raises(KafkaIngestError, match="warehouse failed.*re-run the ingest"):
            _ingest(wh, _settings(broker, topic, batch_size=3000), on_batch=outage)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    wh.dispose()
    wh = Warehouse(pg_database)
    partial = _query(wh, "SELECT COUNT(*) AS n FROM kafka_events")["n"].iloc[0]
    assert partial == 3000 == sum(_offsets(wh, topic).values())
    _ingest(wh, _settings(broker, topic))
    totals = _query(wh, "SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids FROM kafka_events")
    assert totals.iloc[0].tolist() == [n, n]
    wh.dispose()


def test_stored_offset_beyond_the_topic_stops_instead_of_skipping(
    broker: DevBroker, tmp_path: Path
) -> None:
    """What a recreated or truncated topic looks like: stored offsets past its end. The run
    must fail saying so, not restart somewhere and silently skip messages."""
    topic = "recreated"
    _produce(broker.bootstrap, topic, [json.dumps(_event(i)).encode() for i in range(10)], 1)
    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    wh.migrate()
    assert _ingest(wh, _settings(broker, topic)).messages == 10
    with wh.begin() as conn:
        conn.execute(sa.text("UPDATE kafka_offsets SET next_offset = 5000"))
    with pytest.raises(KafkaIngestError, match="recreated or truncated"):
        _ingest(wh, _settings(broker, topic, stall_timeout_s=10))


@pytest.mark.long  # two 2-day demos (a minute and more): .ci/run's second run, not the README's
def test_the_loop_through_kafka_trains_the_same_models_as_through_files(tmp_path, clean_env):
    """The demo with its events sent through a real broker instead of files: the same rows
    are accepted and the same (content-addressed) models come out, day after day."""
    from flywheel_assets.simulation.demo import COLUMNS, run_demo
    from flywheel_assets.simulation.simulator import SimulatorConfig

    small = SimulatorConfig(
        seed=5, n_users=1_500, n_items=200, sessions_per_day=250, new_users_per_day=20
    )
    start = dt.date(2026, 7, 1)
    files = run_demo(days=2, seed=5, start=start, home=tmp_path / "files", config=small)
    topic = run_demo(days=2, seed=5, start=start, home=tmp_path / "kafka", config=small, kafka=True)
    # every column up to the decision: what the shop did and what the flywheel made of it
    keys = COLUMNS[: COLUMNS.index("decision") + 1]
    assert [{k: r[k] for k in keys} for r in topic] == [{k: r[k] for k in keys} for r in files]
    assert all(r["read"] > 0 for r in topic)
    wh = Warehouse(f"duckdb:///{tmp_path / 'kafka' / 'warehouse.duckdb'}")
    sources = _query(wh, "SELECT DISTINCT fmt FROM ingested_files WHERE source = 'events'")
    assert sources["fmt"].tolist() == ["kafka"]  # no event file was involved


def test_batches_get_ever_later_stamps_even_with_a_pinned_clock(broker: DevBroker, tmp_path: Path):
    """raw_events copies a day's Kafka rows up to the newest batch stamp: stamps must grow
    from batch to batch, or a batch committed later could hide below the watermark."""
    topic = "stamps"
    _produce(broker.bootstrap, topic, [json.dumps(_event(i)).encode() for i in range(30)], 1)
    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    wh.migrate()
    _ingest(wh, _settings(broker, topic, batch_size=10), max_messages=20)  # NOW is pinned
    _ingest(wh, _settings(broker, topic, batch_size=10))
    stamps = _query(wh, "SELECT consumed_at FROM kafka_batches ORDER BY first_offset")
    values = stamps["consumed_at"].tolist()
    assert len(values) == 3 and values == sorted(values) and len(set(values)) == 3
