"""Scoped bearer tokens, warnings at start, and the security metrics, on a real server over loopback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from decision.api.auth import METHOD_SCOPES
from decision.store.embedded import free_port
from decision.v1 import decision_pb2, decision_pb2_grpc
from inbound_common.secret_files import BearerToken
from tests.conftest import StartServer
from tests.decision.helpers import add_membership, decide_request
from tests.decision.observe.test_observe import scrape, value
from tests.waiting import eventually

RULES = """
placements: [{id: banner, channels: [web], max_items: 3, fallback: fb}]
offers:
  - {id: fb, placements: [banner], eligibility: {audiences: {all: [nobody]}}}
  - {id: vip, placements: [banner], eligibility: {audiences: {all: [vip]}}}
"""
DECIDE_ONLY = BearerToken("token-decide-only-00001", frozenset({"decide"}))
EVENTS_ONLY = BearerToken("token-events-only-00002", frozenset({"events"}))
ADMIN_ONLY = BearerToken("token-admin-only-000003", frozenset({"admin"}))
ALL = BearerToken("token-with-all-scopes-04")
TOKENS = (DECIDE_ONLY, EVENTS_ONLY, ADMIN_ONLY, ALL)


async def call(channel: grpc.aio.Channel, method: str, token: BearerToken | None) -> grpc.StatusCode:
    """The status of one call of ``method`` with ``token`` (the request itself is valid or harmlessly empty)."""
    stub = decision_pb2_grpc.DecisionServiceStub(channel)
    metadata = None if token is None else (("authorization", f"Bearer {token.token}"),)
    try:
        if method.endswith("/Decide"):
            await stub.Decide(decide_request(placements=["banner"]), timeout=5, metadata=metadata)
        else:
            await stub.RecordEvents(decision_pb2.RecordEventsRequest(), timeout=5, metadata=metadata)
    except grpc.aio.AioRpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


async def test_each_method_needs_its_scope(start_server: StartServer, write_rules: Callable[[str], Path]) -> None:
    server = await start_server(write_rules(RULES), auth_tokens=TOKENS, metrics_port=0)
    # An empty RecordEvents batch is INVALID_ARGUMENT: past authentication, so the scope was granted.
    granted = {"Decide": grpc.StatusCode.OK, "RecordEvents": grpc.StatusCode.INVALID_ARGUMENT}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        for method, scope in METHOD_SCOPES.items():
            name = method.rsplit("/", 1)[1]
            for token in TOKENS:
                expected = granted[name] if scope in token.scopes else grpc.StatusCode.PERMISSION_DENIED
                assert await call(channel, method, token) is expected, (method, token.scopes)
            assert await call(channel, method, None) is grpc.StatusCode.UNAUTHENTICATED
    denied = sum(1 for scope in METHOD_SCOPES.values() for t in TOKENS if scope not in t.scopes)
    assert denied == 4
    wanted = {"unauthenticated": 2.0, "permission_denied": float(denied)}

    async def refused() -> bool:  # the metrics sample the interceptor's counts every second
        samples = await scrape(server.metrics_port or 0)
        return {r: value(samples, "decision_refused_calls_total", reason=r) for r in wanted} == wanted

    await eventually(refused, f"refused calls counted {wanted}", interval=0.1)


async def test_warnings_at_start(
    start_server: StartServer, write_rules: Callable[[str], Path], caplog: pytest.LogCaptureFixture
) -> None:
    rules = write_rules(RULES)
    with caplog.at_level(logging.WARNING, logger="decision.api.security"):
        await start_server(rules, host="127.0.0.1")
        quiet_exposure = [r.message for r in caplog.records if "without TLS or bearer tokens" in r.message]
        assert quiet_exposure == []  # loopback: no exposure warning ...
        assert any("tracking tokens are signed with a random key" in r.message for r in caplog.records)  # ... but this
        caplog.clear()
        await start_server(rules, host="0.0.0.0", port=free_port())
        assert any("serving on 0.0.0.0 without TLS or bearer tokens" in r.message for r in caplog.records)
        caplog.clear()
        await start_server(rules, host="0.0.0.0", port=free_port(), auth_tokens=(ALL,))
        assert not any("without TLS or bearer tokens" in r.message for r in caplog.records)


async def test_breaker_and_registry_lost_metrics(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_client: aioredis.Redis
) -> None:
    rules = write_rules(RULES)
    dead = await start_server(rules, f"redis://127.0.0.1:{free_port()}/0", metrics_port=0, breaker_failures=1)
    server = await start_server(rules, metrics_port=0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{dead.port}") as channel:
        assert await call(channel, "/Decide", None) is grpc.StatusCode.OK  # fallbacks, and the breaker opens
    await add_membership(server, "p1", "vip")
    await server.store.refresh_directory()
    await redis_client.flushall()  # Redis restarted empty: the registry is lost
    await server.store.refresh_directory()
    assert server.store.registry_lost_total == 1

    async def exported() -> bool:
        open_now = value(await scrape(dead.metrics_port or 0), "decision_redis_breaker_open", node="single")
        lost = value(await scrape(server.metrics_port or 0), "decision_audience_registry_lost_total")
        return (open_now, lost) == (1.0, 1.0)

    await eventually(exported, "the breaker open and the registry lost, exported", interval=0.1)
