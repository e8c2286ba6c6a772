"""The aiohttp application of ``audience-sync receive``: routes, status codes, metrics.

    POST /v1/profiles   a pushed payload (payloads.py) -> 200 with its tally, after it is written
    POST /oauth/token   OAuth2 client credentials -> a short-lived bearer token (auth.py)
    GET  /health        readiness: 200 when Redis takes a write, else 503 (no credentials needed)
    GET  /metrics       Prometheus text (no credentials needed)

Status codes: 400 a bad payload (every bad field named, nothing written), 401 no or bad credentials,
403 a token without the ``audiences`` scope, 413 a body over ``max_body``, 503 Redis did not answer
(retry: applying is idempotent by event time). A 500 would be a bug.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from audience_sync.receive.auth import Authenticator, Refused
from audience_sync.receive.payloads import PayloadError, PayloadOptions, parse_payload
from audience_sync.receive.writer import BatchWriter
from audience_sync.store import StoreFailure, StoreUnavailable, SyncStore

PUSH_PATH: Final = "/v1/profiles"
TOKEN_PATH: Final = "/oauth/token"
ENDPOINTS: Final = frozenset({PUSH_PATH, TOKEN_PATH, "/health", "/metrics"})
RETRY_AFTER: Final = "1"  # seconds, on 503
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

log = logging.getLogger("audience_sync.receive")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Metrics:
    """The receiver's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "audience_sync_receive_requests", "Requests answered", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "audience_sync_receive_request_seconds",
            "Time from a request's arrival to its answer",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "audience_sync_receive_in_flight", "Requests being handled", ["endpoint"], registry=self.registry
        )
        self.profiles = Counter(
            "audience_sync_receive_profiles", "Profiles applied (objects sharing an identity are one)",
            registry=self.registry,
        )  # fmt: skip
        self.identities = Counter(
            "audience_sync_receive_identities", "Identities written to (profile ids: one profile hash each)",
            registry=self.registry,
        )  # fmt: skip
        self.changes = Counter(
            "audience_sync_receive_changes",
            "Membership changes applied, by result (added, removed, unchanged, stale)",
            ["result"],
            registry=self.registry,
        )
        self.attributes = Counter(
            "audience_sync_receive_attributes",
            "Attribute values applied, by result (written, unchanged, stale)",
            ["result"],
            registry=self.registry,
        )


class BodyReads:
    """The pushes whose body is still arriving. A stop cuts them at once: nothing of them was written, and
    the sender, whose connection closes without an answer, retries elsewhere (a half-sent body could
    otherwise hold the stop for the whole shutdown timeout)."""

    def __init__(self) -> None:
        self.stopping = False
        self._reading: set[asyncio.Task[Any]] = set()

    async def read(self, request: web.Request) -> bytes:
        """The request's body (HTTPRequestEntityTooLarge above the app's max size); cancelled by :meth:`cut`."""
        task = asyncio.current_task()
        assert task is not None
        if self.stopping and not request.content.is_eof():
            raise asyncio.CancelledError  # arrived on an open connection after the stop began
        self._reading.add(task)
        try:
            return await request.read()
        finally:
            self._reading.discard(task)

    def cut(self) -> int:
        """Stop: cancel every body still being read, and any that starts later. Returns how many."""
        self.stopping = True
        for task in self._reading:
            task.cancel()
        return len(self._reading)


BODY_READS: Final = web.AppKey("body_reads", BodyReads)


class Readiness:
    """Logs when readiness changes (not on every probe)."""

    def __init__(self) -> None:
        self._problem: str | None = None

    def ready(self) -> None:
        if self._problem is not None:
            log.warning("ready again: Redis takes writes")
            self._problem = None

    def not_ready(self, problem: str) -> None:
        if problem != self._problem:
            log.warning("not ready (GET /health answers 503): %s", problem)
            self._problem = problem


@dataclass(frozen=True, slots=True)
class AppOptions:
    payload: PayloadOptions = field(default_factory=PayloadOptions)
    max_body: int = 4 << 20
    redis_timeout: float = 2.0  # for /health's PING


def _error(status: int, message: str, **extra: Any) -> web.Response:
    headers = {"Retry-After": RETRY_AFTER} if status == 503 else None
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


