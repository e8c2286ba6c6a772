"""Who may see the console: the service's bearer tokens, with the ``console`` scope.

A browser sends its token once, to the sign-in form (``POST /login``), and gets a session cookie: HttpOnly,
SameSite=Strict, Secure when the console serves TLS, signed by the console (HMAC-SHA256 with a key drawn at
start: a restart signs everybody out). The cookie holds no token: an id of the token keyed by the same
secret, the session's end, and the signature; every request checks the three, so a token removed from the
file (at the next start) ends its sessions. A script may instead send ``authorization: Bearer <token>`` with
each request (a browser never adds that header by itself). Every page is a GET that changes nothing, but for
signing in and out and the comparison of a candidate ruleset (POST): a cross-site POST carries no cookie
(SameSite=Strict) and is refused by its Origin anyway. Tokens are compared in constant time
(inbound_common.secret_files.AcceptedTokens).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from inbound_common.secret_files import AcceptedTokens, BearerToken

CONSOLE_SCOPE = "console"
COOKIE = "decision_console"
DEFAULT_LIFETIME = 8 * 3600.0  # seconds a session lasts


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request is: signed in (``scopes``), or not (None), and how."""

    scopes: frozenset[str]
    by: str  # "session" or "bearer"

    @property
    def allowed(self) -> bool:
        return CONSOLE_SCOPE in self.scopes


class Sessions:
    """Sign-in, session cookies, and the identity of a request."""

    def __init__(
        self,
        tokens: tuple[BearerToken, ...],
        *,
        lifetime: float = DEFAULT_LIFETIME,
        secure: bool = False,
        key: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not tokens:
            raise ValueError("the console needs at least one token")
        self.accepted = AcceptedTokens(tokens)
        self.lifetime = lifetime
        self.secure = secure
        self.clock = clock
        self._key = key if key is not None else os.urandom(32)
        self._ids = {self._id(t.token): t.scopes for t in tokens}

    def _id(self, token: str) -> str:
        return hmac.new(self._key, b"token\0" + token.encode(), hashlib.sha256).hexdigest()[:32]

    def _signature(self, body: str) -> str:
        return hmac.new(self._key, b"session\0" + body.encode(), hashlib.sha256).hexdigest()

    def sign_in(self, token: str) -> tuple[frozenset[str] | None, str]:
        """The token's scopes (None: not accepted) and, when accepted, the cookie value of its session."""
        scopes = self.accepted.scopes(token)
        if scopes is None:
            return None, ""
        body = f"{self._id(token)}.{int(self.clock() + self.lifetime)}"
        return scopes, f"{body}.{self._signature(body)}"

    def of_cookie(self, value: str | None) -> frozenset[str] | None:
        """The scopes of a session cookie's token; None when it is absent, forged, expired, or its token gone."""
        if not value or value.count(".") != 2:
            return None
        body, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature, self._signature(body)):
            return None
        token_id, _, until = body.partition(".")
        if not until.isdigit() or int(until) <= self.clock():
            return None
        return self._ids.get(token_id)

    def identify(self, authorization: str | None, cookie: str | None) -> Identity | None:
        """A bearer header wins over the cookie (a script's request); None: neither identifies anybody."""
        if authorization is not None:
            scopes = self.accepted.of_header(authorization)
            return None if scopes is None else Identity(scopes, "bearer")
        scopes = self.of_cookie(cookie)
        return None if scopes is None else Identity(scopes, "session")


def local_path(target: str | None, default: str = "/") -> str:
    """Where to go after signing in: a path of this console only (never ``//host`` nor a URL elsewhere)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
