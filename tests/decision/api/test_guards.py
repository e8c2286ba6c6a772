"""The guards every method is registered behind (no server interceptor): authentication before parsing, the
request guard, RPC metrics by final code, for every kind of method, on a real gRPC server over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from decision.api.auth import TokenAuth
from decision.api.guards import Guards, Registry
from decision.observe.metrics import Metrics
from inbound_common.secret_files import BearerToken

ADMIN = BearerToken("token-admin-scope-000001", frozenset({"admin"}))
DECIDE_ONLY = BearerToken("token-decide-only-000002", frozenset({"decide"}))
VALID = health_pb2.HealthCheckRequest(service="x").SerializeToString()
MALFORMED = b"\x0a\x01\xff"  # field 1, a string, of invalid UTF-8
ANSWER = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


async def _unary(request: health_pb2.HealthCheckRequest, _: grpc.aio.ServicerContext) -> Any:
    assert isinstance(request, health_pb2.HealthCheckRequest)
    return ANSWER


async def _unary_stream(request: health_pb2.HealthCheckRequest, _: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    assert isinstance(request, health_pb2.HealthCheckRequest)
    yield ANSWER


async def _stream_unary(requests: AsyncIterator[Any], _: grpc.aio.ServicerContext) -> Any:
    async for request in requests:
        assert isinstance(request, health_pb2.HealthCheckRequest)
    return ANSWER


async def _stream_stream(requests: AsyncIterator[Any], _: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    async for request in requests:
        assert isinstance(request, health_pb2.HealthCheckRequest)
        yield ANSWER


def _handlers() -> dict[str, grpc.RpcMethodHandler]:
    parse, write = health_pb2.HealthCheckRequest.FromString, health_pb2.HealthCheckResponse.SerializeToString
    return {
        "unary_unary": grpc.unary_unary_rpc_method_handler(_unary, parse, write),
        "unary_stream": grpc.unary_stream_rpc_method_handler(_unary_stream, parse, write),
        "stream_unary": grpc.stream_unary_rpc_method_handler(_stream_unary, parse, write),
        "stream_stream": grpc.stream_stream_rpc_method_handler(_stream_stream, parse, write),
    }


@pytest.fixture(params=["generic", "registered"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[grpc.aio.Channel, Metrics, TokenAuth]]:
    """A server of the four kinds of method behind the guards (authentication on, metrics), registered as a
    generic handler or as registered methods (the generated ``add_*_to_server`` do both)."""
    metrics, auth = Metrics(), TokenAuth((ADMIN, DECIDE_ONLY))
    server = grpc.aio.server()
    registry = Registry(server, Guards(auth, metrics))
    if request.param == "generic":
        registry.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Kinds", _handlers()),))
    else:
        registry.add_registered_method_handlers("test.Kinds", _handlers())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel, metrics, auth
    finally:
        await server.stop(None)


async def _status(
    channel: grpc.aio.Channel, kind: str, body: bytes, token: BearerToken | None, refused: bool
) -> grpc.StatusCode:
    """The status of one call of ``kind`` sending ``body`` (twice when it streams requests) with ``token``; the
    answers of an OK call checked. A call streaming its requests is written to only as far as the server reads
    (none when it is ``refused`` by authentication, up to a malformed one): grpc's client turns a write that
    meets the call's end into INTERNAL."""
    method = f"/test.Kinds/{kind}"
    metadata = None if token is None else (("authorization", f"Bearer {token.token}"),)
    call: Any = getattr(channel, kind)(method)(*(() if kind.startswith("stream") else (body,)), timeout=5,
                                              metadata=metadata)  # fmt: skip
    if kind.startswith("stream") and not refused:
        await call.write(body)
        if body != MALFORMED:  # else the call ends at that first message: nothing more may be written
            await call.write(body)
            await call.done_writing()
    try:
        replies = [reply async for reply in call] if kind.endswith("stream") else [await call]
    except grpc.aio.AioRpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    assert replies and all(health_pb2.HealthCheckResponse.FromString(r) == ANSWER for r in replies)
    return grpc.StatusCode.OK


def _cases() -> Iterator[tuple[bytes, BearerToken | None, grpc.StatusCode]]:
    yield MALFORMED, None, grpc.StatusCode.UNAUTHENTICATED  # authenticated before the request is parsed
    yield VALID, None, grpc.StatusCode.UNAUTHENTICATED
    yield MALFORMED, DECIDE_ONLY, grpc.StatusCode.PERMISSION_DENIED  # test.Kinds needs the admin scope
    yield MALFORMED, ADMIN, grpc.StatusCode.INVALID_ARGUMENT
    yield VALID, ADMIN, grpc.StatusCode.OK


@pytest.mark.parametrize("kind", KINDS)
async def test_every_kind_of_method_is_authenticated_then_parsed_then_answered(
    served: tuple[grpc.aio.Channel, Metrics, TokenAuth], kind: str
) -> None:
    channel, metrics, auth = served
    for body, token, expected in _cases():
        refused = expected in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
        assert await _status(channel, kind, body, token, refused) is expected, (body, token)
    assert auth.refused == {"unauthenticated": 2, "permission_denied": 1}
    # Unary calls are timed by their final code, refused ones included; streaming ones are not.
    counted = {
        code: metrics.registry.get_sample_value(
            "decision_rpc_calls_total", {"method": f"/test.Kinds/{kind}", "code": code}
        )
        for code in ("UNAUTHENTICATED", "PERMISSION_DENIED", "INVALID_ARGUMENT", "OK")
    }
    if kind == "unary_unary":
        assert counted == {"UNAUTHENTICATED": 2.0, "PERMISSION_DENIED": 1.0, "INVALID_ARGUMENT": 1.0, "OK": 1.0}
    else:
        assert set(counted.values()) == {None}


def test_a_method_that_needs_no_guard_is_registered_as_it_is() -> None:
    """Without authentication and metrics, a method taking its request's bytes is served as registered (Decide
    without --auth-tokens-file and --metrics-port: nothing between grpc and the servicer)."""
    handler = grpc.unary_unary_rpc_method_handler(_unary)
    assert Guards().wrap("/decision.v1.DecisionService/Decide", handler) is handler
    # Health and reflection need no token: only their requests are guarded.
    health = grpc.unary_unary_rpc_method_handler(_unary, health_pb2.HealthCheckRequest.FromString)
    wrapped = Guards(TokenAuth((ADMIN,))).wrap("/grpc.health.v1.Health/Check", health)
    assert wrapped is not health and wrapped.request_deserializer is None