def _refused(refused: Refused, scheme: str = "Bearer") -> web.Response:
    challenge = f'{scheme} realm="audience-sync"'
    if scheme == "Bearer" and refused.error != "invalid_request":
        challenge += f', error="{refused.error}"'
    return web.json_response(
        {"error": refused.error, "error_description": refused.detail},
        status=refused.status,
        headers={"WWW-Authenticate": challenge},
    )


def build_app(
    store: SyncStore,
    writer: BatchWriter,
    authenticator: Authenticator,
    options: AppOptions,
    metrics: Metrics,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    bodies = BodyReads()
    readiness = Readiness()

    @web.middleware
    async def measured(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        endpoint = request.path if request.path in ENDPOINTS else "other"
        in_flight = metrics.in_flight.labels(endpoint)
        in_flight.inc()
        try:
            response = await handler(request)
            status = response.status
        except web.HTTPException as exc:  # 404, 405, 413 raised by aiohttp: answered as JSON
            status = exc.status
            response = _error(status, exc.reason)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            status = 500
            response = _error(500, "internal error")
        finally:
            in_flight.dec()
        metrics.requests.labels(endpoint, str(status)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    async def push(request: web.Request) -> web.Response:
        try:
            authenticator.check_push(request.headers.get("Authorization"), clock())
        except Refused as refused:
            return _refused(refused)
        body = await bodies.read(request)  # HTTPRequestEntityTooLarge (413) above max_body
        try:
            payload = parse_payload(body, request.content_type, options.payload, clock())
        except PayloadError as bad:
            return _error(400, str(bad), errors=bad.errors, bad_items=bad.count)
        try:
            tally, attributes = await writer.apply(payload.changes, payload.attributes)
        except StoreUnavailable as exc:
            log.warning("Redis unavailable: %s", exc)
            return _error(503, "Redis unavailable: retry later")
        except StoreFailure as exc:
            log.error("Redis error: %s", exc)
            return _error(503, "Redis error: retry later")
        profiles, identities = payload.profiles, payload.identities
        metrics.profiles.inc(profiles)
        metrics.identities.inc(identities)
        for result in ("added", "removed", "unchanged", "stale"):
            metrics.changes.labels(result).inc(getattr(tally, result))
        answer: dict[str, object] = {
            "profiles": profiles,
            "identities": identities,
            "changes": len(payload.changes),
            "added": tally.added,
            "removed": tally.removed,
            "unchanged": tally.unchanged,
            "stale": tally.stale,
            "expired": tally.expired,
        }
        if payload.attributes:
            counted = attributes.as_json()
            for result, count in counted.items():
                metrics.attributes.labels(result).inc(count)
            answer["attributes"] = {"values": len(payload.attributes), **counted}
        return web.json_response(answer)

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        client_id, secret = form.get("client_id"), form.get("client_secret")
        scheme = "Bearer"
        basic = request.headers.get("Authorization", "")
        if basic[:6].lower() == "basic ":  # RFC 6749 2.3.1: credentials in HTTP Basic are preferred
            scheme = "Basic"
            try:
                client_id, _, secret = base64.b64decode(basic[6:].strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return _refused(Refused(401, "invalid_client", "malformed Basic credentials"), "Basic")
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if not isinstance(client_id, str) or not isinstance(secret, str):
            return _refused(Refused(401, "invalid_client", "client_id and client_secret are required"), scheme)
        try:
            access_token, lifetime = authenticator.issue(client_id, secret, clock())
        except Refused as refused:
            return _refused(refused, scheme)
        return web.json_response(
            {"access_token": access_token, "token_type": "Bearer", "expires_in": lifetime, "scope": "audiences"},
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    async def health(_: web.Request) -> web.Response:
        """Ready when Redis takes a write, as a push needs: not when it only answers PING (full, a replica)."""
        try:
            await asyncio.wait_for(asyncio.to_thread(store.probe_write), options.redis_timeout)
        except (TimeoutError, *StoreUnavailable) as exc:
            problem = f"Redis unavailable: {exc or 'no answer'}"
        except StoreFailure as exc:
            problem = f"Redis refuses writes: {type(exc).__name__}: {exc}"
        else:
            readiness.ready()
            return web.json_response({"status": "ok"})
        readiness.not_ready(problem)
        return _error(503, problem)

    async def prometheus(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(metrics.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    app = web.Application(middlewares=[measured], client_max_size=options.max_body)
    app[BODY_READS] = bodies
    app.router.add_post(PUSH_PATH, push)
    if authenticator.access.clients:
        app.router.add_post(TOKEN_PATH, token)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", prometheus)
    return app
