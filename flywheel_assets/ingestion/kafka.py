"""Exactly-once ingestion of a Kafka topic of behaviour events into the warehouse.

Offsets live in the warehouse (``kafka_offsets``), written in the same transaction as the rows
they cover; Kafka's own consumer-group commits are not used for correctness. A run reads from
the stored offsets up to the end the topic had when the run started, in batches; each batch is
one transaction. Killed anywhere, a run leaves every batch either fully in or fully out, and the
next run starts exactly where the last committed batch ended.

Messages are JSON objects in the event contract (docs/events.md); anything else goes to
``quarantine`` with the topic partition and offset, like a bad line of a landing file.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flywheel_assets.ingestion.contract import FieldMap, normalise_events, scrub_bad_lines
from flywheel_assets.ingestion.landing import LINE_NO, parse_json_messages, storable_text
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.warehouse import DATABASE_ERRORS, Warehouse, load_sql

QUARANTINE_STAGE = "kafka"


class KafkaIngestError(RuntimeError):
    """Ingestion cannot go on; the message says what is committed and what to do."""


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    topic: str
    consumer: str = "flywheel"
    batch_size: int = 50_000
    poll_timeout_s: float = 1.0
    # No message for this long while the topic end is not reached: the broker is gone.
    stall_timeout_s: float = 30.0
    # Extra librdkafka settings (security.protocol, sasl.*, ssl.*), passwords included.
    client_config: dict[str, str] = field(default_factory=dict)

    def consumer_config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap_servers,
            # Required by librdkafka; offsets are never committed to it (we assign partitions).
            "group.id": f"flywheel-{self.consumer}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            # A stored offset the topic no longer has (recreated, truncated, retention) must
            # stop the run, never silently restart from another position.
            "auto.offset.reset": "error",
            # Large batches: fetch a lot per request.
            "fetch.max.bytes": 64 * 1024 * 1024,
            "queued.max.messages.kbytes": 256 * 1024,
            **self.client_config,
        }


@dataclass(frozen=True)
class BatchResult:
    messages: int
    accepted: int
    quarantined: int
    days: dict[dt.date, int]  # messages per day
    offsets: dict[int, tuple[int, int]]  # partition -> (first, next)


@dataclass
class IngestReport:
    topic: str
    batches: list[BatchResult] = field(default_factory=list)
    start_offsets: dict[int, int] = field(default_factory=dict)
    end_offsets: dict[int, int] = field(default_factory=dict)
    next_offsets: dict[int, int] = field(default_factory=dict)

    @property
    def messages(self) -> int:
        return sum(b.messages for b in self.batches)

    @property
    def accepted(self) -> int:
        return sum(b.accepted for b in self.batches)

    @property
    def quarantined(self) -> int:
        return sum(b.quarantined for b in self.batches)

    def days(self) -> dict[dt.date, int]:
        out: dict[dt.date, int] = {}
        for b in self.batches:
            for day, n in b.days.items():
                out[day] = out.get(day, 0) + n
        return dict(sorted(out.items()))

    @property
    def lag(self) -> int:
        return sum(
            max(0, self.end_offsets[p] - self.next_offsets.get(p, 0)) for p in self.end_offsets
        )

    def offsets_frame(self) -> pd.DataFrame:
        """Per topic partition: the offset read from, the next one to read, and the topic's
        end when the run started."""
        parts = list(self.end_offsets)
        return pd.DataFrame(
            {
                "partition": parts,
                "from": [self.start_offsets[p] for p in parts],
                "to (next)": [self.next_offsets[p] for p in parts],
                "topic end at start": list(self.end_offsets.values()),
            }
        )


@dataclass(frozen=True)
class _Message:
    partition: int
    offset: int
    timestamp_ms: int | None
    value: bytes | None


def stored_offsets(wh: Warehouse, consumer: str, topic: str) -> dict[int, int]:
    with wh.begin() as conn:
        df = wh.query_df(
            conn, load_sql("ingestion/kafka/stored_offsets"), consumer=consumer, topic=topic
        )
    return {int(p): int(o) for p, o in zip(df["kafka_partition"], df["next_offset"], strict=True)}


def ingest_topic(
    settings: KafkaSettings,
    wh: Warehouse,
    pseudonymiser: Pseudonymiser,
    *,
    field_map: FieldMap | None = None,
    future_tolerance: dt.timedelta = dt.timedelta(hours=1),
    max_lateness: dt.timedelta | None = None,
    max_messages: int | None = None,
    earliest_day: dt.date | None = None,
    now: Callable[[], dt.datetime] | None = None,
    on_batch: Callable[[BatchResult], None] | None = None,
) -> IngestReport:
    """Consume ``settings.topic`` from the stored offsets to the end it has now.

    ``max_messages`` bounds one run (the rest waits for the next run). ``now`` gives naive
    UTC wall time (tests pin it); an event after ``now`` + tolerance is ``future_event``.
    Each message lands in the day of its broker timestamp, kept between ``earliest_day`` (the
    first daily partition) and today.
    """
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    clock = now or _utcnow
    report = IngestReport(settings.topic)
    try:
        consumer = Consumer(settings.consumer_config())
    except KafkaException as exc:
        raise KafkaIngestError(
            f"cannot create a Kafka consumer for {settings.bootstrap_servers}: {exc}. "
            "Check the kafka resource's settings (FLYWHEEL_KAFKA_*)."
        ) from exc
    try:
        partitions = _partitions(consumer, settings)
        stored = stored_offsets(wh, settings.consumer, settings.topic)
        assignments = []
        for p in partitions:
            tp = TopicPartition(settings.topic, p)
            try:
                low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            except KafkaException as exc:
                raise KafkaIngestError(_broker_problem(settings, exc)) from exc
            start = stored.get(p, low)
            if start < low:
                raise KafkaIngestError(
                    f"{settings.topic}[{p}]: stored offset {start} is older than the topic's "
                    f"first retained offset {low}: messages {start}..{low - 1} were deleted by "
                    "retention before flywheel read them. They are lost upstream; to go on, "
                    "record the gap in the audit trail and set the stored offset to "
                    f"{low} (kafka_offsets)."
                )
            report.start_offsets[p] = start
            report.end_offsets[p] = high
            report.next_offsets[p] = start
            # Every partition is assigned, even one that looks read to the end: some brokers
            # (Tansu) answer ListOffsets with a stale end; the fetch's own high watermark and
            # end-of-partition events are what decide (see _batches).
            assignments.append(TopicPartition(settings.topic, p, start))
        consumer.assign(assignments)
        budget = max_messages if max_messages is not None else sys.maxsize
        # Commit stamps only ever grow, even if the wall clock steps back (or a test pins it).
        last_stamp = _last_stamp(wh)
        for batch in _batches(consumer, settings, report, budget):
            result = _commit_batch(
                wh,
                settings,
                batch,
                report.next_offsets,
                pseudonymiser,
                field_map=field_map,
                future_tolerance=future_tolerance,
                max_lateness=max_lateness,
                earliest_day=earliest_day,
                now=(wall := clock()),
                stamp=(last_stamp := max(wall, last_stamp + _TICK)),
            )
            for p, (_, nxt) in result.offsets.items():
                report.next_offsets[p] = nxt
            report.batches.append(result)
            if on_batch is not None:
                on_batch(result)
    finally:
        consumer.close()
    return report


_TICK = dt.timedelta(microseconds=1)


def _last_stamp(wh: Warehouse) -> dt.datetime:
    with wh.begin() as conn:
        last = wh.scalar(conn, load_sql("ingestion/kafka/last_stamp"))
    return pd.Timestamp(last).to_pydatetime() if last is not None else dt.datetime.min


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _arrival_days(
    batch: list[_Message],
    now: dt.datetime,
    future_tolerance: dt.timedelta,
    earliest_day: dt.date | None,
) -> np.ndarray:
    """The day each message arrived: its timestamp's UTC day. Producers can set timestamps, so
    one in the future (beyond the tolerance) or missing counts as now, and one before the first
    partition as that partition, so every row lands in a day some partition reads."""
    now_ms = int(now.replace(tzinfo=dt.UTC).timestamp() * 1000)
    limit_ms = now_ms + int(future_tolerance.total_seconds() * 1000)
    stamps = np.array(
        [now_ms if m.timestamp_ms is None else m.timestamp_ms for m in batch], dtype=np.int64
    )
    stamps[stamps > limit_ms] = now_ms
    days = stamps.astype("datetime64[ms]").astype("datetime64[D]")
    if earliest_day is not None:
        days = np.maximum(days, np.datetime64(earliest_day, "D"))
    return np.minimum(days, np.datetime64(now.date(), "D"))


def _broker_problem(settings: KafkaSettings, exc: BaseException) -> str:
    return (
        f"Kafka broker {settings.bootstrap_servers} (topic {settings.topic}) is not answering: "
        f"{exc}. Nothing after the stored offsets was committed; start the broker or fix "
        "FLYWHEEL_KAFKA_BOOTSTRAP, then re-run the ingest."
    )


def _partitions(consumer: Any, settings: KafkaSettings) -> list[int]:
    from confluent_kafka import KafkaException

    try:
        meta = consumer.list_topics(settings.topic, timeout=10)
    except KafkaException as exc:
        raise KafkaIngestError(_broker_problem(settings, exc)) from exc
    topic = meta.topics.get(settings.topic)
    if topic is None or topic.error is not None or not topic.partitions:
        problem = topic.error if topic is not None else "not in the cluster metadata"
        raise KafkaIngestError(
            f"topic {settings.topic!r} is not readable on {settings.bootstrap_servers}: "
            f"{problem}. Create the topic or fix FLYWHEEL_KAFKA_TOPIC."
        )
    return sorted(topic.partitions)


def _batches(
    consumer: Any, settings: KafkaSettings, report: IngestReport, budget: int
) -> Iterator[list[_Message]]:
    """Messages from the stored offsets to the end each partition had when this run first
    fetched from it, ``batch_size`` at a time. A partition is done at its end-of-partition
    event or at the first message beyond that end (then it is paused: the next run reads on)."""
    from confluent_kafka import KafkaError, TopicPartition

    ends = report.end_offsets  # raised to the fetch's high watermark below
    position = dict(report.next_offsets)
    done: set[int] = set()
    seen: set[int] = set()
    taken = 0
    pending: list[_Message] = []
    last_progress = time.monotonic()

    def finish(p: int) -> None:
        done.add(p)
        consumer.pause([TopicPartition(settings.topic, p)])

    while len(done) < len(ends) and taken < budget:
        want = min(settings.batch_size - len(pending), budget - taken)
        msgs = consumer.consume(num_messages=max(1, want), timeout=settings.poll_timeout_s)
        progressed = False
        for m in msgs:
            err = m.error()
            p = m.partition()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    # Everything there is has been read (offsets past the last message may be
                    # transaction markers: the next run starts from the last message + 1).
                    ends[p] = max(ends[p], m.offset())
                    if p not in done:
                        finish(p)
                    progressed = True
                    continue
                if err.code() == KafkaError._AUTO_OFFSET_RESET:
                    raise KafkaIngestError(_offset_outside(settings, p, position.get(p), err.str()))
                if err.fatal() or not err.retriable():
                    raise KafkaIngestError(_broker_problem(settings, err.str()))
                continue
            if p in done or taken >= budget:
                continue
            if p not in seen:
                seen.add(p)
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(settings.topic, p), cached=True
                )
                ends[p] = max(ends[p], high)
            off = m.offset()
            if off < position[p]:
                continue  # a re-fetch of what this run already has
            if off >= ends[p]:
                finish(p)
                continue
            ts_type, ts = m.timestamp()
            pending.append(_Message(p, off, ts if ts_type != 0 and ts >= 0 else None, m.value()))
            position[p] = off + 1
            taken += 1
            progressed = True
            if position[p] >= ends[p]:
                finish(p)
        if progressed:
            last_progress = time.monotonic()
        if pending and (len(pending) >= settings.batch_size or taken >= budget or not msgs):
            yield pending
            pending = []
        if not msgs and time.monotonic() - last_progress > settings.stall_timeout_s:
            _raise_if_offsets_beyond_end(consumer, settings, position, set(ends) - done)
            raise KafkaIngestError(
                _broker_problem(
                    settings,
                    f"no answer for {settings.stall_timeout_s:.0f} s while partitions "
                    f"{sorted(set(ends) - done)} were not read to their end",
                )
            )
    if pending:
        yield pending


def _offset_outside(settings: KafkaSettings, p: int, offset: int | None, detail: str) -> str:
    return (
        f"{settings.topic}[{p}]: the stored offset {offset} is outside the topic's offsets "
        f"({detail}): the topic was recreated or truncated, or retention deleted messages "
        "before flywheel read them. Nothing was skipped silently; decide what is right (a new "
        "topic: delete its rows from kafka_offsets; lost messages: record the gap), then re-run."
    )


def _raise_if_offsets_beyond_end(
    consumer: Any, settings: KafkaSettings, position: dict[int, int], waiting: set[int]
) -> None:
    """Some brokers answer a fetch beyond the end with silence instead of OFFSET_OUT_OF_RANGE:
    when stalled, compare the position with the partition's end."""
    from confluent_kafka import KafkaException, TopicPartition

    for p in sorted(waiting):
        tp = TopicPartition(settings.topic, p)
        try:
            _, listed = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
        except KafkaException:
            return  # the broker itself is gone: the caller says so
        _, fetched = consumer.get_watermark_offsets(tp, cached=True)
        end = max(listed, fetched)
        if position[p] > end:
            raise KafkaIngestError(_offset_outside(settings, p, position[p], f"end is {end}"))


