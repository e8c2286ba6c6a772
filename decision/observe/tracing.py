"""OpenTelemetry spans for Decide (``--otel``): opt-in, and nothing is imported or run without it.

Spans go to the global tracer provider. When none is configured (not run
under ``opentelemetry-instrument``) and the SDK is installed, one is set up
with the OTLP exporter if installed, or the console (``OTEL_TRACES_EXPORTER=console``).
The caller's ``traceparent`` metadata makes the span a child of its trace.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from decision.observe.metrics import DECIDE_METHOD
from decision.v1 import decision_pb2

log = logging.getLogger(__name__)

SPAN_NAME = "decision.v1.DecisionService/Decide"
# Server-side codes that are the server's fault (OpenTelemetry's gRPC conventions).
ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def decide_tracing() -> DecideTracing | None:
    """Decide's spans, or None (logged) when opentelemetry-api is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        log.warning("--otel: opentelemetry-api is not installed (pip install 'inbound-decisioning[otel]'): no spans")
        return None
    _ensure_provider()
    return DecideTracing(trace.get_tracer("decision"))


def _ensure_provider() -> None:
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return  # configured already (opentelemetry-instrument, the embedding application)
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
    except ImportError:
        log.warning(
            "--otel: opentelemetry-sdk is not installed and no tracer provider is configured: spans are dropped"
        )
        return
    exporter: SpanExporter | None = None
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp") == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporter = ConsoleSpanExporter()
    else:
        for module in (
            "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        ):
            try:
                exporter = importlib.import_module(module).OTLPSpanExporter()
                break
            except ImportError:
                continue
    if exporter is None:
        log.warning("--otel: no OTLP exporter installed (opentelemetry-exporter-otlp): spans are dropped")
        return
    provider = TracerProvider(resource=Resource.create({"service.name": "decision"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


class DecideTracing:
    """Wraps Decide's handler (``decision.api.guards`` applies it where Decide is registered): a span per call."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer

    def wrappers(self) -> dict[str, Callable[[grpc.RpcMethodHandler], grpc.RpcMethodHandler]]:
        """Method -> the wrapper of its handler (Decide only)."""
        return {DECIDE_METHOD: self.wrap}

    def wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            self._traced(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _traced(
        self, behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
    ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, Status, StatusCode

        tracer = self.tracer

        async def traced(raw: Any, context: grpc.aio.ServicerContext) -> Any:
            # Decide takes and answers bytes (decision.api.servicer): read here only when tracing.
            request = decision_pb2.DecideRequest.FromString(raw) if isinstance(raw, bytes) else raw
            carrier = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
            attributes = {
                "rpc.system": "grpc",
                "rpc.service": "decision.v1.DecisionService",
                "rpc.method": "Decide",
                "decision.channel": request.channel,
                "decision.placements": [p.placement_id for p in request.placements],
            }
            with tracer.start_as_current_span(
                SPAN_NAME,
                context=propagate.extract(carrier),
                kind=SpanKind.SERVER,
                attributes=attributes,
                set_status_on_exception=False,
            ) as span:
                try:
                    answered = await behavior(raw, context)
                except Exception as exc:
                    code = context.code()
                    if isinstance(code, grpc.StatusCode):
                        span.set_attribute("rpc.grpc.status_code", code.value[0])
                    if not isinstance(code, grpc.StatusCode) or code in ERROR_CODES:
                        span.set_status(Status(StatusCode.ERROR, str(exc)))
                    raise
                span.set_attribute("rpc.grpc.status_code", 0)
                response = decision_pb2.DecideResponse.FromString(answered) if isinstance(answered, bytes) else answered
                span.set_attribute("decision.ruleset_version", response.ruleset_version)
                span.set_attribute("decision.degraded", response.degraded)
                span.set_attribute("decision.fallbacks", sum(1 for p in response.propositions if p.fallback))
                return answered

        return traced
