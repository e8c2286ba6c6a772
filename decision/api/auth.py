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

from collections.abc import Iterable
from typing import NamedTuple

import grpc
from google.protobuf.message import DecodeError

from decision.observe.metrics import DECIDE_METHOD
from decision.v1 import decision_pb2
from inbound_common.secret_files import AcceptedTokens, BearerToken

# Services callable without a token.
OPEN_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
DECIDE_SCOPE = "decide"
# The one place that says which scope a method needs; unnamed methods need ADMIN_SCOPE.
METHOD_SCOPES = {
    DECIDE_METHOD: DECIDE_SCOPE,
    "/decision.v1.DecisionService/RecordEvents": "events",
}
ADMIN_SCOPE = "admin"
# Decide's requests with ``dry_run`` set (counted nowhere) need only this scope.
PREVIEW_SCOPE = "preview"
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

    def refusal(
        self, needed: str, metadata: Iterable[tuple[str, str | bytes]] | None, request: object = None
    ) -> Refusal | None:
        """Why a call needing the ``needed`` scope (``needed_scope``) is refused (counted), None when it is not.
        ``request``: the call's request (its bytes, or the message), read only for a ``preview`` token's Decide."""
        scopes = self.scopes_of(metadata)
        if scopes is None:
            self.refused[UNAUTHENTICATED] += 1
            return Refusal(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token (authorization metadata)")
        if needed in scopes:
            return None
        if needed == DECIDE_SCOPE and PREVIEW_SCOPE in scopes:
            if _asks_dry_run(request):
                return None
            self.refused[PERMISSION_DENIED] += 1
            return Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"the bearer token has the {PREVIEW_SCOPE!r} scope: Decide only as a dry run (dry_run = true); "
                f"a counted decision needs the {DECIDE_SCOPE!r} scope",
            )
        self.refused[PERMISSION_DENIED] += 1
        dry_runs = f" (or {PREVIEW_SCOPE!r}, for dry runs only)" if needed == DECIDE_SCOPE else ""
        return Refusal(
            grpc.StatusCode.PERMISSION_DENIED, f"the bearer token lacks the {needed!r} scope this call needs{dry_runs}"
        )


def _asks_dry_run(request: object) -> bool:
    """Whether a Decide request (its bytes, as the servicer takes them, or the message) asks for a dry run."""
    if isinstance(request, bytes):
        try:
            request = decision_pb2.DecideRequest.FromString(request)
        except DecodeError:
            return False
    return isinstance(request, decision_pb2.DecideRequest) and request.dry_run


def needed_scope(method: str) -> str | None:
    """The scope a call of ``method`` (``/package.Service/Method``) needs; None for the open ones (health,
    reflection)."""
    if method.startswith(OPEN_METHOD_PREFIXES):
        return None
    return METHOD_SCOPES.get(method, ADMIN_SCOPE)
