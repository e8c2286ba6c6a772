"""Optional bearer-token authentication for the gRPC API.

Callers send ``authorization: Bearer <token>`` metadata; a call without a
token the server accepts ends with UNAUTHENTICATED before its request is even
parsed. Health checking and reflection stay open (load balancers and probes
call them without credentials). Tokens come from a file and/or the environment
variable ``DECISION_AUTH_TOKENS``, read as audience-sync reads its own
(``inbound_common.secret_files``: the format, the scopes, the constant-time
comparison). Several tokens may be valid at once, for rotation.

**Scopes.** A file line may name the token's scopes after it: ``<token> decide,events``.
A line without scopes, and every token from the environment, has all scopes (what
tokens meant before scopes existed). ``METHOD_SCOPES`` says which scope each
method needs; a method it does not name needs ``admin``. An accepted token
without the scope gets PERMISSION_DENIED. The ``console`` scope is the web
console's (``decision console``, which checks tokens with ``AcceptedTokens`` too).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from decision.api.handlers import refusing_handler
from inbound_common.secret_files import AcceptedTokens, BearerToken

# Services callable without a token.
OPEN_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
# The one place that says which scope a method needs; unnamed methods need ADMIN_SCOPE.
METHOD_SCOPES = {
    "/decision.v1.DecisionService/Decide": "decide",
    "/decision.v1.DecisionService/RecordEvents": "events",
}
ADMIN_SCOPE = "admin"
# Reasons of refused calls (the interceptor's ``refused`` counts, exported as metrics).
UNAUTHENTICATED = "unauthenticated"
PERMISSION_DENIED = "permission_denied"


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls (except health and reflection) without an accepted bearer token holding the method's scope."""

    def __init__(self, tokens: tuple[BearerToken, ...]) -> None:
        if not tokens:
            raise ValueError("no tokens: do not install the interceptor")
        self._accepted = AcceptedTokens(tokens)
        # Refused calls by reason (UNAUTHENTICATED, PERMISSION_DENIED), read by the metrics.
        self.refused: dict[str, int] = {UNAUTHENTICATED: 0, PERMISSION_DENIED: 0}

    def scopes_of(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> frozenset[str] | None:
        """The presented token's scopes, or None when it presents no accepted token."""
        presented = next((value for key, value in metadata or () if key == "authorization"), None)
        return self._accepted.of_header(presented) if isinstance(presented, str) else None

    def accepts(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> bool:
        return self.scopes_of(metadata) is not None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        scopes = self.scopes_of(details.invocation_metadata)
        if scopes is None:
            self.refused[UNAUTHENTICATED] += 1
            return refusing_handler(
                handler, grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token (authorization metadata)"
            )
        needed = METHOD_SCOPES.get(details.method, ADMIN_SCOPE)
        if needed in scopes:
            return handler
        self.refused[PERMISSION_DENIED] += 1
        return refusing_handler(
            handler, grpc.StatusCode.PERMISSION_DENIED, f"the bearer token lacks the {needed!r} scope this call needs"
        )
