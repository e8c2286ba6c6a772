"""Building gRPC method handlers that stand in for another one (for server interceptors).

An interceptor that refuses a call must hand back a handler of the same kind
(unary or streaming on each side) as the method's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

Deserializer = Callable[[bytes], Any] | None


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> None:
    await context.abort(code, details)


def refusing_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, details: str) -> grpc.RpcMethodHandler:
    """A handler like ``handler`` that ends every call with ``code`` without reading the request."""

    async def unary(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _abort(context, code, details)

    async def streaming(_request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await _abort(context, code, details)
        yield  # pragma: no cover - makes this an async generator; abort raises

    return rebuild(handler, unary=unary, streaming=streaming, request_deserializer=None)


def rebuild(
    handler: grpc.RpcMethodHandler,
    *,
    unary: Callable[..., Any],
    streaming: Callable[..., Any],
    request_deserializer: Deserializer,
) -> grpc.RpcMethodHandler:
    """A handler of ``handler``'s kind: ``unary`` answers once, ``streaming`` yields answers."""
    serializer = handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        make = grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        make = grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        make = grpc.unary_stream_rpc_method_handler
    else:
        make = grpc.unary_unary_rpc_method_handler
    behaviour = streaming if handler.response_streaming else unary
    return make(behaviour, request_deserializer=request_deserializer, response_serializer=serializer)


def behaviour_of(handler: grpc.RpcMethodHandler) -> Callable[..., Any]:
    """The servicer function a handler calls."""
    if handler.request_streaming and handler.response_streaming:
        return handler.stream_stream  # type: ignore[no-any-return]
    if handler.request_streaming:
        return handler.stream_unary  # type: ignore[no-any-return]
    if handler.response_streaming:
        return handler.unary_stream  # type: ignore[no-any-return]
    return handler.unary_unary  # type: ignore[no-any-return]
