"""Optional bearer-token authentication for the gRPC API.

Callers send ``authorization: Bearer <token>`` metadata; a call without a
token the server accepts ends with UNAUTHENTICATED before its request is even
parsed. Health checking and reflection stay open (load balancers and probes
call them without credentials). Tokens come from a file (one per line, ``#``
comments) and/or the environment variable ``DECISION_AUTH_TOKENS`` (separated
by commas or whitespace). Several tokens may be valid at once, for rotation.

**Scopes.** A file line may name the token's scopes after it: ``<token> decide,events``.
A line without scopes, and every token from the environment, has all scopes (what
tokens meant before scopes existed). ``METHOD_SCOPES`` says which scope each
method needs; a method it does not name needs ``admin``. An accepted token
without the scope gets PERMISSION_DENIED. The ``console`` scope is the web
console's (``decision console``, which checks tokens with ``AcceptedTokens`` too).

The comparison is constant-time: the presented token is hashed and compared
with every accepted token's hash by ``hmac.compare_digest``, all of them,
so neither a token's content nor its length nor which one matched shows in
the timing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import grpc

from decision.api.secret_files import entry_lines
from decision.settings import SCOPES, BearerToken

ENV_TOKENS = "DECISION_AUTH_TOKENS"
MIN_TOKEN_LENGTH = 16
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
_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what fits in an HTTP/2 header value unescaped
_SEPARATORS = re.compile(r"[\s,]+")


class AuthConfigError(ValueError):
    pass


class Refusal(NamedTuple):
    """A call ended before its method ran: the status and its details."""

    code: grpc.StatusCode
    details: str


def _checked(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_LENGTH:
        raise AuthConfigError(f"{where}: a token must be at least {MIN_TOKEN_LENGTH} characters (got {len(token)})")
    if not _TOKEN.fullmatch(token):
        raise AuthConfigError(f"{where}: a token may hold only visible ASCII characters")
    return token


def _scopes(text: str, where: str) -> frozenset[str]:
    scopes = frozenset(s for s in _SEPARATORS.split(text) if s)
    unknown = sorted(scopes - SCOPES)
    if unknown:
        raise AuthConfigError(f"{where}: unknown scope {unknown[0]!r} (scopes: {', '.join(sorted(SCOPES))})")
    return scopes or SCOPES


def load_tokens(path: str | None = None, environ: Mapping[str, str] | None = None) -> tuple[BearerToken, ...]:
    """Accepted tokens from ``path`` and ``$DECISION_AUTH_TOKENS``; () means authentication is off.

    Error messages name the file and line, never the token.
    """
    tokens: list[BearerToken] = []
    for where, line in [] if path is None else entry_lines(path, "token", AuthConfigError):
        token, _, scopes = line.partition(" ")
        tokens.append(BearerToken(_checked(token, where), _scopes(scopes, where)))
    raw = (environ or {}).get(ENV_TOKENS, "")
    for index, token in enumerate(t for t in _SEPARATORS.split(raw) if t):
        tokens.append(BearerToken(_checked(token, f"${ENV_TOKENS} token {index + 1}")))
    return tuple(dict.fromkeys(tokens))


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class AcceptedTokens:
    """The accepted tokens, held as hashes: the scopes of a presented token, in constant time."""

    def __init__(self, tokens: tuple[BearerToken, ...]) -> None:
        self._accepted = tuple((_digest(t.token.encode()), t.scopes) for t in tokens)

    def __bool__(self) -> bool:
        return bool(self._accepted)

    def scopes(self, token: str) -> frozenset[str] | None:
        """The token's scopes, or None when it is not accepted. Every accepted token is compared, every time."""
        candidate = _digest(token.encode())
        granted: frozenset[str] | None = None
        for digest, scopes in self._accepted:  # no early exit: the time does not tell which token matched
            if hmac.compare_digest(candidate, digest):
                granted = scopes
        return granted

    def of_header(self, authorization: str | None) -> frozenset[str] | None:
        """The scopes of an ``authorization: Bearer <token>`` header's token (gRPC metadata or HTTP); None when
        the header is absent, of another scheme, or its token is not accepted."""
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        return self.scopes(token.strip()) if scheme.lower() == "bearer" else None


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
