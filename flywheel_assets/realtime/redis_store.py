"""The session store in Redis: one store for every replica of the ranking service.

Same contract as the in-process ``realtime.store.SessionStore`` (idempotent by event id, counts at
read time, bounded), so a test holds the two to the same values. Each session is two keys
sharing a hash tag (one cluster slot):

- ``<prefix>{<user>|<session>}:e``: a sorted set of the session's counted events, scored by
  event time in microseconds (exact in a double until the year 2255), member
  ``event_id\\x1ftype\\x1fitem``;
- ``<prefix>{<user>|<session>}:i``: the event ids seen, so a redelivered event is ignored.

One Lua script applies an event atomically: ids first, then the event, then the pruning and the
expiry. Keys expire after the window plus the lateness allowance without a write, so Redis holds
only live sessions; it keeps nothing else.

A store that cannot be reached raises ``OnlineStoreUnavailable``: the service then answers from
the snapshot alone and says so (docs/realtime.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

import pandas as pd
import redis

from flywheel_assets.realtime.features import TYPE_CODES, WINDOW
from flywheel_assets.realtime.store import SessionReader, micros

SEP = "\x1f"

_APPLY = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
local newest = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('(%.0f', newest - tonumber(ARGV[5])))
local n = redis.call('ZCARD', KEYS[1])
local cap = tonumber(ARGV[6])
if n > cap then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - cap - 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""


class OnlineStoreUnavailable(RuntimeError):
    """The online store cannot be reached; the message says which and why."""


class RedisSessionStore(SessionReader):
    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "flywheel:rt:",
        max_events_per_session: int = 1_000,
        lateness: dt.timedelta = dt.timedelta(hours=1),
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.max_events_per_session = max_events_per_session
        self._keep = int((WINDOW + lateness).total_seconds() * 1_000_000)
        self._ttl_ms = int((WINDOW + lateness).total_seconds() * 1_000)
        self._apply = client.register_script(_APPLY)
        self.applied = 0
        self.duplicates = 0

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> RedisSessionStore:
        # Short timeouts: a request must not wait on a store that is gone (it degrades).
        client = redis.Redis.from_url(
            url, socket_timeout=0.25, socket_connect_timeout=0.25, decode_responses=True
        )
        return cls(client, **kwargs)  # type: ignore[arg-type]

    def _keys(self, user_id: str, session_id: str) -> tuple[str, str]:
        tag = f"{self.prefix}{{{user_id}|{session_id}}}"
        return f"{tag}:e", f"{tag}:i"

    def apply(self, events: Iterable[Mapping[str, object]]) -> int:
        """Apply events as ``SessionStore.apply`` does; returns how many were new."""
        pipe = self.client.pipeline(transaction=False)
        n = 0
        for e in events:
            etype, session_id = e.get("event_type"), e.get("session_id")
            if etype not in TYPE_CODES or session_id is None or pd.isna(session_id):
                continue
            event_id = str(e["event_id"])
            member = f"{event_id}{SEP}{TYPE_CODES[str(etype)]}{SEP}{e['item_id']}"
            self._apply(
                keys=self._keys(str(e["user_id"]), str(session_id)),
                args=[
                    event_id, micros(e["event_time"]), member, self._ttl_ms, self._keep,
                    self.max_events_per_session,
                ],
                client=pipe,
            )  # fmt: skip
            n += 1
        if not n:
            return 0
        try:
            results = pipe.execute()
        except redis.RedisError as exc:
            raise OnlineStoreUnavailable(f"Redis online store: {exc}") from exc
        new = int(sum(results))
        self.applied += new
        self.duplicates += n - new
        return new

    def _session_events(self, user_id: str, session_id: str, at_micros: int) -> tuple:
        lo = at_micros - int(WINDOW.total_seconds() * 1_000_000)
        try:
            rows = self.client.zrangebyscore(
                self._keys(user_id, session_id)[0], lo, f"({at_micros}", withscores=True
            )
        except redis.RedisError as exc:
            raise OnlineStoreUnavailable(f"Redis online store: {exc}") from exc
        parts = [member.split(SEP, 2) for member, _ in rows]
        return [int(score) for _, score in rows], [int(p[1]) for p in parts], [p[2] for p in parts]

    def stats(self) -> dict[str, object]:
        return {
            "kind": "redis",
            "events_applied": self.applied,
            "duplicates_ignored": self.duplicates,
        }

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False
