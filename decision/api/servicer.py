"""The gRPC servicer: protobuf in, domain call, protobuf out; domain errors -> status codes here only."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from decision.api import convert
from decision.core.types import InvalidRequest
from decision.service import stages
from decision.service.decider import DecisionService
from decision.service.events import EventsUnavailable
from decision.settings import Limits
from decision.v1 import decision_pb2, decision_pb2_grpc

log = logging.getLogger(__name__)

_Response = TypeVar("_Response")

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
    def __init__(self, service: DecisionService, limits: Limits) -> None:
        self.service = service
        self.limits = limits

    async def Decide(
        self, request: decision_pb2.DecideRequest, context: grpc.aio.ServicerContext
    ) -> decision_pb2.DecideResponse:
        return await _call(context, lambda: self.answer(request, context.time_remaining()))

    async def answer(
        self, request: decision_pb2.DecideRequest, time_remaining: float | None
    ) -> decision_pb2.DecideResponse:
        """Decide's answer (what it does but gRPC's part); raises InvalidRequest."""
        started = stages.start()
        domain_request = convert.decide_request(request, self.limits)
        stages.lap("convert_request", started)
        decision = await self.service.decide(domain_request, time_remaining)
        started = stages.start()
        response = convert.decide_response(decision)
        stages.lap("build_response", started)
        return response

    async def RecordEvents(
        self, request: decision_pb2.RecordEventsRequest, context: grpc.aio.ServicerContext
    ) -> decision_pb2.RecordEventsResponse:
        async def work() -> decision_pb2.RecordEventsResponse:
            results = await self.service.record_events(convert.record_events_request(request))
            return convert.record_events_response(results)

        return await _call(context, work)
