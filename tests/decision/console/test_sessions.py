"""Sign-in and session cookies: signed, bounded in time, tied to a token still accepted, holding no token."""

from __future__ import annotations

import pytest
from aiohttp import web
from hypothesis import example, given
from hypothesis import strategies as st
from yarl import URL

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
    token_id, until, session, signature = cookie.split(".")
    assert sessions.of_cookie(f"{token_id}.{int(until) + 10**6}.{session}.{signature}") is None  # extended by hand
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
     ("/\\evil", "/"), ("", "/"), (None, "/"), ("/\t/evil.example", "/"), ("/\n/evil.example", "/"),
     ("/ /evil.example", "/"), ("/\x00/evil", "/"), ("\t//evil.example", "/"), ("http:/evil", "/"),
     ("/changes/diff?a=v1&b=v2#x", "/changes/diff?a=v1&b=v2#x"), ("/%2F/evil", "/%2F/evil")],
)  # fmt: skip
def test_after_signing_in_only_a_local_path(target: str | None, expected: str) -> None:
    assert local_path(target) == expected


HOSTILE = st.lists(
    st.sampled_from(["/", "//", "\\", "\t", "\n", "\r", " ", "\x00", "\x7f", "\u2028", "\u3000", "@", ":", "?", "#",
                     "%2F", "%09", "evil.example", "http:", "https:", "javascript:", ".", "..", "a", "é"]),
    max_size=8,
).map("".join)  # fmt: skip


@given(st.one_of(HOSTILE, st.text(max_size=30)))
@example("/\t/evil.example")
@example("/\u0085/evil.example")
def test_the_redirect_after_signing_in_never_leaves_the_console(target: str) -> None:
    location = web.HTTPSeeOther(local_path(target)).location  # the Location the console answers
    followed = URL("https://console.example:8443/profile").join(URL(location))  # as a browser resolves it
    assert (followed.scheme, followed.host, followed.port) == ("https", "console.example", 8443), location
    assert location.startswith("/") and not location.startswith("//") and "\\" not in location
    assert all(c.isprintable() and not c.isspace() for c in location)


def test_signing_out_ends_the_session_and_every_copy_of_its_cookie() -> None:
    clock = Clock()
    sessions = Sessions(TOKENS, lifetime=60, key=b"k" * 32, clock=clock)
    _, cookie = sessions.sign_in(TOKEN)
    _, other = sessions.sign_in(TOKEN)  # another sign-in with the same token: a session of its own
    assert cookie != other
    sessions.sign_out(cookie)
    assert sessions.of_cookie(cookie) is None and sessions.identify(None, cookie) is None
    assert sessions.of_cookie(other) == frozenset({"console"})
    sessions.sign_out("forged.1.2.3")  # nothing to end
    clock.now += 61  # past its end: refused by its signature; the set of ended sessions forgets it
    _, later = sessions.sign_in(TOKEN)
    sessions.sign_out(later)
    assert sessions.of_cookie(cookie) is None and len(sessions._ended) == 1
