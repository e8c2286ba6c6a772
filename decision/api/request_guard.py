"""Bytes that are not a valid request message get INVALID_ARGUMENT, not UNKNOWN.

gRPC Python turns an exception in a request deserializer into UNKNOWN with
the exception's text. This interceptor wraps every method's deserializer: a
message that does not parse (corrupt wire format, invalid UTF-8 in a string,
nesting deeper than protobuf's limit) reaches the method as a marker, and the
call ends with INVALID_ARGUMENT naming the message type and the parser's reason. A method registered
without a deserializer (Decide: bytes in, bytes out) is passed through: it parses with ``parse`` and
``refuse`` itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from decision.api.handlers import behaviour_of, rebuild

MAX_REASON_CHARS = 200


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str


def parse(deserializer: Callable[[bytes], Any], data: bytes) -> Any:
    """The message, or Malformed saying why the bytes are not one (a method that parses its own bytes calls
    this and ``refuse``, as the guard does for the others)."""
    try:
        return deserializer(data)
    except Exception as exc:  # any parser failure is the caller's bad bytes
        return Malformed(str(exc)[:MAX_REASON_CHARS] or type(exc).__name__)


def _safe(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parsed(data: bytes) -> Any:
        return parse(deserializer, data)

    return parsed


async def refuse(context: grpc.aio.ServicerContext, malformed: Malformed) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request: not a valid message: {malformed.reason}")


async def _checked_stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Malformed):
            await refuse(context, request)
        yield request


def _guarded(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    inner = behaviour_of(handler)

    async def _request(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if handler.request_streaming:
            return _checked_stream(request, context)
        if isinstance(request, Malformed):
            await refuse(context, request)
        return request

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await inner(await _request(request, context), context)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for response in inner(await _request(request, context), context):
            yield response

    return rebuild(handler, unary=unary, streaming=streaming, request_deserializer=_safe(handler.request_deserializer))


class RequestGuardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self._cache: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        guarded = self._cache.get(details.method)
        if guarded is None:  # one wrapper per method, built on first use
            guarded = self._cache[details.method] = _guarded(handler)
        return guarded
