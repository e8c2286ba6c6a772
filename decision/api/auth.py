"""Optional bearer-token authentication for the gRPC API.

Callers send ``authorization: Bearer <token>`` metadata; a call without a
token the server accepts ends with UNAUTHENTICATED before its request is even
parsed. Health checking and reflection stay open (load balancers and probes
call them without credentials). Tokens come from a file (one per line, ``#``
comments) and/or the environment variable ``DECISION_AUTH_TOKENS`` (separated
by commas or whitespace). Several tokens may be valid at once, for rotation.

The comparison is constant-time: the presented token is hashed and compared
with every accepted token's hash by ``hmac.compare_digest``, all of them,
so neither a token's content nor its length nor which one matched shows in
the timing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import grpc

from decision.api.handlers import refusing_handler

ENV_TOKENS = "DECISION_AUTH_TOKENS"
MIN_TOKEN_LENGTH = 16
# Services callable without a token.
OPEN_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what fits in an HTTP/2 header value unescaped
_SEPARATORS = re.compile(r"[\s,]+")


class AuthConfigError(ValueError):
    pass


def _checked(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_LENGTH:
        raise AuthConfigError(f"{where}: a token must be at least {MIN_TOKEN_LENGTH} characters (got {len(token)})")
    if not _TOKEN.fullmatch(token):
        raise AuthConfigError(f"{where}: a token may hold only visible ASCII characters")
    return token


def load_tokens(path: str | None = None, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Accepted tokens from ``path`` and ``$DECISION_AUTH_TOKENS``; () means authentication is off.

    Error messages name the file and line, never the token.
    """
    tokens: list[str] = []
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AuthConfigError(f"{path}: cannot read the token file: {exc}") from None
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if line and not line.startswith("#"):
                tokens.append(_checked(line, f"{path}:{number}"))
        if not tokens:
            raise AuthConfigError(f"{path}: the token file holds no token")
    raw = (environ or {}).get(ENV_TOKENS, "")
    for index, token in enumerate(t for t in _SEPARATORS.split(raw) if t):
        tokens.append(_checked(token, f"${ENV_TOKENS} token {index + 1}"))
    return tuple(dict.fromkeys(tokens))


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls (except health and reflection) that carry no accepted bearer token."""

    def __init__(self, tokens: tuple[str, ...]) -> None:
        if not tokens:
            raise ValueError("no tokens: do not install the interceptor")
        self._digests = tuple(_digest(t.encode()) for t in tokens)
        self.refused_total = 0

    def accepts(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> bool:
        presented = next((value for key, value in metadata or () if key == "authorization"), None)
        if not isinstance(presented, str):
            return False
        scheme, _, token = presented.partition(" ")
        if scheme.lower() != "bearer":
            return False
        candidate = _digest(token.strip().encode())
        accepted = False
        for digest in self._digests:  # no early exit: the time does not tell which token matched
            accepted |= hmac.compare_digest(candidate, digest)
        return accepted

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        if self.accepts(details.invocation_metadata):
            return handler
        self.refused_total += 1
        return refusing_handler(
            handler, grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token (authorization metadata)"
        )
