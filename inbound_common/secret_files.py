"""Secret files, read the same way by both commands: bearer tokens, and the lines of other secret files.

A secret file holds one entry per line, ``#`` comments; an error names the file and the line, never a
secret. A token file (``decision serve --auth-tokens-file``, ``audience-sync receive --token-file``) holds
``<token> [scope,scope...]`` lines; a variable (``DECISION_AUTH_TOKENS``, ``AUDIENCE_SYNC_RECEIVE_TOKENS``)
holds tokens separated by commas or whitespace. A token given without scopes has every scope. The scopes
are one vocabulary for both commands, so one file can serve both: ``decide``, ``events``, ``admin`` (the
decision service's methods) and ``audiences`` (pushing to ``audience-sync receive``); any other is refused.

Tokens are compared in constant time (:func:`presented`): the presented token's SHA-256 against every
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
SCOPES: Final = frozenset({"decide", "events", "admin", "audiences"})
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
    """An accepted bearer token and its scopes (None: every scope)."""

    token: str = field(repr=False)
    scopes: frozenset[str] | None = None
    digest: bytes = field(init=False, repr=False, compare=False)  # SHA-256 of the token: what is compared

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", _digest(self.token))

    def allows(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _checked(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_LENGTH:
        raise AuthConfigError(f"{where}: a token must be at least {MIN_TOKEN_LENGTH} characters (got {len(token)})")
    if not _VISIBLE.fullmatch(token):
        raise AuthConfigError(f"{where}: a token may hold only visible ASCII characters")
    return token


def _scopes(text: str, where: str) -> frozenset[str] | None:
    scopes = frozenset(s for s in SEPARATORS.split(text) if s)
    if unknown := sorted(scopes - SCOPES):
        raise AuthConfigError(f"{where}: unknown scope {unknown[0]!r} (scopes: {', '.join(sorted(SCOPES))})")
    return scopes or None


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


def presented(accepted: Sequence[BearerToken], token: str) -> BearerToken | None:
    """The accepted token ``token`` is, or None; every accepted one is compared (no early exit)."""
    candidate = _digest(token)
    matched: BearerToken | None = None
    for known in accepted:  # the time does not tell which token matched, nor whether one did
        if hmac.compare_digest(candidate, known.digest):
            matched = known
    return matched
