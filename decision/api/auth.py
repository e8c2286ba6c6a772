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
``preview`` allows Decide as a dry run only (``DecideRequest.dry_run``: counted
nowhere): a request that is not one is PERMISSION_DENIED before it is decided.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.message import DecodeError

from decision.api.handlers import refusing_handler
from decision.v1 import decision_pb2
from inbound_common.secret_files import AcceptedTokens, BearerToken

# Services callable without a token.
OPEN_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
DECIDE_METHOD = "/decision.v1.DecisionService/Decide"
# The one place that says which scope a method needs; unnamed methods need ADMIN_SCOPE.
METHOD_SCOPES = {
    DECIDE_METHOD: "decide",
    "/decision.v1.DecisionService/RecordEvents": "events",
}
ADMIN_SCOPE = "admin"
# Decide's requests with ``dry_run`` set (counted nowhere) need only this scope.
PREVIEW_SCOPE = "preview"
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
        if details.method == DECIDE_METHOD and PREVIEW_SCOPE in scopes:
            return self._dry_runs_only(handler)
        self.refused[PERMISSION_DENIED] += 1
        dry_runs = f" (or {PREVIEW_SCOPE!r}, for dry runs only)" if details.method == DECIDE_METHOD else ""
        return refusing_handler(
            handler,
            grpc.StatusCode.PERMISSION_DENIED,
            f"the bearer token lacks the {needed!r} scope this call needs{dry_runs}",
        )

    def _dry_runs_only(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """Decide for a ``preview`` token: a request that does not parse with ``dry_run`` set is refused."""
        decide = handler.unary_unary

        async def unary(request: object, context: grpc.aio.ServicerContext) -> object:
            if not _asks_dry_run(request):
                self.refused[PERMISSION_DENIED] += 1
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"the bearer token has the {PREVIEW_SCOPE!r} scope: Decide only as a dry run (dry_run = true); "
                    "a counted decision needs the 'decide' scope",
                )
            return await decide(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _asks_dry_run(request: object) -> bool:
    """Whether a Decide request (its bytes, as the servicer takes them, or the message) asks for a dry run."""
    if isinstance(request, bytes):
        try:
            request = decision_pb2.DecideRequest.FromString(request)
        except DecodeError:
            return False
    return isinstance(request, decision_pb2.DecideRequest) and request.dry_run