def _commit_batch(
    wh: Warehouse,
    settings: KafkaSettings,
    batch: list[_Message],
    next_offsets: dict[int, int],
    pseudonymiser: Pseudonymiser,
    *,
    field_map: FieldMap | None,
    future_tolerance: dt.timedelta,
    max_lateness: dt.timedelta | None,
    earliest_day: dt.date | None,
    now: dt.datetime,
    stamp: dt.datetime,
) -> BatchResult:
    """Normalise one batch and write rows, quarantine, batch log and offsets in one
    transaction. ``now`` judges the events; ``stamp`` (later than every earlier batch's) marks
    the rows, so raw_events' watermark separates batches exactly."""
    records, bad = parse_json_messages([m.value for m in batch])
    parts = np.array([m.partition for m in batch], dtype=np.int64)
    offsets = np.array([m.offset for m in batch], dtype=np.int64)
    days = _arrival_days(batch, now, future_tolerance, earliest_day)
    # Row i of `records`/`bad` is message line_no - 1.
    rec_idx = records[LINE_NO].to_numpy(dtype=np.int64) - 1
    bad_idx = bad["line_no"].to_numpy(dtype=np.int64) - 1
    if not bad.empty:
        bad = scrub_bad_lines(bad, pseudonymiser=pseudonymiser, field_map=field_map)

    accepted_frames: list[pd.DataFrame] = []
    rejected_frames: list[pd.DataFrame] = []
    log_rows: list[dict[str, Any]] = []
    day_counts: dict[dt.date, int] = {}
    # One contract pass per day (not per partition): distinct users are pseudonymised once.
    # Line numbers stay message numbers (1-based in the batch) until mapped to offsets.
    for day64 in np.unique(days):
        day = pd.Timestamp(day64).date()
        start = dt.datetime.combine(day, dt.time())
        in_day = days == day64
        norm = normalise_events(
            records[in_day[rec_idx]],
            pseudonymiser=pseudonymiser,
            partition_start=start,
            partition_end=start + dt.timedelta(days=1),
            now=now,
            future_tolerance=future_tolerance,
            max_lateness=max_lateness,
            field_map=field_map,
        )
        acc_msg = records[LINE_NO].reindex(norm.accepted.index).to_numpy(dtype=np.int64) - 1
        accepted_frames.append(
            norm.accepted.assign(
                dt=day,
                topic=settings.topic,
                kafka_partition=parts[acc_msg].astype("int32"),
                kafka_offset=offsets[acc_msg],
                consumed_at=stamp,
            )
        )
        rejected = pd.concat([bad[in_day[bad_idx]], norm.rejected], ignore_index=True)
        rej_msg = rejected["line_no"].to_numpy(dtype=np.int64) - 1
        rejected_frames.append(
            pd.DataFrame(
                {
                    "dt": day,
                    "source": "events",
                    "stage": QUARANTINE_STAGE,
                    "source_file": [f"kafka://{settings.topic}/{int(q)}" for q in parts[rej_msg]],
                    "line_no": offsets[rej_msg],
                    # storable already (the contract's promise); checked at the door too
                    "reason": [storable_text(str(r)) for r in rejected["reason"]],
                    "payload": [storable_text(str(p)) for p in rejected["payload"]],
                    "quarantined_at": stamp,
                }
            )
        )
        day_counts[day] = int(in_day.sum())
        for q in np.unique(parts[in_day]):
            in_part = in_day & (parts == q)
            log_rows.append(
                {
                    "dt": day,
                    "consumer": settings.consumer,
                    "topic": settings.topic,
                    "kafka_partition": int(q),
                    "first_offset": int(offsets[in_part].min()),
                    "last_offset": int(offsets[in_part].max()),
                    "rows_read": int(in_part.sum()),
                    "rows_accepted": int((parts[acc_msg] == q).sum()),
                    "rows_quarantined": int((parts[rej_msg] == q).sum()),
                    "consumed_at": stamp,
                }
            )
    accepted = pd.concat(accepted_frames, ignore_index=True)
    quarantined = pd.concat(rejected_frames, ignore_index=True)
    new_offsets = {int(p): int(offsets[parts == p].max()) + 1 for p in np.unique(parts)}
    try:
        _write_batch(
            wh, settings, next_offsets, new_offsets, accepted, quarantined, log_rows, stamp
        )
    except DATABASE_ERRORS as exc:
        spans = ", ".join(f"[{p}] {next_offsets[p]}..{nxt - 1}" for p, nxt in new_offsets.items())
        raise KafkaIngestError(
            f"the warehouse failed while committing {settings.topic} offsets {spans}: "
            f"{str(exc).splitlines()[0]}. That batch was rolled back as a whole (rows and "
            "offsets are one transaction); re-run the ingest when the warehouse is back and it "
            "continues from the stored offsets."
        ) from exc
    return BatchResult(
        messages=len(batch),
        accepted=len(accepted),
        quarantined=len(quarantined),
        days=day_counts,
        offsets={p: (next_offsets[p], nxt) for p, nxt in new_offsets.items()},
    )


