"""Where the ranking service logs what it showed and the feedback it received: the landing
folder (JSON Lines files the landing sensor ingests) or a Kafka topic (read by the
``kafka_events`` asset). Either way the events are in the event contract (docs/events.md), so
they are the next cycle's input.

Landing files are appended as requests come (one write per request, no buffering in the
process) under a ``.part`` name and published by renaming when they rotate, so the sensor
never reads half a file; a ``.part`` left by a process that died is published by the next
service started on the same host: a writer holds an exclusive lock on its open file, so a file
nobody holds is an orphan, whatever its name's process id (pids are reused across restarts).
Kafka deliveries that fail, or that find the producer's queue full, fall back to landing files.
What stays at risk with Kafka: events queued in the producer (at most ``linger.ms`` plus
in-flight requests) when the process is killed outright.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

PART_SUFFIX = ".jsonl.part"
PREFIX = "serve-"


class EventSink(Protocol):
    def write(self, events: Sequence[dict]) -> None: ...

    def tick(self) -> None:
        """Called about once a second by the service: rotate files, serve callbacks."""

    def close(self) -> None: ...


def encode(event: dict) -> bytes:
    return (json.dumps(event, separators=(",", ":"), default=str) + "\n").encode()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class LandingSink:
    """JSON Lines under ``<landing_dir>/<source>/dt=<UTC day of arrival>/`` (``events``; the
    service's request log uses ``requests``)."""

    def __init__(
        self,
        landing_dir: Path,
        *,
        source: str = "events",
        rotate_seconds: float = 300.0,
        max_rows: int = 200_000,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.landing_dir = Path(landing_dir)
        self.source = source
        self.rotate_seconds = rotate_seconds
        self.max_rows = max_rows
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.host = socket.gethostname().replace("-", "_")[:40] or "host"
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._day: dt.date | None = None
        self._opened = 0.0
        self._rows = 0
        self._seq = 0
        self.published: list[Path] = []
        self.recovered = self.recover()

    def recover(self) -> list[Path]:
        """Publish ``.part`` files of this host that no live writer holds (its lock is gone with
        its process); empty ones are removed."""
        root = self.landing_dir / self.source
        done: list[Path] = []
        if not root.is_dir():
            return done
        for part in sorted(root.glob(f"dt=*/{PREFIX}{self.host}-*{PART_SUFFIX}")):
            try:
                fd = os.open(part, os.O_RDONLY)
            except FileNotFoundError:
                continue  # another worker recovered it first
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # a live service is writing it
            try:
                st = os.fstat(fd)
                if st.st_size == 0:
                    # An empty file may be one a writer has just created and not yet locked:
                    # only an old one is an orphan.
                    if time.time() - st.st_mtime > 60:
                        part.unlink(missing_ok=True)
                    continue
                final = part.with_name(part.name.removesuffix(".part"))
                part.rename(final)
                done.append(final)
                log.warning("published %s, left behind by a service process that ended", final)
            except FileNotFoundError:
                continue
            finally:
                os.close(fd)
        return done

    def write(self, events: Sequence[dict]) -> None:
        if not events:
            return
        data = b"".join(encode(e) for e in events)
        with self._lock:
            now = self.clock()
            if self._fd is not None and (now.date() != self._day or self._rows >= self.max_rows):
                self._publish()
            if self._fd is None:
                self._open(now)
            assert self._fd is not None
            # Whole lines appended (O_APPEND): a crash leaves complete lines behind, at most
            # the last one cut short, which ingestion quarantines as malformed.
            _write_all(self._fd, data)
            self._rows += len(events)

    def tick(self) -> None:
        with self._lock:
            if self._fd is None:
                return
            now = self.clock()
            if (
                now.date() != self._day
                or time.monotonic() - self._opened >= self.rotate_seconds
                or self._rows >= self.max_rows
            ):
                self._publish()

    def flush(self) -> list[Path]:
        """Publish the current file now (tests, shutdown)."""
        with self._lock:
            if self._fd is not None:
                self._publish()
            return list(self.published)

    def close(self) -> None:
        self.flush()

    def _open(self, now: dt.datetime) -> None:
        self._day = now.date()
        folder = self.landing_dir / self.source / f"dt={self._day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        stamp = now.strftime("%Y%m%dT%H%M%S%f")
        self._path = folder / f"{PREFIX}{self.host}-{os.getpid()}-{stamp}-{self._seq}{PART_SUFFIX}"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        # Held until the file is published: recover() in another process skips held files.
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._opened = time.monotonic()
        self._rows = 0

    def _publish(self) -> None:
        assert self._fd is not None and self._path is not None
        os.fsync(self._fd)
        final = self._path.with_name(self._path.name.removesuffix(".part"))
        os.replace(self._path, final)  # renamed while still locked: no one recovers it twice
        os.close(self._fd)
        self.published.append(final)
        self._fd, self._path = None, None


class KafkaSink:
    """One JSON message per event on ``topic`` (keyed by request id, so a request's events stay
    in order on one partition); idempotent producer, acks from all replicas."""

    def __init__(
        self,
        producer_config: dict[str, object],
        topic: str,
        fallback: LandingSink,
        *,
        message_timeout_ms: int = 60_000,
    ) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.fallback = fallback
        self.failed = 0
        self.delivered = 0
        self.producer = Producer(
            {
                **producer_config,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": message_timeout_ms,
                # librdkafka's own messages (a broker that refuses connections, retries) go to
                # Python logging with the service's, not to stderr
                "logger": log,
            }
        )

    def _on_delivery(self, err: object, msg: object) -> None:
        if err is None:
            self.delivered += 1
            return
        # The broker did not take it within message.timeout.ms: keep it in a landing file.
        self.failed += 1
        log.error("Kafka delivery failed (%s): event kept in a landing file instead", err)
        try:
            self.fallback.write([json.loads(msg.value())])  # type: ignore[attr-defined]
        except Exception:  # an exception here would surface in an unrelated poll()
            log.exception("could not write the undelivered event to the landing fallback")

    def write(self, events: Sequence[dict]) -> None:
        spilled = []
        for event in events:
            payload = encode(event)[:-1]
            key = str(event.get("request_id") or "").encode()
            try:
                self.producer.produce(
                    self.topic, value=payload, key=key, on_delivery=self._on_delivery
                )
            except BufferError:
                # The local queue is full (the broker is slow or away): to a landing file now,
                # rather than block the service waiting for room.
                spilled.append(event)
        if spilled:
            self.failed += len(spilled)
            self.fallback.write(spilled)
        self.producer.poll(0)

    def tick(self) -> None:
        self.producer.poll(0)
        self.fallback.tick()

    def close(self) -> None:
        remaining = self.producer.flush(15)
        if remaining:
            # Purged messages come back through the delivery callback as failures, which
            # writes them to the landing fallback.
            log.error("%d events undelivered to Kafka at shutdown: to landing files", remaining)
            self.producer.purge()
            self.producer.flush(5)
        self.fallback.close()
