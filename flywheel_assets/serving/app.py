"""``flywheel serve``: the ranking service over HTTP (FastAPI on uvicorn).

POST /rank, POST /events, GET /healthz, GET /readyz, GET /metrics; the OpenAPI schema at
/openapi.json and its pages at /docs. Invalid requests get a 4xx saying what is wrong.
Configuration from the environment (README, "Configuration"): FLYWHEEL_HOME,
FLYWHEEL_PSEUDONYM_KEY, FLYWHEEL_SERVE_SINK (landing | kafka), FLYWHEEL_SERVE_EPSILON,
FLYWHEEL_SERVE_RELOAD_SECONDS, FLYWHEEL_SERVE_ROTATE_SECONDS, FLYWHEEL_SERVE_TOKEN,
FLYWHEEL_SERVE_MAX_BODY_BYTES, FLYWHEEL_SERVE_LOG_REQUESTS, FLYWHEEL_MAX_EVENT_LATENESS_DAYS.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from flywheel_assets.ingestion.settings import IngestionSettings, KafkaTopicSettings
from flywheel_assets.platform.config import SettingsError
from flywheel_assets.platform.pseudonym import Pseudonymiser
from flywheel_assets.platform.settings import FlywheelPaths, PseudonymSettings
from flywheel_assets.serving.event_sink import EventSink, KafkaSink, LandingSink
from flywheel_assets.serving.service import (
    MAX_CANDIDATES,
    MAX_K,
    NotReady,
    RankingError,
    RankingService,
)
from flywheel_assets.serving.settings import ServingSettings


def _as_id(value: object) -> str:
    """Ids as the event contract takes them: text of 1 to 1,024 characters, or a 64-bit integer
    (taken as text). One validator, so a bad id gets one message, not one per union member."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not -(2**63) <= value < 2**63:
            raise PydanticCustomError("id", "an integer id must fit in 64 bits")
        return str(value)
    if not isinstance(value, str):
        raise PydanticCustomError("id", "an id must be a string or an integer")
    if not 1 <= len(value) <= 1024:
        raise PydanticCustomError("id", "an id must be 1 to 1,024 characters long")
    return value


Id = Annotated[
    str,
    PlainValidator(_as_id),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": 1024},
                {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
            ],
            "description": "a string (integers are taken as text)",
        }
    ),
]
ShortText = Annotated[str, Field(min_length=1, max_length=1024)]


class RankRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: Id
    k: int = Field(10, ge=1, le=MAX_K, description="how many items to return (at most)")
    candidates: list[Id] | None = Field(
        None,
        max_length=MAX_CANDIDATES,
        description="item ids to rank; omitted: the whole catalog snapshot",
    )
    session_id: ShortText | None = None
    request_id: ShortText | None = Field(
        None, description="your id for this ranking (unique); generated when omitted"
    )
    context: dict[str, Any] | None = Field(
        None, max_length=50, description="free-form request context (not used by the model yet)"
    )


class RankedItem(BaseModel):
    item_id: str
    score: float
    propensity: float = Field(
        description="probability of this item at this position, given the items above it"
    )


class RankResponse(BaseModel):
    items: list[RankedItem]
    model_version: str
    variant: str
    request_id: str


class FeedbackEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: ShortText
    event_type: str = Field(description="view, click, add_to_cart or purchase")
    item_id: Id
    user_id: Id | None = Field(
        None, description="required when the service no longer knows the request"
    )
    event_id: ShortText | None = Field(
        None, description="unique id; derived from request, item and type when omitted"
    )
    event_time: dt.datetime | None = Field(None, description="ISO-8601; now when omitted")
    session_id: ShortText | None = None
    price: float | None = Field(None, ge=0, allow_inf_nan=False)


class FeedbackBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[FeedbackEvent] = Field(min_length=1, max_length=10_000)


class FeedbackResponse(BaseModel):
    accepted: int
    event_ids: list[str]


PROTECTED_PATHS = ("/rank", "/events", "/metrics")
API = "POST /rank, POST /events, GET /healthz, GET /readyz, GET /metrics"


def _problem(error: dict[str, Any]) -> str:
    """One validation error in words a client developer reads: where, then what."""
    loc = [str(p) for p in error["loc"] if p != "body"]
    if error["type"] == "json_invalid":
        at = f" at character {loc[-1]}" if loc else ""
        why = (error.get("ctx") or {}).get("error", "")
        return f"the body is not valid JSON{at}{f' ({why})' if why else ''}"
    if error["type"] == "missing" and not loc:
        return "the body is empty: send a JSON object"
    return f"{'.'.join(loc) or 'body'}: {error['msg']}"


