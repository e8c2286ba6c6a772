"""Secret files and bearer tokens, read the same way by `decision serve` and `audience-sync receive`."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audience_sync.receive.auth import ENV_TOKENS as RECEIVE_TOKENS
from decision.cli.options import ENV_TOKENS as DECISION_TOKENS
from inbound_common.secret_files import (
    MIN_TOKEN_LENGTH,
    SCOPES,
    AcceptedTokens,
    AuthConfigError,
    BearerToken,
    bearer,
    entry_lines,
    load_tokens,
)

TOKENS = ("token-for-the-web-backend-1", "token-for-the-app-backend-22")


@pytest.mark.parametrize("variable", [DECISION_TOKENS, RECEIVE_TOKENS])
def test_tokens_load_from_a_file_and_the_environment(tmp_path: Path, variable: str) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# web backend\n{TOKENS[0]}\n\n  {TOKENS[1]}  \n")
    assert [t.token for t in load_tokens(str(path), {}, variable)] == list(TOKENS)
    environ = {variable: f" {TOKENS[1]}, token-from-the-environment-3 "}
    assert [t.token for t in load_tokens(str(path), environ, variable)] == [*TOKENS, "token-from-the-environment-3"]
    assert load_tokens(None, {}, variable) == ()
    path.write_text(f"{TOKENS[0]}\nshort-secret\n")
    with pytest.raises(AuthConfigError, match=rf"{path}:2: a token must be at least 16 characters") as error:
        load_tokens(str(path), {}, variable)
    assert "short-secret" not in str(error.value)
    with pytest.raises(AuthConfigError, match=rf"\${variable} token 1: a token may hold only visible ASCII"):
        load_tokens(None, {variable: "tøken-of-enough-length"}, variable)
    path.write_text("# nothing but comments\n")
    with pytest.raises(AuthConfigError, match="holds no entry"):
        load_tokens(str(path), {}, variable)


def test_scopes_in_the_token_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    decide, every, events = "token-decide-only-00001", "token-with-all-scopes-04", "token-events-only-00002"
    path.write_text(f"{decide} decide\n{every}\n{events}  events, admin \n{decide} decide\n")
    assert load_tokens(str(path), {}, DECISION_TOKENS) == (  # listed twice: once
        BearerToken(decide, frozenset({"decide"})),
        BearerToken(every, SCOPES),  # no scopes: all of them, audience-sync's and the console's too
        BearerToken(events, frozenset({"events", "admin"})),
    )
    assert {"audiences", "console", "decide"} <= SCOPES
    assert load_tokens(None, {DECISION_TOKENS: every}, DECISION_TOKENS) == (BearerToken(every, SCOPES),)
    # One vocabulary for both commands: a file can serve both, and a misspelt scope is refused by either.
    path.write_text(f"{decide} decide,audiences\n")
    assert load_tokens(str(path), {}, RECEIVE_TOKENS)[0].scopes == frozenset({"decide", "audiences"}) <= SCOPES
    path.write_text(f"{every} decide,delete\n")
    with pytest.raises(AuthConfigError, match=rf"{path}:1: unknown scope 'delete'") as error:
        load_tokens(str(path), {}, RECEIVE_TOKENS)
    assert every not in str(error.value)


def test_other_secret_files_name_their_own_error(tmp_path: Path) -> None:
    class KeyFileError(ValueError):
        pass

    path = tmp_path / "keys"
    with pytest.raises(KeyFileError, match=rf"{path}: cannot read the signing keys file"):
        entry_lines(str(path), "signing keys", KeyFileError)
    path.write_text("# k1\n\nk1 secret\n")
    assert entry_lines(str(path), "signing keys", KeyFileError) == [(f"{path}:3", "k1 secret")]


@given(
    tokens=st.lists(st.text("abcXYZ019-_.~", min_size=MIN_TOKEN_LENGTH, max_size=40), min_size=1, max_size=4),
    given_token=st.text("abcXYZ019-_.~", min_size=0, max_size=40),
    pick=st.integers(min_value=-1, max_value=3),
)
def test_a_token_is_accepted_exactly_when_it_is_one_of_the_configured(
    tokens: list[str], given_token: str, pick: int
) -> None:
    if 0 <= pick < len(tokens):
        given_token = tokens[pick]
    listed = [BearerToken(t, frozenset({"decide"}) if i % 2 else SCOPES) for i, t in enumerate(tokens)]
    accepted = AcceptedTokens(listed)
    scopes = accepted.scopes(given_token)
    assert (scopes is not None) == (given_token in tokens)
    assert scopes is None or scopes == next(t.scopes for t in reversed(listed) if t.token == given_token)
    assert accepted.of_header(f"Bearer {given_token}") == scopes == accepted.of_header(f"bearer  {given_token} ")
    assert accepted.of_header(f"Basic {given_token}") is None and accepted.of_header(None) is None
    assert listed[0].token not in repr(listed[0])


def test_the_bearer_of_a_header() -> None:
    assert bearer("Bearer abc") == "abc" == bearer("BEARER  abc ")
    assert (
        bearer("Bearer") is None and bearer("Bearer  ") is None and bearer("Basic abc") is None and bearer(None) is None
    )
