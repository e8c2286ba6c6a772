"""Who may push: bearer tokens, and OAuth2 client credentials (RFC 6749 section 4.4).

Static tokens come from ``--token-file`` (the decision service's format: one token per line,
optionally followed by its scopes, comma-separated; ``#`` comments) and/or
``$AUDIENCE_SYNC_RECEIVE_TOKENS`` (separated by commas or whitespace). Pushing needs the ``audiences``
scope; a token listed without scopes has every scope, so a token listed for ``decide`` alone is
refused with 403. Tokens are compared in constant time: the presented token's hash against every
accepted one's, all of them. (audience_sync imports nothing of the decision service but the key
layout, hence this reader of its own.)

OAuth2 clients (``--oauth-clients``: ``<client id> <secret>`` per line) get short-lived tokens from
``POST /oauth/token`` with ``grant_type=client_credentials``. A token is
``ast1.<client id, base64url>.<expiry, epoch s>.<HMAC-SHA256, base64url>``, keyed by a key derived
from the client's secret: every receiver process given the same clients file accepts the tokens of
the others, and nothing is kept per token. Changing a client's secret revokes its tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ENV_TOKENS: Final = "AUDIENCE_SYNC_RECEIVE_TOKENS"
PUSH_SCOPE: Final = "audiences"
TOKEN_PREFIX: Final = "ast1"
MIN_SECRET_LENGTH: Final = 16  # tokens and client secrets
_VISIBLE: Final = re.compile(r"[\x21-\x7e]+")  # a token fits in an HTTP header unescaped
_SEPARATORS: Final = re.compile(r"[\s,]+")
_KEY_CONTEXT: Final = b"audience-sync receive oauth token v1"


class AuthConfigError(ValueError):
    """A credentials file or variable is unusable; the message names the file and line, never a secret."""


@dataclass(frozen=True, slots=True)
class BearerToken:
    digest: bytes = field(repr=False)  # SHA-256 of the token
    scopes: frozenset[str] | None = None  # None: every scope


def _entries(path: str, what: str) -> list[tuple[str, str]]:
    """``(path:line, text)`` of each non-comment line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthConfigError(f"{path}: cannot read the {what} file: {exc}") from None
    entries = [
        (f"{path}:{number}", line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.strip().startswith("#")
    ]
    if not entries:
        raise AuthConfigError(f"{path}: the {what} file holds no entry")
    return entries


def _token(token: str, scopes: frozenset[str] | None, where: str) -> BearerToken:
    if len(token) < MIN_SECRET_LENGTH or not _VISIBLE.fullmatch(token):
        raise AuthConfigError(f"{where}: a token must be {MIN_SECRET_LENGTH}+ visible ASCII characters")
    return BearerToken(hashlib.sha256(token.encode()).digest(), scopes)


def load_tokens(path: str | None, environ: Mapping[str, str]) -> tuple[BearerToken, ...]:
    tokens: list[BearerToken] = []
    for where, line in _entries(path, "token") if path else []:
        token, _, text = line.partition(" ")
        scopes = frozenset(s for s in _SEPARATORS.split(text) if s)
        tokens.append(_token(token, scopes or None, where))
    raw = environ.get(ENV_TOKENS, "")
    for index, token in enumerate(t for t in _SEPARATORS.split(raw) if t):
        tokens.append(_token(token, None, f"${ENV_TOKENS} token {index + 1}"))
    return tuple(tokens)


class Refused(Exception):
    """Authentication failed: ``status`` 401 (no or bad credentials) or 403 (not allowed to push)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error  # the RFC 6750 / 6749 error code
        self.detail = detail


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Client:
    """An OAuth2 client: the SHA-256 of its secret (compared) and the key its tokens are signed with."""

    secret_digest: bytes = field(repr=False)
    signing_key: bytes = field(repr=False)

    @classmethod
    def of_secret(cls, secret: str) -> Client:
        raw = secret.encode()
        return cls(hashlib.sha256(raw).digest(), hmac.new(raw, _KEY_CONTEXT, hashlib.sha256).digest())


def load_clients(path: str) -> dict[str, Client]:
    """``<client id> <secret>`` lines; errors name the file and line, never a secret."""
    clients: dict[str, Client] = {}
    for where, line in _entries(path, "OAuth clients"):
        client_id, _, secret = line.partition(" ")
        secret = secret.strip()
        if len(secret) < MIN_SECRET_LENGTH:
            raise AuthConfigError(f"{where}: expected '<client id> <secret>', a secret of {MIN_SECRET_LENGTH}+ chars")
        if client_id in clients:
            raise AuthConfigError(f"{where}: client {client_id!r} listed twice")
        clients[client_id] = Client.of_secret(secret)
    return clients


@dataclass(frozen=True, slots=True)
class Access:
    """What the receiver accepts; ``enabled`` False only when started with ``--no-auth``."""

    tokens: tuple[BearerToken, ...] = ()
    clients: Mapping[str, Client] = field(default_factory=dict)
    token_ttl: float = 900.0
    enabled: bool = True

    @classmethod
    def load(
        cls, token_file: str | None, clients_file: str | None, environ: Mapping[str, str], token_ttl: float
    ) -> Access:
        tokens = load_tokens(token_file, environ)
        clients = load_clients(clients_file) if clients_file else {}
        if not tokens and not clients:
            raise AuthConfigError(
                f"no credentials: pass --token-file, --oauth-clients or set ${ENV_TOKENS} (or --no-auth)"
            )
        return cls(tokens, clients, token_ttl)


class Authenticator:
    def __init__(self, access: Access) -> None:
        self.access = access

    # -- the token endpoint ---------------------------------------------------------
    def issue(self, client_id: str, secret: str, now: float) -> tuple[str, int]:
        """(access token, lifetime in s) for a client's credentials; Refused(401, invalid_client) otherwise."""
        client = self.access.clients.get(client_id)
        presented = hashlib.sha256(secret.encode()).digest()
        if client is None or not hmac.compare_digest(presented, client.secret_digest):
            raise Refused(401, "invalid_client", "unknown client or wrong secret")
        lifetime = int(self.access.token_ttl)
        body = f"{TOKEN_PREFIX}.{_b64(client_id.encode())}.{int(now) + lifetime}"
        return f"{body}.{self._sign(client_id, body)}", lifetime

    def _sign(self, client_id: str, body: str) -> str:
        return _b64(hmac.new(self.access.clients[client_id].signing_key, body.encode(), hashlib.sha256).digest())

    # -- requests -----------------------------------------------------------------
    def check_push(self, authorization: str | None, now: float) -> None:
        """Return if the Authorization header may push; else Refused (401 or 403)."""
        if not self.access.enabled:
            return
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Refused(401, "invalid_request", "missing bearer token (Authorization: Bearer <token>)")
        if token.startswith(TOKEN_PREFIX + "."):
            self._check_issued(token, now)
            return
        presented = hashlib.sha256(token.encode()).digest()
        matched: BearerToken | None = None
        for accepted in self.access.tokens:  # no early exit: the time does not tell which token matched
            if hmac.compare_digest(presented, accepted.digest):
                matched = accepted
        if matched is None:
            raise Refused(401, "invalid_token", "unknown bearer token")
        if matched.scopes is not None and PUSH_SCOPE not in matched.scopes:
            raise Refused(403, "insufficient_scope", f"the bearer token lacks the {PUSH_SCOPE!r} scope")

    def _check_issued(self, token: str, now: float) -> None:
        parts = token.split(".")
        try:
            client_id = _unb64(parts[1]).decode() if len(parts) == 4 else None
        except (binascii.Error, UnicodeDecodeError, ValueError):
            client_id = None
        if client_id is None or client_id not in self.access.clients:
            raise Refused(401, "invalid_token", "malformed token or unknown client")
        body = ".".join(parts[:3])
        if not hmac.compare_digest(self._sign(client_id, body).encode(), parts[3].encode()):
            raise Refused(401, "invalid_token", "bad token signature")
        if not parts[2].isdigit() or int(parts[2]) <= now:
            raise Refused(401, "invalid_token", "the token has expired: get a new one from /oauth/token")
