"""Sign-in and session cookies: signed, bounded in time, tied to a token still accepted, holding no token."""

from __future__ import annotations

import pytest

from decision.console.sessions import Sessions, local_path
from inbound_common.secret_files import BearerToken

TOKEN = "a-console-token-0123456789"
OTHER = "an-events-token-0123456789"
TOKENS = (BearerToken(TOKEN, frozenset({"console"})), BearerToken(OTHER, frozenset({"events"})))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_lasts_its_lifetime_and_holds_no_token() -> None:
    clock = Clock()
    sessions = Sessions(TOKENS, lifetime=60, key=b"k" * 32, clock=clock)
    scopes, cookie = sessions.sign_in(TOKEN)
    assert scopes == frozenset({"console"}) and TOKEN not in cookie
    identity = sessions.identify(None, cookie)
    assert identity is not None and identity.allowed and identity.by == "session"
    clock.now += 59
    assert sessions.of_cookie(cookie) == frozenset({"console"})
    clock.now += 2
    assert sessions.of_cookie(cookie) is None


def test_a_forged_or_foreign_cookie_identifies_nobody() -> None:
    sessions = Sessions(TOKENS, key=b"k" * 32)
    _, cookie = sessions.sign_in(TOKEN)
    token_id, until, signature = cookie.split(".")
    assert sessions.of_cookie(f"{token_id}.{int(until) + 10**6}.{signature}") is None  # extended by hand
    assert sessions.of_cookie(cookie + "0") is None
    assert sessions.of_cookie("garbage") is None and sessions.of_cookie("") is None
    restarted = Sessions(TOKENS, key=b"j" * 32)  # another key: a restart signs everybody out
    assert restarted.of_cookie(cookie) is None
    without = Sessions(TOKENS[1:], key=b"k" * 32)  # the token was removed from the file
    assert without.of_cookie(cookie) is None


def test_a_bearer_header_wins_and_needs_the_console_scope() -> None:
    sessions = Sessions(TOKENS)
    _, cookie = sessions.sign_in(TOKEN)
    other = sessions.identify(f"Bearer {OTHER}", cookie)
    assert other is not None and not other.allowed and other.by == "bearer"
    assert sessions.identify("Bearer nope-nope-nope-nope", cookie) is None
    assert sessions.identify(f"Basic {TOKEN}", None) is None
    assert sessions.sign_in("not a token") == (None, "")
    with pytest.raises(ValueError):
        Sessions(())


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/offers?from=2026-01-01", "/offers?from=2026-01-01"), ("//evil.example/", "/"), ("https://evil/", "/"),
     ("/\\evil", "/"), ("", "/"), (None, "/")],
)  # fmt: skip
def test_after_signing_in_only_a_local_path(target: str | None, expected: str) -> None:
    assert local_path(target) == expected
