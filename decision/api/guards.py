"""What stands in front of every method, applied once where the method is registered: no server interceptor.

grpc.aio runs a server's interceptors on every call, each one a chain of coroutines awaited before the
method is even found, whatever the method. Here the server has none: each method's handler is wrapped
once, when its service registers (:class:`Registry` stands for the server then), by :meth:`Guards.wrap`,
in this order, outermost first:

1. tracing (``--otel``, Decide only: ``decision.observe.tracing``);
2. RPC metrics (``--metrics-port``): every unary call timed by method and final status code, refused
   calls included (``decision_rpc_calls_total``, ``decision_rpc_duration_seconds``);
3. authentication (``--auth-tokens-file``): a call without an accepted bearer token holding the method's
   scope ends with UNAUTHENTICATED or PERMISSION_DENIED before its request is parsed (``decision.api.auth``);
4. the request guard: a request that does not parse ends with INVALID_ARGUMENT naming the message type
   (``decision.api.request_guard``), not UNKNOWN.

Checks 2-4 run in one coroutine per call around the method's own (none at all when a method needs none of
them). A unary request is registered without a deserializer: the wrapper parses it after authentication,
or hands its bytes on to a method that parses them itself (Decide: bytes in, bytes out).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Protocol, TypeAlias

import grpc

from decision.api import request_guard
from decision.api.auth import Refusal, TokenAuth, needed_scope

Handler: TypeAlias = grpc.RpcMethodHandler
Behaviour: TypeAlias = Callable[..., Any]


class RpcMetrics(Protocol):
    """Where calls are counted (``decision.observe.metrics.Metrics``)."""

    def rpc(self, method: str, code: str, seconds: float) -> None: ...


def code_name(code: object) -> str | None:
    """The name of a status code as the servicer context holds it (a StatusCode, or its number)."""
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(code, int):
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return str(status.name)
    return None


class Guards:
    """Wraps each method's handler with the tracing, metrics, authentication and request guard it needs."""

    def __init__(
        self,
        auth: TokenAuth | None = None,
        metrics: RpcMetrics | None = None,
        traced: Mapping[str, Callable[[Handler], Handler]] | None = None,
    ) -> None:
        self.auth = auth
        self.metrics = metrics
        # Method -> its tracing wrapper (decision.observe.tracing), outermost.
        self.traced = dict(traced or {})

    def wrap(self, method: str, handler: Handler) -> Handler:
        """``handler`` of ``method`` (``/package.Service/Method``) behind its guards; itself when it needs none."""
        guarded = self._guarded(method, handler)
        trace = self.traced.get(method)
        return guarded if trace is None else trace(guarded)

    def _guarded(self, method: str, handler: Handler) -> Handler:
        needed = None if self.auth is None else needed_scope(method)
        deserializer = handler.request_deserializer
        streaming_in, streaming_out = handler.request_streaming, handler.response_streaming
        timed = self.metrics is not None and not streaming_in and not streaming_out
        if needed is None and deserializer is None and not timed:
            return handler
        if streaming_in:
            behaviour = self._streaming_requests(method, handler, needed)
            return _rebuild(handler, behaviour, request_deserializer=request_guard.safe(deserializer))
        behaviour = self._unary_request(method, handler, needed, timed)
        return _rebuild(handler, behaviour, request_deserializer=None)

    async def _refuse_unless_allowed(self, needed: str | None, context: grpc.aio.ServicerContext) -> None:
        if needed is not None and self.auth is not None:
            refusal = self.auth.refusal(needed, context.invocation_metadata())
            if refusal is not None:
                await context.abort(refusal.code, refusal.details)

    def _unary_request(self, method: str, handler: Handler, needed: str | None, timed: bool) -> Behaviour:
        """The behaviour of a method taking one request: refused, parsed, answered, timed, in one coroutine."""
        inner = _behaviour_of(handler)
        deserializer = handler.request_deserializer
        auth = self.auth

        def admit(raw: Any, context: grpc.aio.ServicerContext) -> Any:
            """The request, or the Refusal that ends the call."""
            if needed is not None and auth is not None:
                refusal = auth.refusal(needed, context.invocation_metadata(), raw)
                if refusal is not None:
                    return refusal
            if deserializer is None:
                return raw
            request = request_guard.parse(deserializer, raw)
            if isinstance(request, request_guard.Malformed):
                return Refusal(grpc.StatusCode.INVALID_ARGUMENT, request_guard.details(request))
            return request

        if handler.response_streaming:

            async def streamed(raw: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                request = admit(raw, context)
                if isinstance(request, Refusal):
                    await context.abort(request.code, request.details)
                async for response in inner(request, context):
                    yield response

            return streamed
        if not timed:

            async def unary(raw: Any, context: grpc.aio.ServicerContext) -> Any:
                request = admit(raw, context)
                if isinstance(request, Refusal):
                    await context.abort(request.code, request.details)
                return await inner(request, context)

            return unary
        metrics = self.metrics
        assert metrics is not None

        async def observed(raw: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = "UNKNOWN"
            try:
                request = admit(raw, context)
                if isinstance(request, Refusal):
                    await context.abort(request.code, request.details)
                response = await inner(request, context)
                code = code_name(context.code()) or "OK"
                return response
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except Exception:
                code = code_name(context.code()) or "UNKNOWN"
                raise
            finally:
                metrics.rpc(method, code, time.perf_counter() - started)

        return observed

    def _streaming_requests(self, method: str, handler: Handler, needed: str | None) -> Behaviour:
        """The behaviour of a method reading a stream of requests (each one parsed by the guard's deserializer)."""
        inner = _behaviour_of(handler)
        refuse = self._refuse_unless_allowed

        async def unary(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            await refuse(needed, context)
            return await inner(request_guard.checked_stream(requests, context), context)

        async def streamed(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await refuse(needed, context)
            async for response in inner(request_guard.checked_stream(requests, context), context):
                yield response

        return streamed if handler.response_streaming else unary


def _behaviour_of(handler: Handler) -> Behaviour:
    """The servicer function a handler calls."""
    if handler.request_streaming and handler.response_streaming:
        return handler.stream_stream  # type: ignore[no-any-return]
    if handler.request_streaming:
        return handler.stream_unary  # type: ignore[no-any-return]
    if handler.response_streaming:
        return handler.unary_stream  # type: ignore[no-any-return]
    return handler.unary_unary  # type: ignore[no-any-return]


def _rebuild(handler: Handler, behaviour: Behaviour, *, request_deserializer: Any) -> Handler:
    """A handler of ``handler``'s kind (unary or streaming on each side) calling ``behaviour``."""
    if handler.request_streaming and handler.response_streaming:
        make = grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        make = grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        make = grpc.unary_stream_rpc_method_handler
    else:
        make = grpc.unary_unary_rpc_method_handler
    return make(behaviour, request_deserializer=request_deserializer, response_serializer=handler.response_serializer)


class _GuardedGeneric(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A generic handler whose methods' handlers are guarded (each wrapped once, on its first call)."""

    def __init__(self, inner: grpc.GenericRpcHandler, guards: Guards) -> None:
        self._inner = inner
        self._guards = guards
        self._wrapped: dict[str, Handler] = {}

    def service(self, details: grpc.HandlerCallDetails) -> Handler | None:
        method: str = details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = self._inner.service(details)
            if handler is None:  # not one of its methods (not kept: callers may send any name)
                return None
            wrapped = self._wrapped[method] = self._guards.wrap(method, handler)
        return wrapped


class Registry:
    """Stands for a grpc.aio server while services register (generated ``add_*_to_server`` functions): their
    methods' handlers go to the server behind the guards."""

    def __init__(self, server: grpc.aio.Server, guards: Guards) -> None:
        self.server = server
        self.guards = guards

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self.server.add_generic_rpc_handlers(tuple(_GuardedGeneric(h, self.guards) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Handler]) -> None:
        guarded = {name: self.guards.wrap(f"/{service}/{name}", h) for name, h in handlers.items()}
        self.server.add_registered_method_handlers(service, guarded)
