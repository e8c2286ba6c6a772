"""Secret files, read the same way by both commands: bearer tokens, and the lines of other secret files.

A secret file holds one entry per line, ``#`` comments; an error names the file and the line, never a
secret. A token file (``decision serve --auth-tokens-file``, ``audience-sync receive --token-file``) holds
``<token> [scope,scope...]`` lines; a variable (``DECISION_AUTH_TOKENS``, ``AUDIENCE_SYNC_RECEIVE_TOKENS``)
holds tokens separated by commas or whitespace. A token given without scopes has every scope. The scopes
are one vocabulary for both commands, so one file can serve both: ``decide``, ``events``, ``admin`` (the
decision service's methods), ``console`` (``decision console``) and ``audiences`` (pushing to
``audience-sync receive``); any other is refused.

Tokens are compared in constant time (:class:`AcceptedTokens`): the presented token's SHA-256 against every
accepted one's, all of them, so neither a token's content nor its length nor which one matched shows in
the timing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

# What a bearer token may do; the decision service maps each method to one (decision.api.auth.METHOD_SCOPES).
SCOPES: Final = frozenset({"decide", "events", "admin", "console", "audiences"})
MIN_TOKEN_LENGTH: Final = 16
_VISIBLE: Final = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what fits in an HTTP header value unescaped
SEPARATORS: Final = re.compile(r"[\s,]+")


class AuthConfigError(ValueError):
    """A credentials file or variable is unusable; the message names the file and line, never a secret."""


def entry_lines(path: str, what: str, error: type[ValueError] = AuthConfigError) -> list[tuple[str, str]]:
    """``(path:line, text)`` of each entry; ``error`` (naming the file, never an entry) when unreadable or empty."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read the {what} file: {exc}") from None
    entries = [
        (f"{path}:{number}", line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.strip().startswith("#")
    ]
    if not entries:
        raise error(f"{path}: the {what} file holds no entry")
    return entries


@dataclass(frozen=True, slots=True)
class BearerToken:
    """An accepted bearer token and its scopes (a token given without scopes has all of them)."""

    token: str = field(repr=False)
    scopes: frozenset[str] = SCOPES


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _checked(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_LENGTH:
        raise AuthConfigError(f"{where}: a token must be at least {MIN_TOKEN_LENGTH} characters (got {len(token)})")
    if not _VISIBLE.fullmatch(token):
        raise AuthConfigError(f"{where}: a token may hold only visible ASCII characters")
    return token


def _scopes(text: str, where: str) -> frozenset[str]:
    scopes = frozenset(s for s in SEPARATORS.split(text) if s)
    if unknown := sorted(scopes - SCOPES):
        raise AuthConfigError(f"{where}: unknown scope {unknown[0]!r} (scopes: {', '.join(sorted(SCOPES))})")
    return scopes or SCOPES


def load_tokens(path: str | None, environ: Mapping[str, str], variable: str) -> tuple[BearerToken, ...]:
    """The tokens of the file at ``path`` (none: no file), then those of ``environ[variable]``; () when none.

    Raises AuthConfigError naming the file and line (or the variable and the token's rank), never the token.
    """
    tokens: list[BearerToken] = []
    for where, line in [] if path is None else entry_lines(path, "token"):
        token, _, scopes = line.partition(" ")
        tokens.append(BearerToken(_checked(token, where), _scopes(scopes, where)))
    raw = environ.get(variable, "")
    for index, token in enumerate(t for t in SEPARATORS.split(raw) if t):
        tokens.append(BearerToken(_checked(token, f"${variable} token {index + 1}")))
    return tuple(dict.fromkeys(tokens))


class AcceptedTokens:
    """The accepted tokens, held as hashes: the scopes of a presented token, in constant time."""

    def __init__(self, tokens: Sequence[BearerToken]) -> None:
        self._accepted = tuple((_digest(t.token), t.scopes) for t in tokens)

    def __bool__(self) -> bool:
        return bool(self._accepted)

    def scopes(self, token: str) -> frozenset[str] | None:
        """The token's scopes, or None when it is not accepted. Every accepted token is compared, every time."""
        candidate = _digest(token)
        granted: frozenset[str] | None = None
        for digest, scopes in self._accepted:  # no early exit: the time does not tell which token matched
            if hmac.compare_digest(candidate, digest):
                granted = scopes
        return granted

    def of_header(self, authorization: str | None) -> frozenset[str] | None:
        """The scopes of an ``authorization: Bearer <token>`` header's token (gRPC metadata or HTTP); None when
        the header is absent, of another scheme, or its token is not accepted."""
        token = bearer(authorization)
        return None if token is None else self.scopes(token)


def bearer(authorization: str | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header (the scheme in any case); None for another one."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
