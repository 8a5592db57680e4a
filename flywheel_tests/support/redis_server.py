"""Redis for tests: the shared server at 127.0.0.1:6379, or a private ``redis-server`` of a
test's own for faults that would disturb the shared one (stopping it, restarting it empty).
A missing server or binary skips the test, or fails it under CI=true (as ``pg_database``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
import redis

from flywheel_assets.platform.dev_broker import free_port

SHARED_URL = "redis://127.0.0.1:6379/0"


def unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: a missing server is a failure)")
    pytest.skip(message)


def shared_redis() -> redis.Redis:
    client = redis.Redis.from_url(SHARED_URL, decode_responses=True)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis not reachable at {SHARED_URL}: {exc}")
    return client


def unique_prefix() -> str:
    return f"flywheel-test:{uuid.uuid4().hex[:10]}:"


def drop_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


class PrivateRedis:
    """``redis-server`` on a free port, in memory only; ``stop()`` and ``start()`` again
    (empty, as the shared one after a restart)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed")
        self.binary = str(binary)
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="flywheel-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
