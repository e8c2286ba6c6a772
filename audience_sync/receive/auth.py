"""Who may push: bearer tokens, and OAuth2 client credentials (RFC 6749 section 4.4).

Static tokens come from ``--token-file`` and/or ``$AUDIENCE_SYNC_RECEIVE_TOKENS``, read as the decision
service reads its own (``inbound_common.secret_files``: one token per line, optionally followed by its
scopes; the same scopes; compared in constant time). Pushing needs the ``audiences`` scope; a token
listed without scopes has every scope, so a token listed for ``decide`` alone is refused with 403.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from inbound_common.secret_files import (
    MIN_TOKEN_LENGTH,
    AcceptedTokens,
    AuthConfigError,
    BearerToken,
    bearer,
    entry_lines,
    load_tokens,
)

ENV_TOKENS: Final = "AUDIENCE_SYNC_RECEIVE_TOKENS"
PUSH_SCOPE: Final = "audiences"
TOKEN_PREFIX: Final = "ast1"
MIN_SECRET_LENGTH: Final = MIN_TOKEN_LENGTH  # of client secrets, as of tokens
_KEY_CONTEXT: Final = b"audience-sync receive oauth token v1"


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
    for where, line in entry_lines(path, "OAuth clients"):
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
        tokens = load_tokens(token_file, environ, ENV_TOKENS)
        clients = load_clients(clients_file) if clients_file else {}
        if not tokens and not clients:
            raise AuthConfigError(
                f"no credentials: pass --token-file, --oauth-clients or set ${ENV_TOKENS} (or --no-auth)"
            )
        return cls(tokens, clients, token_ttl)


class Authenticator:
    def __init__(self, access: Access) -> None:
        self.access = access
        self.tokens = AcceptedTokens(access.tokens)

    # -- the token endpoint ---------------------------------------------------------
    def issue(self, client_id: str, secret: str, now: float) -> tuple[str, int]:
        """(access token, lifetime in s) for a client's credentials; Refused(401, invalid_client) otherwise."""
        client = self.access.clients.get(client_id)
        given = hashlib.sha256(secret.encode()).digest()
        if client is None or not hmac.compare_digest(given, client.secret_digest):
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
        token = bearer(authorization)
        if token is None:
            raise Refused(401, "invalid_request", "missing bearer token (Authorization: Bearer <token>)")
        if token.startswith(TOKEN_PREFIX + "."):
            self._check_issued(token, now)
            return
        scopes = self.tokens.scopes(token)
        if scopes is None:
            raise Refused(401, "invalid_token", "unknown bearer token")
        if PUSH_SCOPE not in scopes:
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
