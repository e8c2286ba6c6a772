"""Who may see the console: the service's bearer tokens, with the ``console`` scope.

A browser sends its token once, to the sign-in form (``POST /login``), and gets a session cookie: HttpOnly,
SameSite=Strict, Secure when the console serves TLS, signed by the console (HMAC-SHA256 with a key drawn at
start: a restart signs everybody out). The cookie holds no token: an id of the token keyed by the same
secret, the session's end, a random id of the session, and the signature; every request checks them, so a
token removed from the file (at the next start) ends its sessions. Signing out ends the session on the
server too: its id joins the console's set of ended sessions (kept in memory until the session's end, when
the signature alone refuses it), so a copy of the cookie is refused after sign-out. A script may instead
send ``authorization: Bearer <token>`` with each request (a browser never adds that header by itself). Every
page is a GET that changes nothing, but for signing in and out and the comparison of a candidate ruleset
(POST): a cross-site POST carries no cookie (SameSite=Strict) and is refused by its Origin anyway. Tokens are
compared in constant time (inbound_common.secret_files.AcceptedTokens).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from yarl import URL

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
        self._ended: dict[str, int] = {}  # session id -> its end (epoch seconds): signed out before it

    def _id(self, token: str) -> str:
        return hmac.new(self._key, b"token\0" + token.encode(), hashlib.sha256).hexdigest()[:32]

    def _signature(self, body: str) -> str:
        return hmac.new(self._key, b"session\0" + body.encode(), hashlib.sha256).hexdigest()

    def sign_in(self, token: str) -> tuple[frozenset[str] | None, str]:
        """The token's scopes (None: not accepted) and, when accepted, the cookie value of its session."""
        scopes = self.accepted.scopes(token)
        if scopes is None:
            return None, ""
        body = f"{self._id(token)}.{int(self.clock() + self.lifetime)}.{os.urandom(16).hex()}"
        return scopes, f"{body}.{self._signature(body)}"

    def _session(self, value: str | None) -> tuple[str, int, str] | None:
        """A genuine session cookie not past its end: (token id, end, session id)."""
        if not value or value.count(".") != 3:
            return None
        body, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature, self._signature(body)):
            return None
        token_id, until, session = body.split(".")
        if not until.isdigit() or int(until) <= self.clock():
            return None
        return token_id, int(until), session

    def of_cookie(self, value: str | None) -> frozenset[str] | None:
        """The scopes of a session cookie's token; None when it is absent, forged, expired, signed out, or its
        token gone."""
        session = self._session(value)
        if session is None or session[2] in self._ended:
            return None
        return self._ids.get(session[0])

    def sign_out(self, value: str | None) -> None:
        """End a session for good: its cookie (and any copy of it) identifies nobody any more."""
        session = self._session(value)
        if session is None:
            return
        now = self.clock()
        self._ended = {s: until for s, until in self._ended.items() if until > now}  # past their end: refused anyway
        self._ended[session[2]] = session[1]

    def identify(self, authorization: str | None, cookie: str | None) -> Identity | None:
        """A bearer header wins over the cookie (a script's request); None: neither identifies anybody."""
        if authorization is not None:
            scopes = self.accepted.of_header(authorization)
            return None if scopes is None else Identity(scopes, "bearer")
        scopes = self.of_cookie(cookie)
        return None if scopes is None else Identity(scopes, "session")


def local_path(target: str | None, default: str = "/") -> str:
    """Where to go after signing in: a path of this console only, re-serialised (never ``//host``, a URL
    elsewhere, nor a path a browser would read otherwise: no whitespace or control character, which browsers
    drop from URLs, so that ``/<TAB>/host`` would become ``//host``; no backslash, which they read as ``/``)."""
    if not target or "\\" in target or any(c.isspace() or not c.isprintable() for c in target):
        return default
    try:
        url = URL(target)
    except ValueError:
        return default
    if url.scheme or url.host is not None or url.is_absolute() or not _one_slash(url.raw_path):
        return default
    local = str(url)
    return local if _one_slash(local) else default


def _one_slash(path: str) -> bool:
    return path.startswith("/") and not path.startswith("//")
