"""Serving's settings: what `flywheel serve` reads when it starts (docs/serving.md)."""

from __future__ import annotations

from dataclasses import dataclass

from flywheel_assets.platform.config import Settings, require, setting


@dataclass(frozen=True)
class ServingSettings(Settings):
    stage = "serving"

    sink: str = setting(
        "landing",
        "FLYWHEEL_SERVE_SINK",
        "where `flywheel serve` logs impressions and feedback: `landing` or `kafka`",
    )
    epsilon: float = setting(0.05, "FLYWHEEL_SERVE_EPSILON", "the service's exploration rate")
    reload_seconds: float = setting(
        5.0,
        "FLYWHEEL_SERVE_RELOAD_SECONDS",
        "how often the service looks for new models and features",
    )
    rotate_seconds: float = setting(
        300.0, "FLYWHEEL_SERVE_ROTATE_SECONDS", "how often the service publishes a log file"
    )
    token: str | None = setting(
        None,
        "FLYWHEEL_SERVE_TOKEN",
        "when set, `/rank`, `/events` and `/metrics` need `Authorization: Bearer <token>`",
        secret=True,
        shown_default="unset (no auth: run it inside your network)",
    )
    max_body_bytes: int = setting(
        4_000_000, "FLYWHEEL_SERVE_MAX_BODY_BYTES", "larger request bodies get a 413"
    )
    log_requests: bool = setting(
        True,
        "FLYWHEEL_SERVE_LOG_REQUESTS",
        "`false`: no request log (candidates and served latency to `landing/requests/`)",
    )
    online_store: str = setting(
        "memory",
        "FLYWHEEL_ONLINE_STORE",
        "where the real-time features live: `memory` (in the service process) or a Redis URL "
        "(`redis://host:6379/0`), shared by every replica ([docs/realtime.md](docs/realtime.md))",
        secret=True,
        shown_default="`memory`",
    )

    def validate(self) -> None:
        require(
            self.sink in ("landing", "kafka"), "FLYWHEEL_SERVE_SINK", "must be landing or kafka"
        )
        require(0 <= self.epsilon <= 1, "FLYWHEEL_SERVE_EPSILON", "must be in [0, 1]")
        require(self.reload_seconds > 0, "FLYWHEEL_SERVE_RELOAD_SECONDS", "must be positive")
        require(self.rotate_seconds > 0, "FLYWHEEL_SERVE_ROTATE_SECONDS", "must be positive")
        require(self.max_body_bytes > 0, "FLYWHEEL_SERVE_MAX_BODY_BYTES", "must be positive")
        require(
            self.online_store == "memory"
            or self.online_store.startswith(("redis://", "rediss://", "unix://")),
            "FLYWHEEL_ONLINE_STORE",
            "must be `memory` or a Redis URL (redis://, rediss://, unix://)",
        )

    def open_online_store(self):  # noqa: ANN201 - SessionStore | RedisSessionStore
        """The configured online store (no connection is made before the first use)."""
        from flywheel_assets.realtime.store import SessionStore

        if self.online_store == "memory":
            return SessionStore()
        from flywheel_assets.realtime.redis_store import RedisSessionStore

        return RedisSessionStore.from_url(self.online_store)
