"""bench/realtime: what the real-time features cost and how fresh they are.

Setup (not measured): bench/serve's synthetic serving home (``--users`` users, ``--items``
items, a published bundle) and a champion trained on the production schema plus the real-time
features; sessions with ``--session-events`` events each in the store.

Measured, in one run:
  1. ``/rank`` in process, k=20 of 500 candidates, p50/p99:
     - the snapshot alone: no session, so the store is not read (the baseline);
     - with the in-process store (the embedded default);
     - with the Redis store (``FLYWHEEL_ONLINE_STORE``, the server at 127.0.0.1:6379).
     Goal (issue 21): p99 with real-time features at most 1.3x the baseline's.
  2. Event to visible, in process: ``POST /events``' work (log, then apply) until the next
     ``/rank`` of the session reads the event, p50/p99.
  3. Event to visible through Kafka: events produced at ``--rates`` events/s to the dev broker
     (Tansu), consumed by the stream worker (Quix Streams) into Redis. Every 50th event is a
     probe whose arrival in Redis a poller times from its production, p50/p99.
     Goal: p99 at most 1 s (aim: 250 ms).
  4. Stream throughput of one worker process: ``--sizes`` messages waiting in the topic, from
     the first write to the store to the last, events/s at each size (growth with input).
     Goal: at least 50,000 events/s.

    .venv/bin/python bench/realtime.py                 # ~3 minutes
    .venv/bin/python bench/realtime.py --quick         # a smaller look
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import code_version, log  # noqa: E402
from serve import KEY, build_bundle, pct, train_champion  # noqa: E402

from flywheel_assets.platform.dev_broker import DevBroker, create_topic  # noqa: E402
from flywheel_assets.platform.pseudonym import Pseudonymiser  # noqa: E402
from flywheel_assets.realtime.features import REALTIME_NAMES  # noqa: E402
from flywheel_assets.realtime.redis_store import RedisSessionStore  # noqa: E402
from flywheel_assets.realtime.store import SessionStore  # noqa: E402
from flywheel_assets.realtime.stream import OnlineStoreSink, build_app  # noqa: E402
from flywheel_assets.serving.event_sink import LandingSink  # noqa: E402
from flywheel_assets.serving.service import RankingService  # noqa: E402
from flywheel_assets.training.model import NUMERIC_FEATURES  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"


def session_events(user: str, session: str, items: list[str], n: int, now: dt.datetime) -> list:
    kinds = ("view", "click", "add_to_cart")
    return [
        {"event_id": f"{session}-{i}", "event_type": kinds[i % 3], "user_id": user,
         "session_id": session, "item_id": items[i % len(items)],
         "event_time": now - dt.timedelta(seconds=30 * (n - i))}
        for i in range(n)
    ]  # fmt: skip


def rank_latency(svc: RankingService, requests: list, sessions: bool) -> list[float]:
    lat = []
    for user, session, cands in requests:
        t = time.perf_counter()
        svc.rank(user, k=20, candidates=cands, session_id=session if sessions else None)
        lat.append((time.perf_counter() - t) * 1000)
    return lat


def bench_rank(args: argparse.Namespace, work: Path, rng: np.random.Generator) -> dict:
    home = work / "home"
    (home / "serving").mkdir(parents=True)
    log(f"building a bundle of {args.users:,} users and {args.items:,} items")
    info = build_bundle(home / "serving", args.users, args.items, rng)
    # the production schema plus the real-time features
    train_champion(
        home, info, args.rounds, rng, [*NUMERIC_FEATURES, *REALTIME_NAMES], version="bench-rt"
    )
    pseudo = Pseudonymiser(KEY)
    now = dt.datetime.now(dt.UTC)
    requests = []
    for r in range(args.requests):
        user = f"u{int(rng.integers(args.users))}"
        cands = [f"i{i}" for i in rng.choice(args.items, 500, replace=False)]
        requests.append((user, f"s{r % 500}-{user}", cands))
    events = [
        {**e, "user_id": pseudo.one(user)}
        for user, session, cands in requests[:500]
        for e in session_events(user, session, cands[:20], args.session_events, now)
    ]
    memory = SessionStore()
    memory.apply(events)
    shared = RedisSessionStore.from_url(REDIS_URL, prefix=f"bench:{uuid.uuid4().hex[:8]}:")
    shared.apply(events)
    out = {}
    for name, store, sessions in (
        ("snapshot alone (no session)", memory, False),
        ("with the in-process store", memory, True),
        ("with the Redis store", shared, True),
    ):
        svc = RankingService(
            home / "serving", pseudo, LandingSink(work / f"landing-{len(out)}"), seed=0,
            online_store=store,
        )  # fmt: skip
        svc.reload(force=True)
        rank_latency(svc, requests[:100], sessions)  # warm-up
        log(f"/rank: {name}")
        out[name] = pct(rank_latency(svc, requests, sessions))
        svc.sink.close()
    # event to visible, in process: the feedback call, then the next rank reads it
    svc = RankingService(home / "serving", pseudo, LandingSink(work / "landing-fb"), seed=0)
    svc.reload(force=True)
    lat = []
    for user, session, cands in requests[:1000]:
        shown = svc.rank(user, k=5, candidates=cands[:50], session_id=session)
        item = shown["items"][0]["item_id"]
        t = time.perf_counter()
        svc.feedback([{"request_id": shown["request_id"], "item_id": item, "event_type": "click"}])
        visible = svc.online.features(
            pseudo.one(user), session, dt.datetime.now(dt.UTC) + dt.timedelta(microseconds=1),
            *svc.state.snapshot.attribute_codes([item]), svc.state.snapshot,
        )  # fmt: skip
        lat.append((time.perf_counter() - t) * 1000)
        assert visible[0, REALTIME_NAMES.index("s_clicks_1h")] >= 1
    svc.sink.close()
    return {"rank": out, "in_process_visible": pct(lat)}


def produce_paced(
    bootstrap: str, topic: str, rate: int, seconds: float, probes: list[tuple[str, float]]
) -> None:
    """Events at ``rate``/s; every 50th is a probe with its own session, whose production
    time goes into ``probes`` (by store key) as it is sent."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2})
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        session = f"p{i}" if i % 50 == 0 else f"s{i % 1000}"
        event = {"event_id": f"e{i}-{uuid.uuid4().hex[:6]}", "event_type": "click",
                 "event_time": dt.datetime.now(dt.UTC).isoformat(), "user_id": f"u{i % 1000}",
                 "session_id": session, "item_id": f"i{i % 500}"}  # fmt: skip
        producer.produce(topic, json.dumps(event).encode(), key=session.encode())
        if i % 50 == 0:
            producer.poll(0)  # hand it to the client's thread now, as a live producer would
            probes.append((f"u{i % 1000}|{session}", time.perf_counter()))
        producer.poll(0)
        lag = start + (i + 1) / rate - time.perf_counter()
        if lag > 0:
            time.sleep(lag)
    producer.flush(30)


