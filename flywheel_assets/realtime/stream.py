"""`flywheel stream`: the events topic into the shared online store, with Quix Streams.

Events that never pass through a ranking service replica (a shop's own tracking, another
service writing to the topic) reach the Redis store through this worker. It is a Quix Streams
application: the topic's partitions are shared among the workers of one consumer group, so you
scale it by running more of them, one per partition at most (docs/realtime.md).

Each checkpoint hands the new messages to :class:`OnlineStoreSink` in batches:
- **Contract.** The sink reads them as ingestion reads the topic: `parse_json_messages`, then
  `normalise_events`, with the same pseudonymisation. So only what ingestion would accept is
  counted.
- **Rejected messages.** They are counted by reason and logged. Their quarantine of record,
  with payload and reason, is ingestion's, which reads the same topic (`kafka_events`).
- **Accepted rows.** They are applied to the store. Quix commits the offsets only after the
  sink has written.
- **At least once.** A worker killed after writing but before committing re-reads those
  messages, and the store ignores ids it has seen. Nothing is lost, nothing counts twice.
- **Store down.** The sink asks Quix to back off (`SinkBackpressureError`): the partition
  pauses, and the batch is read again from the last commit.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from quixstreams import Application
from quixstreams.sinks import BatchingSink, SinkBackpressureError, SinkBatch

from flywheel_assets.ingestion.contract import normalise_events
from flywheel_assets.ingestion.landing import parse_json_messages
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.realtime.redis_store import OnlineStoreUnavailable, RedisSessionStore

log = logging.getLogger(__name__)

CONSUMER_GROUP = "flywheel-online-store"
# The worker's own columns of an accepted event: what the store reads.
APPLIED = ["event_id", "event_type", "event_time", "user_id", "session_id", "item_id"]


@dataclass
class StreamCounts:
    messages: int = 0
    applied: int = 0
    duplicates: int = 0
    rejected: collections.Counter[str] = field(default_factory=collections.Counter)
    store_failures: int = 0


class OnlineStoreSink(BatchingSink):
    """A checkpoint's messages of one partition, validated, into the online store."""

    def __init__(
        self,
        store: RedisSessionStore,
        pseudonymiser: Pseudonymiser,
        *,
        max_lateness: dt.timedelta | None = None,
        future_tolerance: dt.timedelta = dt.timedelta(hours=1),
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.pseudonymiser = pseudonymiser
        self.max_lateness = max_lateness
        self.future_tolerance = future_tolerance
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))
        self.counts = StreamCounts()

    def write(self, batch: SinkBatch) -> None:
        values = [item.value for item in batch]
        records, bad = parse_json_messages(values)
        now = self.clock()
        today = dt.datetime.combine(now.date(), dt.time())
        norm = normalise_events(
            records,
            pseudonymiser=self.pseudonymiser,
            partition_start=today,
            partition_end=today + dt.timedelta(days=1),
            now=now,
            future_tolerance=self.future_tolerance,
            max_lateness=self.max_lateness,
        )
        seen = self.store.duplicates
        try:
            new = self.store.apply(norm.accepted[APPLIED].to_dict("records"))
        except OnlineStoreUnavailable as exc:
            self.counts.store_failures += 1
            log.error("online store unavailable; backing off and re-reading: %s", exc)
            raise SinkBackpressureError(retry_after=1.0) from exc
        self.counts.messages += len(values)
        self.counts.applied += new
        self.counts.duplicates += self.store.duplicates - seen
        reasons = [*bad["reason"].astype(str), *norm.rejected["reason"].astype(str)]
        # a redelivery inside the batch is a duplicate, not bad input (as at ingestion)
        redelivered = sum(r == "duplicate_event_id" for r in reasons)
        self.counts.duplicates += redelivered
        reasons = [r for r in reasons if r != "duplicate_event_id"]
        for reason in reasons:
            self.counts.rejected[reason.split(":")[0]] += 1
        if reasons:
            log.warning(
                "%s message(s) of %s[%s] not applied (ingestion quarantines them): %s",
                len(reasons), batch.topic, batch.partition, dict(collections.Counter(reasons)),
            )  # fmt: skip


def build_app(
    bootstrap: str,
    topic: str,
    sink: OnlineStoreSink,
    *,
    consumer_group: str = CONSUMER_GROUP,
    client_config: dict[str, str] | None = None,
    commit_interval: float = 0.2,
    state_dir: str | None = None,
    loglevel: str = "WARNING",
) -> Application:
    """The Quix application: the topic's raw messages into ``sink``. It keeps no state of its
    own (no changelog topics); the store is the state. The sink writes at each checkpoint, so
    ``commit_interval`` bounds how stale the store may be (bench/realtime measures it)."""
    app = Application(
        broker_address=bootstrap,
        consumer_group=consumer_group,
        auto_offset_reset="earliest",
        commit_interval=commit_interval,
        use_changelog_topics=False,
        auto_create_topics=False,
        # A killed worker's partitions move to the others after 6 s, not librdkafka's 45 s.
        consumer_extra_config={
            **(client_config or {}),
            "session.timeout.ms": "6000",
            "heartbeat.interval.ms": "500",
            # Freshness over fetch efficiency: the broker answers within 50 ms, not 500.
            "fetch.wait.max.ms": "50",
        },
        producer_extra_config=client_config or {},
        state_dir=state_dir,
        loglevel=loglevel,
    )
    source = app.topic(topic, value_deserializer="bytes", key_deserializer="bytes")
    app.dataframe(source).sink(sink)
    return app