def _write_batch(
    wh: Warehouse,
    settings: KafkaSettings,
    next_offsets: dict[int, int],
    new_offsets: dict[int, int],
    accepted: pd.DataFrame,
    quarantined: pd.DataFrame,
    log_rows: list[dict[str, Any]],
    now: dt.datetime,
) -> None:
    with wh.begin() as conn:
        for p, nxt in new_offsets.items():
            keys = {"consumer": settings.consumer, "topic": settings.topic, "kafka_partition": p}
            moved = wh.run(
                conn,
                "ingestion/kafka/advance_offset",
                next_offset=nxt,
                now=now,
                expected=next_offsets[p],
                **keys,
            )
            if moved == 0:
                exists = wh.scalar(conn, load_sql("ingestion/kafka/offset_exists"), **keys)
                if exists:
                    raise KafkaIngestError(
                        f"{settings.topic}[{p}]: the stored offset moved while this batch was "
                        "read: another flywheel consumer with the same name is running. "
                        "Run one ingest at a time (the kafka_ingest job's concurrency pool); "
                        "nothing of this batch was committed."
                    )
                wh.run(conn, "ingestion/kafka/insert_offset", next_offset=nxt, now=now, **keys)
        if not accepted.empty:
            wh.insert_df(conn, "kafka_events", accepted)
        if not quarantined.empty:
            wh.insert_df(conn, "quarantine", quarantined)
        wh.insert_df(conn, "kafka_batches", pd.DataFrame(log_rows))