def bench_stream(args: argparse.Namespace, work: Path) -> dict:
    import redis

    pseudo = Pseudonymiser(KEY)
    out: dict[str, object] = {"visible": {}, "throughput": {}}
    with DevBroker() as broker:
        for rate in args.rates:
            topic = f"rt-{rate}-{uuid.uuid4().hex[:6]}"
            create_topic(broker.bootstrap, topic, partitions=3)
            prefix = f"bench:{uuid.uuid4().hex[:8]}:"
            store = RedisSessionStore.from_url(REDIS_URL, prefix=prefix)
            sink = OnlineStoreSink(store, pseudo)
            app = build_app(broker.bootstrap, topic, sink, state_dir=str(work / "quix"),
                            consumer_group=f"bench-{uuid.uuid4().hex[:6]}")  # fmt: skip
            client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
            seen: dict[str, float] = {}
            probes: list[tuple[str, float]] = []  # appended by the producer thread
            done = threading.Event()

            def produce(
                topic=topic, rate=rate, probes=probes, store=store, done=done, client=client
            ) -> None:
                # one warm-up event, then the paced stream once the worker has its partitions
                produce_paced(broker.bootstrap, topic, 1, 1.0, [])
                warm = store._keys(pseudo.one("u0"), "p0")[0]
                while not client.exists(warm):
                    time.sleep(0.05)
                produce_paced(broker.bootstrap, topic, rate, args.seconds, probes)
                done.set()

            def poll(
                app=app, probes=probes, seen=seen, store=store, done=done, client=client
            ) -> None:
                deadline = time.perf_counter() + args.seconds + 60
                while time.perf_counter() < deadline:
                    waiting = [k for k, _ in probes[: len(probes)] if k not in seen]
                    pipe = client.pipeline(transaction=False)
                    for key in waiting:
                        user, session = key.split("|")
                        pipe.exists(store._keys(pseudo.one(user), session)[0])
                    found = pipe.execute() if waiting else []
                    now = time.perf_counter()  # when the poller knew: latency not understated
                    for key, there in zip(waiting, found, strict=True):
                        if there:
                            seen[key] = now
                    if done.is_set() and len(seen) == len(probes):
                        break
                    time.sleep(0.002)
                app.stop()

            threads = [threading.Thread(target=produce), threading.Thread(target=poll)]
            for t in threads:
                t.start()
            app.run()  # Quix wants the main thread (signals); poll() stops it
            for t in threads:
                t.join()
            sent = dict(probes)
            lat = [(seen[k] - sent[k]) * 1000 for k in seen]
            log(f"rate {rate}/s: {len(seen)}/{len(probes)} probes visible")
            out["visible"][rate] = {**dict(zip(("p50", "p99"), pct(lat), strict=True)),
                                    "probes": len(probes), "seen": len(seen)}  # fmt: skip
        for size in args.sizes:
            topic = f"rt-size-{size}-{uuid.uuid4().hex[:6]}"
            create_topic(broker.bootstrap, topic, partitions=3)
            from confluent_kafka import Producer

            producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
            now = dt.datetime.now(dt.UTC).isoformat()
            for i in range(size):
                event = {"event_id": f"e{i}", "event_type": ("view", "click")[i % 2],
                         "event_time": now, "user_id": f"u{i % 5000}",
                         "session_id": f"s{i % 20000}", "item_id": f"i{i % 500}"}  # fmt: skip
                producer.produce(topic, json.dumps(event).encode(), key=f"s{i % 20000}".encode())
                if i % 10_000 == 0:
                    producer.poll(0)
            producer.flush(60)
            store = RedisSessionStore.from_url(REDIS_URL, prefix=f"bench:{uuid.uuid4().hex[:8]}:")
            marks: list[float] = []
            apply = store.apply

            def timed(events, apply=apply, marks=marks):  # noqa: ANN001, ANN202
                n = apply(events)
                marks.append(time.perf_counter())
                return n

            store.apply = timed  # type: ignore[method-assign]
            sink = OnlineStoreSink(store, pseudo)
            app = build_app(broker.bootstrap, topic, sink, state_dir=str(work / "quix"),
                            consumer_group=f"bench-{uuid.uuid4().hex[:6]}")  # fmt: skip
            t0 = time.perf_counter()
            app.run(timeout=3)
            first = marks[0] if marks else t0
            elapsed = (marks[-1] - first) if len(marks) > 1 else float("nan")
            log(f"{size:,} messages: {sink.counts.messages:,} read in {elapsed:.2f} s")
            out["throughput"][size] = {
                "messages": sink.counts.messages,
                "seconds": elapsed,
                "events_per_s": sink.counts.messages / elapsed if elapsed else float("nan"),
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--requests", type=int, default=3_000)
    ap.add_argument("--session-events", type=int, default=20)
    ap.add_argument("--rates", type=int, nargs="+", default=[1_000, 10_000])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.users, args.items, args.requests, args.seconds = 20_000, 5_000, 500, 4.0
        args.sizes = [20_000, 40_000]
    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="bench-realtime-"))
    ranked = bench_rank(args, work, rng)
    streamed = bench_stream(args, work)
    base = ranked["rank"]["snapshot alone (no session)"]
    print(f"\nbench/realtime on {platform.machine()}, {code_version()}, "
          f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")  # fmt: skip
    print(f"command: .venv/bin/python bench/realtime.py {' '.join(sys.argv[1:])}".rstrip())
    print("\n| /rank, k=20 of 500, in process | p50 ms | p99 ms | p99 / snapshot alone |")
    print("|---|---|---|---|")
    for name, (p50, p99) in ranked["rank"].items():
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {p99 / base[1]:.2f}x |")
    p50, p99 = ranked["in_process_visible"]
    print(
        f"\nevent to visible, in process (POST /events' work): p50 {p50:.3f} ms, p99 {p99:.3f} ms"
    )
    print("\n| Kafka -> stream worker -> Redis, events/s | probes seen | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for rate, v in streamed["visible"].items():
        print(f"| {rate:,} | {v['seen']}/{v['probes']} | {v['p50']:.0f} | {v['p99']:.0f} |")
    print("\n| messages waiting | seconds (first to last write) | events/s, one worker |")
    print("|---|---|---|")
    for size, v in streamed["throughput"].items():
        print(f"| {size:,} | {v['seconds']:.2f} | {v['events_per_s']:,.0f} |")


if __name__ == "__main__":
    main()
