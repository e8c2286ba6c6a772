"""The gRPC servicer: protobuf in, domain call, protobuf out; domain errors -> status codes here only."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from decision.api import convert, request_guard
from decision.api.guards import Registry
from decision.core.types import Decision, InvalidRequest
from decision.service import stages
from decision.service.decider import DecisionService
from decision.service.events import EventsUnavailable
from decision.settings import Limits
from decision.v1 import decision_pb2, decision_pb2_grpc

log = logging.getLogger(__name__)

_Response = TypeVar("_Response")
SERVICE = decision_pb2.DESCRIPTOR.services_by_name["DecisionService"].full_name

# The one mapping of domain errors to gRPC status codes.
STATUS_FOR: dict[type[Exception], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    EventsUnavailable: grpc.StatusCode.UNAVAILABLE,
}


async def _call(context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[_Response]]) -> _Response:
    try:
        return await work()
    except tuple(STATUS_FOR) as exc:
        await context.abort(STATUS_FOR[type(exc)], str(exc))
        raise  # unreachable: abort raises


class DecisionServicer(decision_pb2_grpc.DecisionServiceServicer):  # type: ignore[misc]
    """DecisionService. Decide takes the request's bytes and answers the response's (``add_to_server``
    registers it so): parsed here, answered without building response messages (``convert``)."""

    def __init__(
        self, service: DecisionService, limits: Limits, on_decision: Callable[[Decision], None] | None = None
    ) -> None:
        self.service = service
        self.limits = limits
        # Told every decision (the metrics' proposition counts), when set.
        self.on_decision = on_decision

    async def Decide(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        stages.mark("request")
        message = request_guard.parse(decision_pb2.DecideRequest.FromString, request)
        if isinstance(message, request_guard.Malformed):
            await request_guard.refuse(context, message)
        return await _call(context, lambda: self.answer(message, context.time_remaining()))

    async def answer(self, request: decision_pb2.DecideRequest, time_remaining: float | None) -> bytes:
        """Decide's answer, as bytes (what it does but gRPC's part); raises InvalidRequest."""
        stages.mark("request")
        domain_request = convert.decide_request(request, self.limits)
        decision = await self.service.decide(domain_request, time_remaining)
        stages.mark("response")
        if self.on_decision is not None:
            self.on_decision(decision)
        response = convert.decide_response_bytes(decision)
        stages.done()
        return response

    async def RecordEvents(
        self, request: decision_pb2.RecordEventsRequest, context: grpc.aio.ServicerContext
    ) -> decision_pb2.RecordEventsResponse:
        async def work() -> decision_pb2.RecordEventsResponse:
            results = await self.service.record_events(convert.record_events_request(request))
            return convert.record_events_response(results)

        return await _call(context, work)


def add_to_server(servicer: DecisionServicer, server: grpc.aio.Server | Registry) -> None:
    """Register DecisionService: Decide with no (de)serializer (bytes in and out), RecordEvents as generated."""
    handlers = {
        "Decide": grpc.unary_unary_rpc_method_handler(servicer.Decide),
        "RecordEvents": grpc.unary_unary_rpc_method_handler(
            servicer.RecordEvents,
            request_deserializer=decision_pb2.RecordEventsRequest.FromString,
            response_serializer=decision_pb2.RecordEventsResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
