"""Bytes that are not a valid request message get INVALID_ARGUMENT, not UNKNOWN.

gRPC Python turns an exception in a request deserializer into UNKNOWN with
the exception's text. Every method is registered behind this guard
(``decision.api.guards``): a message that does not parse (corrupt wire format,
invalid UTF-8 in a string, nesting deeper than protobuf's limit) ends the call
with INVALID_ARGUMENT naming the parser's reason. A method that takes its
request's bytes (Decide: bytes in, bytes out) calls ``parse`` and ``refuse`` itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc

MAX_REASON_CHARS = 200


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str


def parse(deserializer: Callable[[bytes], Any], data: bytes) -> Any:
    """The message, or Malformed saying why the bytes are not one."""
    try:
        return deserializer(data)
    except Exception as exc:  # any parser failure is the caller's bad bytes
        return Malformed(str(exc)[:MAX_REASON_CHARS] or type(exc).__name__)


def details(malformed: Malformed) -> str:
    """The INVALID_ARGUMENT details of a request that does not parse."""
    return f"request: not a valid message: {malformed.reason}"


async def refuse(context: grpc.aio.ServicerContext, malformed: Malformed) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, details(malformed))


def safe(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer answering Malformed instead of raising (for streamed requests: ``checked_stream``)."""
    if deserializer is None:
        return None
    parser = deserializer

    def parsed(data: bytes) -> Any:
        return parse(parser, data)

    return parsed


async def checked_stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    """Streamed requests read by a ``safe`` deserializer: the call ends at the first that does not parse."""
    async for request in requests:
        if isinstance(request, Malformed):
            await refuse(context, request)
        yield request
