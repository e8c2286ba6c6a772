"""Graceful shutdown of one worker without losing a call.

Why not just ``server.stop(grace)``: grpcio's core, on shutdown
(``Server::ShutdownAndNotify`` -> ``KillPendingWorkLocked`` -> ``ZombifyPending``),
cancels every call it has already accepted from a connection but not yet handed
to the application. Under load that is most calls in flight: the asyncio
server takes calls from the core one at a time per method, so the rest wait in
the core's queue. Their clients get ``CANCELLED`` -- not safe to retry, and a
Decide may already have counted toward a cap on the way. ``grace`` only
protects calls a servicer has started.

So a worker stops in three steps, the listener open throughout the first two:

1. drain: health reports NOT_SERVING and every call is still served, so that
   load balancers and Kubernetes endpoints stop sending here;
2. refuse: :class:`ShutdownGate` answers each new call ``UNAVAILABLE`` (it was
   not run: a client retries it elsewhere) while grpcio keeps taking calls out
   of its queue, until no call has come for :data:`QUIET` seconds;
3. stop: ``server.stop`` with what is left of the grace; the calls still
   running finish (or are cancelled when the grace runs out).

Health checks are never refused: during the whole shutdown they answer NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from decision.api.handlers import refusing_handler

HEALTH_PREFIX = "/grpc.health.v1.Health/"
# No call for this long after refusing began: grpcio's queue is empty (several event-loop turns on a busy box).
QUIET = 0.25
REFUSED_DETAILS = "server shutting down: the call was not run, retry it"


class ShutdownGate(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Passes calls through until :meth:`close`; then refuses them (except health) with UNAVAILABLE."""

    def __init__(self) -> None:
        self.closed = False
        self.refused = 0
        self._last_call = time.monotonic()

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any) -> Any:
        self._last_call = time.monotonic()
        handler = await continuation(handler_call_details)
        if not self.closed or handler is None or handler_call_details.method.startswith(HEALTH_PREFIX):
            return handler
        self.refused += 1
        return refusing_handler(handler, grpc.StatusCode.UNAVAILABLE, REFUSED_DETAILS)

    def close(self) -> None:
        self.closed = True

    async def wait_quiet(self, deadline: float, quiet: float = QUIET) -> bool:
        """Wait until no call has come for ``quiet`` seconds; False if ``deadline`` (monotonic) came first.

        An idle server (no call for ``quiet`` seconds before closing) returns at once.
        """
        while True:
            now = time.monotonic()
            calm_at = self._last_call + quiet
            if now >= calm_at:
                return True
            if now >= deadline:
                return False
            await asyncio.sleep(min(calm_at, deadline) - now)
