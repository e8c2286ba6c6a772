"""Tracking tokens: signed and verified with given keys, bound to their profile (pure: no server)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import pickle

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from decision.core.tokens import (
    MAC_BYTES,
    PREVIOUS_FORMAT,
    InvalidToken,
    ProfileMismatch,
    TokenKey,
    TokenKeyError,
    TokenKeys,
    TokenWriter,
    TrackingToken,
    keys_from,
)

OLD = TokenKey("k2025", b"o" * 32)
NEW = TokenKey("k2026", b"n" * 32)
texts = st.text(max_size=40)
tokens = st.builds(
    TrackingToken,
    decision_id=st.one_of(texts, st.uuids().map(lambda u: u.hex)),
    placement_id=texts,
    offer_id=texts,
    ruleset_version=texts,
    decided_at_ms=st.integers(min_value=0, max_value=2**48 - 1),
    channel=texts,
    experiment_id=texts,
    variant=texts,
)


profiles = st.text(min_size=1, max_size=40)


@given(token=tokens, profile=profiles)
def test_a_signed_token_opens_to_what_was_signed(token: TrackingToken, profile: str) -> None:
    keys = TokenKeys((OLD, NEW))
    assert keys.open(keys.sign(token.encode(), profile), profile) == token


@given(token=tokens, made_for=profiles, sent_for=profiles)
def test_a_token_opens_only_for_the_profile_it_was_made_for(token: TrackingToken, made_for: str, sent_for: str) -> None:
    keys = TokenKeys((NEW,))
    signed = keys.sign(token.encode(), made_for)
    if sent_for == made_for:
        assert keys.open(signed, sent_for) == token
    else:
        with pytest.raises(ProfileMismatch, match="signature does not match the profile id"):
            keys.open(signed, sent_for)


@given(
    token=tokens,
    secret=st.binary(min_size=32, max_size=200),
    profile=profiles,
    signing_format=st.sampled_from([PREVIOUS_FORMAT, 4]),
)
def test_a_decisions_writer_signs_what_a_token_signs(
    token: TrackingToken, secret: bytes, profile: str, signing_format: int
) -> None:
    # The writer of a decision's tokens (parts written and hashed once per decision, HMAC states of the key made
    # once) gives the token that TrackingToken and a plain HMAC-SHA256 give (keys longer than a block included).
    keys = TokenKeys((TokenKey("k", secret),), signing_format=signing_format)
    writer = TokenWriter(keys, profile, token.decision_id, token.decided_at_ms, token.ruleset_version, token.channel)
    signed = writer.token(token.placement_id, token.offer_id, token.experiment_id, token.variant)
    assert signed == keys.sign(token.encode(), profile)
    raw = base64.urlsafe_b64decode(signed + "==")
    body = raw[:-MAC_BYTES]
    assert body.endswith(token.fields())
    bound = profile.encode() if signing_format == 4 else b""
    prefix = bytes((len(bound),)) + bound if signing_format == 4 and len(bound) < 128 else b""
    if signing_format == PREVIOUS_FORMAT or len(bound) < 128:
        assert raw[-MAC_BYTES:] == hmac.new(secret, prefix + body, hashlib.sha256).digest()[:MAC_BYTES]
    assert keys.open(signed, profile) == token
    unsigned = TokenWriter(None, profile, token.decision_id, token.decided_at_ms, token.ruleset_version, token.channel)
    assert unsigned.token(token.placement_id, token.offer_id, token.experiment_id, token.variant) == token.encode()


@given(token=tokens, data=st.data())
def test_any_altered_byte_is_refused(token: TrackingToken, data: st.DataObject) -> None:
    keys = TokenKeys((NEW,))
    raw = bytearray(base64.urlsafe_b64decode(keys.sign(token.encode(), "p1") + "=="))
    at = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[at] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(InvalidToken):
        keys.open(base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode(), "p1")


def test_rotation_the_last_key_signs_every_listed_key_verifies() -> None:
    token = TrackingToken("0" * 32, "banner", "promo", "sha256:0123456789ab", 1_780_000_000_000, "web")
    before = TokenKeys((OLD,)).sign(token.encode(), "p1")
    during = TokenKeys((OLD, NEW))
    after = TokenKeys((NEW,))
    assert during.open(before, "p1") == token  # the old key is still listed
    assert during.sign(token.encode(), "p1") == after.sign(token.encode(), "p1")  # the new one signs
    with pytest.raises(InvalidToken, match="signed with key 'k2025', which this server does not hold"):
        after.open(before, "p1")
    with pytest.raises(InvalidToken, match="signature does not match"):
        TokenKeys((TokenKey("k2025", b"x" * 32),)).open(before, "p1")  # same id, another secret


def test_unsigned_and_foreign_tokens_are_refused() -> None:
    keys = TokenKeys((NEW,))
    legacy = base64.urlsafe_b64encode(orjson.dumps([2, "d", "banner", "promo", "v1", 1, "web"])).decode()
    with pytest.raises(InvalidToken, match="unsigned tracking token"):
        keys.open(legacy, "p1")
    unsigned = TrackingToken("d", "banner", "promo", "v1", 1).encode()  # fields without the signature
    for text in ("not-a-token", "%%%", "", unsigned):
        with pytest.raises(InvalidToken):
            keys.open(text, "p1")


def test_compact_size_the_profile_costs_no_byte() -> None:
    token = TrackingToken("ab" * 16, "home_banner", "spring_sale_20", "sha256:0123456789ab", 1_780_000_000_000, "web")
    signed = TokenKeys((NEW,)).sign(token.encode(), "a-36-character-ecid-0000000000000000")
    # format + key id + flags, time, 16-byte id, 4 length-prefixed texts, 16-byte MAC
    raw = 2 + 5 + 1 + 6 + 16 + (1 + 11) + (1 + 14) + (1 + 19) + (1 + 3) + MAC_BYTES
    assert len(signed) == -(-raw * 4 // 3)
    previous = TokenKeys((NEW,), signing_format=PREVIOUS_FORMAT).sign(
        token.encode(), "a-36-character-ecid-0000000000000000"
    )
    assert len(previous) == len(signed)


def test_an_experiment_adds_its_id_and_variant_only() -> None:
    plain = TrackingToken("ab" * 16, "home_banner", "spring_sale_20", "v3", 1_780_000_000_000, "web")
    tested = TrackingToken("ab" * 16, "home_banner", "spring_sale_20", "v3", 1_780_000_000_000, "web", "copy", "bold")
    assert len(tested.fields()) == len(plain.fields()) + (1 + 4) + (1 + 4)
    assert TrackingToken.from_fields(tested.fields()) == tested and TrackingToken.from_fields(plain.fields()) == plain


def test_key_configuration_errors_name_where_never_the_secret() -> None:
    with pytest.raises(TokenKeyError, match="tokens:2: key k1: the secret must be at least 32 bytes") as short:
        keys_from([("tokens:1", "k0", "s" * 32), ("tokens:2", "k1", "short-secret")])
    assert "short-secret" not in str(short.value)
    with pytest.raises(TokenKeyError, match="key id 'bad id'"):
        keys_from([("env", "bad id", "s" * 32)])
    with pytest.raises(TokenKeyError, match="share a key id"):
        keys_from([("a", "k", "s" * 32), ("b", "k", "t" * 32)])


def test_generated_keys_survive_the_trip_to_a_worker_process() -> None:
    keys = TokenKeys.generate()
    assert keys.ephemeral
    token = keys.sign(TrackingToken("d", "p", "o", "v", 1).encode(), "p1")
    assert (
        pickle.loads(pickle.dumps(keys)).open(token, "p1").offer_id == "o"
    )  # spawned workers get the settings pickled
    previous = TokenKeys.generate()
    previous = TokenKeys(previous.keys, previous.ephemeral, signing_format=PREVIOUS_FORMAT)
    assert pickle.loads(pickle.dumps(previous)).signing_format == PREVIOUS_FORMAT


# Tokens signed by the previous release (format 3), computed with its decision/core/tokens.py for KEY:
# ``TokenKeys((TokenKey("k1", b"s" * 32),)).sign(token.encode())`` for each token of ``PREVIOUS``.
KEY = TokenKey("k1", b"s" * 32)
PLAIN = TrackingToken(
    "0123456789abcdef" * 2, "home_banner", "spring_sale_20", "sha256:0123456789ab", 1_780_000_000_000, "web"
)
TESTED = TrackingToken(
    "0123456789abcdef" * 2, "home_banner", "spring_sale_20", "v3", 1_780_000_000_000, "web", "hero-copy", "bold"
)
PREVIOUS = {
    "AwJrMQEBnnBEiAABI0VniavN7wEjRWeJq83vC2hvbWVfYmFubmVyDnNwcmluZ19zYWxlXzIwE3NoYTI1NjowMTIzNDU2Nzg5YWIDd2ViqtlZQ8ReN1j7"
    "LwXhYNOLJA": PLAIN,
    "AwJrMQMBnnBEiAABI0VniavN7wEjRWeJq83vC2hvbWVfYmFubmVyDnNwcmluZ19zYWxlXzIwAnYzA3dlYgloZXJvLWNvcHkEYm9sZObMVXQMf1IK"
    "Hqh8KSvSxh8": TESTED,
}


@pytest.mark.parametrize("signed", list(PREVIOUS))
def test_tokens_of_the_previous_release_verify_for_any_profile(signed: str) -> None:
    keys = TokenKeys((KEY,))
    for profile in ("p1", "another-profile"):  # not bound: the window a rolling upgrade needs (SECURITY.md)
        assert keys.open(signed, profile) == PREVIOUS[signed]


@pytest.mark.parametrize("signed", list(PREVIOUS))
def test_signing_the_previous_format_makes_the_previous_releases_tokens_byte_for_byte(signed: str) -> None:
    # What servers of this release sign in the first step of an upgrade: the previous release verifies exactly these.
    previous = TokenKeys((KEY,), signing_format=PREVIOUS_FORMAT)
    assert previous.sign(PREVIOUS[signed].encode(), "any-profile") == signed
    current = TokenKeys((KEY,)).sign(PREVIOUS[signed].encode(), "p1")
    assert current != signed and len(current) == len(signed)
    # The previous release's verifier refuses a token whose first byte is not 3 ("not a tracking token"):
    assert base64.urlsafe_b64decode(current + "==")[0] == 4 and base64.urlsafe_b64decode(signed + "==")[0] == 3


def test_an_unknown_signing_format_is_a_key_error() -> None:
    with pytest.raises(TokenKeyError, match="token format 5: expected one of 3, 4"):
        TokenKeys((KEY,), signing_format=5)
