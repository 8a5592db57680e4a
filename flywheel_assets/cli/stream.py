"""`flywheel stream`: the events topic into the shared online store (realtime/stream.py)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from flywheel_assets.cli.common import settings_or_exit


def _stream(args: argparse.Namespace) -> int:
    from flywheel_assets.ingestion.settings import IngestionSettings, KafkaTopicSettings
    from flywheel_assets.platform.pseudonym import Pseudonymiser
    from flywheel_assets.platform.settings import PseudonymSettings
    from flywheel_assets.realtime.redis_store import RedisSessionStore
    from flywheel_assets.realtime.stream import CONSUMER_GROUP, OnlineStoreSink, build_app
    from flywheel_assets.serving.settings import ServingSettings

    kafka = settings_or_exit(KafkaTopicSettings)
    serving = settings_or_exit(ServingSettings)
    ingestion = settings_or_exit(IngestionSettings)
    key = settings_or_exit(PseudonymSettings).key
    problems = [
        message
        for missing, message in (
            (not kafka.bootstrap_servers, "FLYWHEEL_KAFKA_BOOTSTRAP names no broker"),
            (
                serving.online_store == "memory",
                "FLYWHEEL_ONLINE_STORE is `memory`: a worker cannot share a service's memory; "
                "set it to the Redis URL the services use",
            ),
            (not key, "FLYWHEEL_PSEUDONYM_KEY is not set (the key ingestion uses)"),
        )
        if missing
    ]
    if problems:
        print("flywheel stream: " + "; ".join(problems), file=sys.stderr)
        return 2
    store = RedisSessionStore.from_url(serving.online_store)
    lateness = ingestion.max_event_lateness_days
    sink = OnlineStoreSink(
        store,
        Pseudonymiser(key),
        max_lateness=dt.timedelta(days=lateness) if lateness > 0 else None,
        future_tolerance=dt.timedelta(hours=ingestion.future_tolerance_hours),
    )
    app = build_app(
        kafka.bootstrap_servers,
        kafka.topic,
        sink,
        consumer_group=args.group or CONSUMER_GROUP,
        client_config=kafka.client_config(),
        state_dir=args.state_dir,
    )
    print(
        f"flywheel stream: {kafka.topic} -> the online store (group "
        f"{args.group or CONSUMER_GROUP}); Ctrl+C or SIGTERM stops after a commit",
        file=sys.stderr,
    )
    app.run(timeout=args.idle_timeout or 0.0)
    c = sink.counts
    print(
        f"flywheel stream: {c.messages} messages, {c.applied} events applied, {c.duplicates} "
        f"already there, rejected {dict(c.rejected) or 0}",
        file=sys.stderr,
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser(
        "stream",
        help="consume the events topic into the shared online store (real-time features)",
        description="A Quix Streams worker: FLYWHEEL_KAFKA_TOPIC into the Redis store of "
        "FLYWHEEL_ONLINE_STORE, offsets committed after each write. Run one per partition at "
        "most, in the same consumer group (docs/realtime.md).",
    )
    st.add_argument("--group", default=None, help="the consumer group (default: %(default)s)")
    st.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="stop after this many seconds without a message (default: run until stopped)",
    )
    st.add_argument("--state-dir", default=None, help="Quix's local folder (it keeps no state)")
    st.set_defaults(func=_stream)