class RequestGate:
    """Before anything reads or parses a body (pure ASGI, so a request pays one buffer join,
    not a middleware stack): the bearer token on the protected paths (401), then the body
    limit (413), counted as the body streams in when there is no content length."""

    def __init__(self, app: Any, max_bytes: int, token: str | None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.expected = f"bearer {token}".encode() if token else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.expected is not None and scope.get("path") in PROTECTED_PATHS:
            given = headers.get(b"authorization", b"")
            # the scheme is case-insensitive (RFC 7235), the token is not
            given = given[:7].lower() + given[7:]
            if not hmac.compare_digest(given, self.expected):
                await _reply(
                    send, 401, "missing or wrong bearer token (FLYWHEEL_SERVE_TOKEN)",
                    [(b"www-authenticate", b"Bearer")],
                )  # fmt: skip
                return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._too_large(send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._too_large(send)
                return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Any) -> None:
        await _reply(
            send, 413, f"request body over {self.max_bytes:,} bytes (FLYWHEEL_SERVE_MAX_BODY_BYTES)"
        )


async def _reply(send: Any, status: int, error: str, headers: list | None = None) -> None:
    await send(
        {"type": "http.response.start", "status": status,
         "headers": [(b"content-type", b"application/json"), *(headers or [])]}
    )  # fmt: skip
    await send({"type": "http.response.body", "body": json.dumps({"error": error}).encode()})


def create_app(
    service: RankingService, *, token: str | None = None, max_body_bytes: int = 4_000_000
) -> FastAPI:
    """``token``: when set, /rank, /events and /metrics need ``Authorization: Bearer <token>``
    (health and readiness probes stay open)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="flywheel ranking service",
        version="1",
        description="Ranks items with the champion (and the challenger for its share of users), "
        "logs what it showed with its propensities, and takes feedback.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(RequestGate, max_bytes=max_body_bytes, token=token)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(e) for e in exc.errors()]
        return JSONResponse(status_code=422, content={"error": "; ".join(problems)})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Routing errors (404, 405) in the documented shape, saying what to do instead.
        path, method = request.url.path, request.method
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            error = f"{method} is not allowed on {path}: use {allowed or 'another method'}"
        elif exc.status_code == 404:
            error = f"no such path {path}: the API is {API}"
        else:
            error = str(exc.detail)
        return JSONResponse(status_code=exc.status_code, content={"error": error},
                            headers=exc.headers)  # fmt: skip

    @app.exception_handler(RankingError)
    async def refused(_request: Request, exc: RankingError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": str(exc)})

    @app.exception_handler(NotReady)
    async def not_ready(_request: Request, exc: NotReady) -> JSONResponse:
        return JSONResponse(
            status_code=503, content={"error": str(exc)}, headers={"Retry-After": "5"}
        )

    # async handlers computing inline: a request is ~1 ms of numpy and XGBoost, less than a hop
    # to a thread pool would add; more cores = more worker processes (--workers).
    @app.post("/rank", response_model=RankResponse)
    async def rank(body: RankRequest) -> dict[str, object]:
        return service.rank(
            str(body.user_id),
            k=body.k,
            candidates=None if body.candidates is None else [str(c) for c in body.candidates],
            session_id=body.session_id,
            request_id=body.request_id,
        )

    @app.post("/events", response_model=FeedbackResponse)
    async def events(body: FeedbackEvent | FeedbackBatch) -> dict[str, object]:
        items = body.events if isinstance(body, FeedbackBatch) else [body]
        rows = [
            {**e.model_dump(), "item_id": str(e.item_id),
             "user_id": None if e.user_id is None else str(e.user_id)}
            for e in items
        ]  # fmt: skip
        ids = service.feedback(rows)
        return {"accepted": len(ids), "event_ids": ids}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready, body = service.readiness()
        return JSONResponse(status_code=200 if ready else 503, content=body)

    @app.get("/metrics")
    async def metrics() -> dict[str, object]:
        state = service.state
        return {
            "serving": state.describe() if state else None,
            "reloads": service.reloads,
            "latency": service.latency.summary(),
            "online_store": service.online_status(),
        }

    return app


def sink_from_settings(paths: FlywheelPaths, settings: ServingSettings) -> EventSink:
    landing = LandingSink(paths.landing_dir, rotate_seconds=settings.rotate_seconds)
    if settings.sink == "landing":
        return landing
    kafka = KafkaTopicSettings.resolve()
    if not kafka.bootstrap_servers:
        raise SystemExit("FLYWHEEL_SERVE_SINK=kafka needs FLYWHEEL_KAFKA_BOOTSTRAP")
    config = {"bootstrap.servers": kafka.bootstrap_servers, **kafka.client_config()}
    return KafkaSink(config, kafka.topic, fallback=landing)


def service_from_env() -> RankingService:
    """The service as the environment configures it (FLYWHEEL_SERVE_*, FLYWHEEL_HOME, the
    pseudonym key, the ingestion's lateness bound), by the settings' one rule."""
    try:
        settings = ServingSettings.resolve()
        key = PseudonymSettings.resolve().require_key("the ranking service")
        lateness = IngestionSettings.resolve().max_event_lateness_days
    except SettingsError as exc:
        raise SystemExit(str(exc)) from exc
    paths = FlywheelPaths.from_env()
    return RankingService(
        paths.home / "serving",
        Pseudonymiser(key),
        sink_from_settings(paths, settings),
        epsilon=settings.epsilon,
        request_log=(
            LandingSink(
                paths.landing_dir, source="requests", rotate_seconds=settings.rotate_seconds
            )
            if settings.log_requests
            else None
        ),
        max_lateness_days=lateness,
        reload_seconds=settings.reload_seconds,
        online_store=settings.open_online_store(),
    )


def create_app_from_env() -> FastAPI:
    """The uvicorn factory (``flywheel serve``)."""
    try:
        settings = ServingSettings.resolve()
    except SettingsError as exc:
        raise SystemExit(str(exc)) from exc
    return create_app(
        service_from_env(), token=settings.token, max_body_bytes=settings.max_body_bytes
    )
