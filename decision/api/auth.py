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

from collections.abc import Iterable
from typing import NamedTuple

import grpc

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
# Reasons of refused calls (``TokenAuth.refused`` counts, exported as metrics).
UNAUTHENTICATED = "unauthenticated"
PERMISSION_DENIED = "permission_denied"


class Refusal(NamedTuple):
    """A call ended before its method ran: the status and its details."""

    code: grpc.StatusCode
    details: str


class TokenAuth:
    """Refuses calls (except health and reflection) without an accepted bearer token holding the method's scope.

    Applied where each method's handler is registered (``decision.api.guards``), not as a server interceptor.
    """

    def __init__(self, tokens: tuple[BearerToken, ...]) -> None:
        if not tokens:
            raise ValueError("no tokens: authentication is off")
        self._accepted = AcceptedTokens(tokens)
        # Refused calls by reason (UNAUTHENTICATED, PERMISSION_DENIED), read by the metrics.
        self.refused: dict[str, int] = {UNAUTHENTICATED: 0, PERMISSION_DENIED: 0}

    def scopes_of(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> frozenset[str] | None:
        """The presented token's scopes, or None when it presents no accepted token."""
        presented = next((value for key, value in metadata or () if key == "authorization"), None)
        return self._accepted.of_header(presented) if isinstance(presented, str) else None

    def accepts(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> bool:
        return self.scopes_of(metadata) is not None

    def refusal(self, needed: str, metadata: Iterable[tuple[str, str | bytes]] | None) -> Refusal | None:
        """Why a call needing the ``needed`` scope (``needed_scope``) is refused (counted), None when it is not."""
        scopes = self.scopes_of(metadata)
        if scopes is None:
            self.refused[UNAUTHENTICATED] += 1
            return Refusal(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token (authorization metadata)")
        if needed in scopes:
            return None
        self.refused[PERMISSION_DENIED] += 1
        lacks = f"the bearer token lacks the {needed!r} scope this call needs"
        return Refusal(grpc.StatusCode.PERMISSION_DENIED, lacks)


def needed_scope(method: str) -> str | None:
    """The scope a call of ``method`` (``/package.Service/Method``) needs; None for the open ones (health,
    reflection)."""
    if method.startswith(OPEN_METHOD_PREFIXES):
        return None
    return METHOD_SCOPES.get(method, ADMIN_SCOPE)
