"""The ranking service's logic, without HTTP (``service_app.py`` is the thin FastAPI layer).

What it serves comes from two things the pipeline publishes under ``FLYWHEEL_HOME/serving``:
``champion.json`` (the champion, and the running experiment's challenger with its share,
written by ``champion_model`` and by rollbacks) and the newest feature bundle
(``online_features``). A background thread looks for changes every few seconds, loads the new
models and features completely, then swaps one reference: a request uses the state it started
with, so a switch never fails or mixes a request.

Exploration: epsilon-greedy per slot (``policy.epsilon_greedy_slate``), the propensity of each
shown item being the exact probability of that choice given the items above it.

Real time: every feedback event the service logs is applied at once to its in-process session
store (``realtime.store``), and a request with a session id reads its session's last hour from
there, so a click counts in the next ranking of the same session (docs/realtime.md).
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xgboost as xgb

from flywheel_assets.evaluation.online_stats import assign_variant
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.realtime.redis_store import OnlineStoreUnavailable, RedisSessionStore
from flywheel_assets.realtime.store import SessionStore
from flywheel_assets.serving.event_sink import EventSink
from flywheel_assets.serving.online_features import SUCCESS, FeatureSnapshot, latest_bundle
from flywheel_assets.serving.policy import COLD_START_VERSION, epsilon_greedy_slate
from flywheel_assets.training.model import FeatureSchema, load_artefact

log = logging.getLogger(__name__)

FEEDBACK_TYPES = ("view", "click", "add_to_cart", "purchase")
MAX_CANDIDATES = 10_000
MAX_K = 200


class RankingError(ValueError):
    """A request the service cannot serve; the message says why (HTTP 422)."""


class NotReady(RuntimeError):
    """The service has nothing to serve with yet (HTTP 503)."""


@dataclass(frozen=True)
class ServedModel:
    version: str
    booster: xgb.Booster
    schema: FeatureSchema


@dataclass(frozen=True)
class ServingState:
    """Everything one request needs, immutable once built."""

    champion: ServedModel | None  # None: the cold-start policy (uniform random)
    challenger: ServedModel | None
    experiment_id: str | None
    traffic_share: float
    snapshot: FeatureSnapshot | None
    signature: tuple
    loaded_at: dt.datetime

    def arm(self, pseudonym: str) -> tuple[str, ServedModel | None]:
        if self.challenger is not None and self.experiment_id is not None:
            if assign_variant(pseudonym, self.experiment_id, self.traffic_share) == "challenger":
                return "challenger", self.challenger
        return "champion", self.champion

    def describe(self) -> dict[str, object]:
        return {
            "model_version": self.champion.version if self.champion else COLD_START_VERSION,
            "challenger": self.challenger.version if self.challenger else None,
            "experiment_id": self.experiment_id,
            "traffic_share": self.traffic_share if self.challenger else 0.0,
            "feature_dt": self.snapshot.feature_dt.isoformat() if self.snapshot else None,
            "items": self.snapshot.n_items if self.snapshot else 0,
            "loaded_at": self.loaded_at.isoformat(),
        }


def _load_model(
    entry: dict, cache: dict[str, ServedModel], loaded: dict[str, ServedModel]
) -> ServedModel:
    version = entry["model_version"]
    cache_key = f"{version}:{entry.get('sha256')}:{entry.get('artefact_uri')}"
    if cache_key in cache:
        loaded[cache_key] = cache[cache_key]
        return cache[cache_key]
    if not entry.get("feature_schema"):
        raise RuntimeError(
            f"the serving pointer has no feature schema for {version}: re-materialise "
            "champion_model with this flywheel version"
        )
    booster = load_artefact(entry["artefact_uri"], entry["sha256"])  # verifies the SHA-256
    # One thread per prediction: a request is 10^2-10^3 rows, where thread start-up costs
    # more than it saves; concurrency comes from requests (docs/decisions.md, 47).
    booster.set_param({"nthread": 1})
    schema = FeatureSchema.from_json(json.dumps(entry["feature_schema"]))
    loaded[cache_key] = ServedModel(version, booster, schema)
    return loaded[cache_key]


@dataclass
class StateLoader:
    """Reads what the pipeline published under ``serving_dir``."""

    serving_dir: Path
    _models: dict[str, ServedModel] = field(default_factory=dict)

    @property
    def pointer_path(self) -> Path:
        return self.serving_dir / "champion.json"

    def signature(self) -> tuple:
        """Cheap: file metadata only, so it can be polled every few seconds. A bundle
        re-exported for the same day has a new ``_SUCCESS``, so it counts as a change."""
        try:
            st = self.pointer_path.stat()
            pointer = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            pointer = None
        bundle = latest_bundle(self.serving_dir)
        if bundle is None:
            return pointer, None
        try:
            done = (bundle / SUCCESS).stat().st_mtime_ns
        except FileNotFoundError:  # replaced while we looked: the next poll sees the new one
            done = None
        return pointer, bundle.name, done

    def load(self, current: ServingState | None = None) -> ServingState:
        signature = self.signature()
        pointer = json.loads(self.pointer_path.read_text()) if self.pointer_path.exists() else {}
        champion = challenger = None
        # keep only what serves now: old boosters would pile up over months of promotions
        loaded: dict[str, ServedModel] = {}
        if pointer.get("model_version"):
            champion = _load_model(pointer, self._models, loaded)
        exp = pointer.get("experiment") or None
        if exp:
            challenger = _load_model(exp, self._models, loaded)
        bundle = latest_bundle(self.serving_dir)
        snapshot = FeatureSnapshot.load(bundle) if bundle else None
        if (
            current is not None
            and current.snapshot is not None
            and (snapshot is None or snapshot.feature_dt < current.snapshot.feature_dt)
        ):
            # The newest day is being re-exported (its folder is swapped) or was removed by
            # hand: never step back to older features, keep what serves.
            snapshot = current.snapshot
        self._models = loaded
        return ServingState(
            champion=champion,
            challenger=challenger,
            experiment_id=exp["experiment_id"] if exp else None,
            traffic_share=float(exp["traffic_share"]) if exp else 0.0,
            snapshot=snapshot,
            signature=signature,
            loaded_at=dt.datetime.now(dt.UTC),
        )


@dataclass
class _Shown:
    user_id: str
    session_id: str | None
    model_version: str
    variant: str
    items: dict[str, tuple[int, float, float | None]]  # item -> position, propensity, price
    # (item, event type) -> event time of feedback already logged, so a retried post without
    # its own time logs the same event again (a duplicate, not a conflicting id)
    feedback_times: dict[tuple[str, str], dt.datetime] = field(default_factory=dict)


class RecentRequests:
    """Recent rankings by request id, so feedback may name only the request and the item.
    Bounded by requests and by shown items (k up to 200), so clients cannot grow it without
    limit (about 0.5 KB per shown item at most)."""

    def __init__(self, capacity: int = 200_000, max_items: int = 2_000_000) -> None:
        self.capacity = capacity
        self.max_items = max_items
        self._items = 0
        self._data: collections.OrderedDict[str, _Shown] = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, request_id: str, shown: _Shown) -> None:
        with self._lock:
            self._data[request_id] = shown
            self._items += len(shown.items)
            while len(self._data) > self.capacity or self._items > self.max_items:
                _rid, old = self._data.popitem(last=False)
                self._items -= len(old.items)

    def get(self, request_id: str) -> _Shown | None:
        with self._lock:
            return self._data.get(request_id)

    def __contains__(self, request_id: str) -> bool:
        with self._lock:
            return request_id in self._data


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Latency:
    """Served latency per variant over the last requests, for /metrics."""

    def __init__(self, window: int = 10_000) -> None:
        self._values: dict[str, collections.deque[float]] = collections.defaultdict(
            lambda: collections.deque(maxlen=window)
        )
        self.count: collections.Counter[str] = collections.Counter()

    def add(self, variant: str, ms: float) -> None:
        self._values[variant].append(ms)
        self.count[variant] += 1

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for variant, values in list(self._values.items()):
            a = np.fromiter(values, dtype=float)
            if len(a):
                out[variant] = {
                    "requests": self.count[variant],
                    "p50_ms": float(np.percentile(a, 50)),
                    "p99_ms": float(np.percentile(a, 99)),
                }
        return out


class RankingService:
    def __init__(
        self,
        serving_dir: Path,
        pseudonymiser: Pseudonymiser,
        sink: EventSink,
        *,
        epsilon: float = 0.05,
        reload_seconds: float = 5.0,
        seed: int | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        max_lateness_days: float = 30.0,
        request_log: EventSink | None = None,
        online_store: SessionStore | RedisSessionStore | None = None,
    ) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.loader = StateLoader(Path(serving_dir))
        self.pseudonymiser = pseudonymiser
        self.sink = sink
        # One record per ranking: candidates and served latency (the served_requests asset).
        self.request_log = request_log
        self.epsilon = epsilon
        # feedback older than ingestion accepts is refused here, where the client can see it
        self.max_lateness = dt.timedelta(days=max_lateness_days) if max_lateness_days > 0 else None
        self.reload_seconds = reload_seconds
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()
        self.recent = RecentRequests()
        self.online = online_store if online_store is not None else SessionStore()
        # The online store is an optimisation of freshness, never a dependency of a request:
        # when it fails, requests are scored from the snapshot and the failure is reported.
        self.online_errors = 0
        self.online_error: str | None = None
        self._online_retry_at = 0.0  # after a failure, requests skip the store for a second
        self.latency = Latency()
        self.state: ServingState | None = None
        self.last_reload_error: str | None = None
        self.reloads = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----- lifecycle --------------------------------------------------------------------------

    def reload(self, force: bool = False) -> bool:
        """Load what is published if it changed; True when the state was swapped. A failed load
        keeps serving the previous state and says why in ``last_reload_error``."""
        current = self.state
        try:
            if not force and current is not None and current.signature == self.loader.signature():
                return False
            new = self.loader.load(current)
        except Exception as exc:  # noqa: BLE001 - any failure must leave the old state serving
            self.last_reload_error = f"{type(exc).__name__}: {exc}"
            log.error("reload failed, still serving the previous state: %s", exc)
            return False
        self.state = new  # one reference swap: requests in flight keep the state they took
        self.last_reload_error = None
        self.reloads += 1
        log.info("serving %s", new.describe())
        return True

    def start(self) -> None:
        self.reload(force=True)
        self._thread = threading.Thread(target=self._loop, name="flywheel-reload", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(1.0):
            # Nothing may end this loop but stop(): without it there are no reloads and no
            # rotated log files, while /readyz would still say ready.
            for sink in (self.sink, self.request_log):
                try:
                    if sink is not None:
                        sink.tick()
                except Exception as exc:  # noqa: BLE001 - keep the loop alive, say so loudly
                    log.error("log sink: %s", exc)
            if time.monotonic() - last >= self.reload_seconds:
                last = time.monotonic()
                try:
                    self.reload()
                except Exception as exc:  # noqa: BLE001
                    self.last_reload_error = f"{type(exc).__name__}: {exc}"
                    log.error("reload: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sink.close()
        if self.request_log is not None:
            self.request_log.close()

    def readiness(self) -> tuple[bool, dict[str, object]]:
        state = self.state
        if state is None:
            return False, {
                "ready": False,
                "reason": "nothing loaded yet",
                "error": self.last_reload_error,
            }
        body: dict[str, object] = {
            "ready": True,
            **state.describe(),
            "online_store": self.online_status(),
            "error": self.last_reload_error,
        }
        if state.champion is not None and state.snapshot is None:
            body.update(ready=False, reason="a model is published but no feature bundle yet")
        return bool(body["ready"]), body

    # ----- requests ---------------------------------------------------------------------------

    def rank(
        self,
        user_id: str,
        *,
        k: int = 10,
        candidates: Sequence[str] | None = None,
        session_id: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, object]:
        started = time.perf_counter()
        state = self.state
        if state is None:
            raise NotReady("the service has not loaded its models yet; see /readyz")
        if not user_id:
            raise RankingError("user_id must not be empty")
        if not 1 <= k <= MAX_K:
            raise RankingError(f"k must be between 1 and {MAX_K}, got {k}")
        if candidates is None:
            if state.snapshot is None or state.snapshot.n_items == 0:
                raise RankingError(
                    "no candidates given and no catalog snapshot published yet: send candidates"
                )
            items = list(state.snapshot.item_ids)
        else:
            items = [str(c) for c in candidates]
            if not items:
                raise RankingError("candidates must not be empty (omit it to rank the catalog)")
            if len(items) > MAX_CANDIDATES:
                raise RankingError(f"at most {MAX_CANDIDATES} candidates, got {len(items)}")
            if len(set(items)) != len(items):
                raise RankingError("candidates contain duplicates")
        if request_id is not None and request_id in self.recent:
            raise RankingError(f"request_id {request_id!r} was already used")
        pseudonym = self.pseudonymiser.one(user_id)
        assert pseudonym is not None
        variant, model = state.arm(pseudonym)
        now = self.clock()
        if model is None:
            scores = np.zeros(len(items))
            epsilon = 1.0  # cold start: every order equally likely
            version = COLD_START_VERSION
        else:
            if state.snapshot is None:
                raise NotReady("a model is published but no feature bundle yet; see /readyz")
            snap = state.snapshot
            codes = snap.item_codes(items)
            fresh = None
            if session_id is not None and snap.uses_realtime(model.schema):
                fresh = self._fresh(pseudonym, session_id, now, codes, snap)
            x = snap.matrix(model.schema, pseudonym, codes, now.replace(tzinfo=None), fresh)
            scores = model.booster.inplace_predict(x)
            epsilon, version = self.epsilon, model.version
        with self._rng_lock:
            chosen, propensity = epsilon_greedy_slate(scores, k=k, epsilon=epsilon, rng=self.rng)
        rid = request_id or uuid.uuid4().hex
        prices = self._prices(state, [items[i] for i in chosen])
        shown, events, out = {}, [], []
        t = _iso(now)
        for pos, (i, p, price) in enumerate(zip(chosen, propensity, prices, strict=True)):
            item = items[i]
            shown[item] = (pos, float(p), price)
            out.append({"item_id": item, "score": float(scores[i]), "propensity": float(p)})
            events.append(
                {
                    "event_id": f"imp-{rid}-{pos}",
                    "event_type": "impression",
                    "event_time": t,
                    "user_id": user_id,
                    "item_id": item,
                    "session_id": session_id,
                    "request_id": rid,
                    "position": pos,
                    "propensity": float(p),
                    "model_version": version,
                    "variant": variant,
                    "price": price,
                }
            )
        self.sink.write(events)  # before answering: what was shown is always logged
        self.recent.add(rid, _Shown(user_id, session_id, version, variant, shown))
        latency_ms = (time.perf_counter() - started) * 1000
        self.latency.add(variant, latency_ms)
        if self.request_log is not None:
            self._log_request(
                [
                    {
                        "request_id": rid,
                        "served_at": t,
                        "user_id": user_id,
                        "session_id": session_id,
                        "model_version": version,
                        "variant": variant,
                        "experiment_id": state.experiment_id if state.challenger else None,
                        "feature_dt": (
                            state.snapshot.feature_dt.isoformat() if state.snapshot else None
                        ),
                        "k": k,
                        "epsilon": epsilon,
                        # None: the whole catalog of the feature snapshot was ranked
                        "candidates": None if candidates is None else items,
                        "latency_ms": round(latency_ms, 4),
                    }
                ]
            )
        return {"items": out, "model_version": version, "variant": variant, "request_id": rid}

    def _log_request(self, records: list[dict]) -> None:
        # The events are logged and the answer is ready: a failing request log must not turn
        # the request into an error (a retry would then be refused as a reused id).
        try:
            self.request_log.write(records)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001
            log.error("request log: %s", exc)

    @staticmethod
    def _prices(state: ServingState, items: list[str]) -> list[float | None]:
        snap = state.snapshot
        if snap is None:
            return [None] * len(items)
        out = []
        for item in items:
            row = snap.item_index.get(item)
            price = snap.item_price[row] if row is not None else np.nan
            out.append(None if np.isnan(price) else float(price))
        return out

    def feedback(self, events: Sequence[dict]) -> list[str]:
        """Log feedback events (each: request_id, event_type, item_id; optional user_id,
        event_id, event_time, session_id, price). All are checked before any is logged."""
        now = self.clock()
        rows = []
        for n, e in enumerate(events):
            where = f"event {n}" if len(events) > 1 else "the event"
            etype = e.get("event_type")
            if etype not in FEEDBACK_TYPES:
                raise RankingError(
                    f"{where}: event_type must be one of {', '.join(FEEDBACK_TYPES)}"
                )
            rid, item = e.get("request_id"), e.get("item_id")
            if not rid or not item:
                raise RankingError(f"{where}: request_id and item_id are required")
            shown = self.recent.get(rid)
            user = e.get("user_id")
            if shown is not None:
                if user is not None and str(user) != shown.user_id:
                    raise RankingError(f"{where}: user_id does not match request {rid}'s user")
                if item not in shown.items:
                    raise RankingError(f"{where}: item {item!r} was not shown in request {rid}")
                user = shown.user_id
            elif user is None:
                raise RankingError(
                    f"{where}: request {rid} is not known to this service process (restarted, "
                    "another replica, or too old): send user_id with the feedback"
                )
            when = e.get("event_time")
            if when is None:
                when = shown.feedback_times.get((item, etype), now) if shown else now
            elif when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            try:
                when = when.astimezone(dt.UTC)
            except (OverflowError, ValueError):
                raise RankingError(f"{where}: event_time is out of range") from None
            if when > now + dt.timedelta(minutes=5):
                raise RankingError(f"{where}: event_time is in the future")
            if self.max_lateness and when < now - self.max_lateness:
                raise RankingError(
                    f"{where}: event_time is more than {self.max_lateness.days} days old "
                    "(FLYWHEEL_MAX_EVENT_LATENESS_DAYS): ingestion would quarantine it"
                )
            # Without an event_id, a client retrying the same feedback must not count twice.
            event_id = (
                e.get("event_id")
                or "fb-" + hashlib.sha256(f"{rid}\x1f{item}\x1f{etype}".encode()).hexdigest()[:32]
            )
            position = shown.items[item][0] if shown else None
            price = e.get("price")
            if price is None and shown is not None:
                price = shown.items[item][2]  # the price it was shown at
            rows.append(
                {
                    "event_id": event_id,
                    "event_type": etype,
                    "event_time": _iso(when),
                    "user_id": str(user),
                    "item_id": item,
                    "session_id": e.get("session_id") or (shown.session_id if shown else None),
                    "request_id": rid,
                    "position": position,
                    "propensity": shown.items[item][1] if shown else None,
                    "model_version": shown.model_version if shown else None,
                    "variant": shown.variant if shown else None,
                    "price": price,
                }
            )
            if shown is not None:
                shown.feedback_times.setdefault((item, etype), when)
        self.sink.write(rows)
        # Logged first, then counted: what the session's next request reads is what was logged.
        # While the store is failing, feedback does not wait on it every time (at most one
        # try a second); what it misses, the next cycle still has.
        one = self.pseudonymiser.one
        if not self._online_skipped():
            try:
                self.online.apply([{**r, "user_id": one(r["user_id"])} for r in rows])
            except OnlineStoreUnavailable as exc:
                self._online_failed(exc)
        return [r["event_id"] for r in rows]

    def _online_skipped(self) -> bool:
        return self.online_error is not None and time.monotonic() < self._online_retry_at

    def _fresh(
        self,
        pseudonym: str,
        session_id: str,
        now: dt.datetime,
        codes: np.ndarray,
        snap: FeatureSnapshot,
    ) -> np.ndarray | None:
        """The session's real-time features, or None (missing) when the store fails."""
        if self._online_skipped():
            return None
        try:
            values = self.online.features(
                pseudonym,
                session_id,
                now,
                *snap.attributes_of(codes),
                snap,
            )
        except OnlineStoreUnavailable as exc:
            self._online_failed(exc)
            return None
        self.online_error = None
        return values

    def _online_failed(self, exc: Exception) -> None:
        self.online_errors += 1
        self._online_retry_at = time.monotonic() + 1.0
        if self.online_error is None:
            log.error("online store unavailable, serving from the snapshot alone: %s", exc)
        self.online_error = str(exc)

    def online_status(self) -> dict[str, object]:
        """The online store as /readyz and /metrics report it (a ping: it may be back)."""
        if self.online.ping():
            self.online_error = None
        else:
            self.online_error = self.online_error or "the online store does not answer"
        return {
            **self.online.stats(),
            "available": self.online_error is None,
            "errors": self.online_errors,
            "error": self.online_error,
        }
