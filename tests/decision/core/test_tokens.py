"""Tracking tokens: signed and verified with given keys (pure: no server)."""

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
    InvalidToken,
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


@given(token=tokens)
def test_a_signed_token_opens_to_what_was_signed(token: TrackingToken) -> None:
    keys = TokenKeys((OLD, NEW))
    assert keys.open(keys.sign(token.encode())) == token


@given(token=tokens, secret=st.binary(min_size=32, max_size=200))
def test_a_decisions_writer_signs_what_a_token_signs(token: TrackingToken, secret: bytes) -> None:
    # The writer of a decision's tokens (parts written once per decision) and the keys' HMAC states made once
    # give the token that TrackingToken and a plain HMAC-SHA256 give (keys longer than a block included).
    keys = TokenKeys((TokenKey("k", secret),))
    writer = TokenWriter(keys, token.decision_id, token.decided_at_ms, token.ruleset_version, token.channel)
    signed = writer.token(token.placement_id, token.offer_id, token.experiment_id, token.variant)
    assert signed == keys.sign(token.encode())
    raw = base64.urlsafe_b64decode(signed + "==")
    body = raw[:-MAC_BYTES]
    assert raw[-MAC_BYTES:] == hmac.new(secret, body, hashlib.sha256).digest()[:MAC_BYTES]
    assert body.endswith(token.fields())
    assert keys.open(signed) == token
    unsigned = TokenWriter(None, token.decision_id, token.decided_at_ms, token.ruleset_version, token.channel)
    assert unsigned.token(token.placement_id, token.offer_id, token.experiment_id, token.variant) == token.encode()


@given(token=tokens, data=st.data())
def test_any_altered_byte_is_refused(token: TrackingToken, data: st.DataObject) -> None:
    keys = TokenKeys((NEW,))
    raw = bytearray(base64.urlsafe_b64decode(keys.sign(token.encode()) + "=="))
    at = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[at] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(InvalidToken):
        keys.open(base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode())


def test_rotation_the_last_key_signs_every_listed_key_verifies() -> None:
    token = TrackingToken("0" * 32, "banner", "promo", "sha256:0123456789ab", 1_780_000_000_000, "web")
    before = TokenKeys((OLD,)).sign(token.encode())
    during = TokenKeys((OLD, NEW))
    after = TokenKeys((NEW,))
    assert during.open(before) == token  # the old key is still listed
    assert during.sign(token.encode()) == after.sign(token.encode())  # the new one signs
    with pytest.raises(InvalidToken, match="signed with key 'k2025', which this server does not hold"):
        after.open(before)
    with pytest.raises(InvalidToken, match="signature does not match"):
        TokenKeys((TokenKey("k2025", b"x" * 32),)).open(before)  # same id, another secret


def test_unsigned_and_foreign_tokens_are_refused() -> None:
    keys = TokenKeys((NEW,))
    legacy = base64.urlsafe_b64encode(orjson.dumps([2, "d", "banner", "promo", "v1", 1, "web"])).decode()
    with pytest.raises(InvalidToken, match="unsigned tracking token"):
        keys.open(legacy)
    unsigned = TrackingToken("d", "banner", "promo", "v1", 1).encode()  # fields without the signature
    for text in ("not-a-token", "%%%", "", unsigned):
        with pytest.raises(InvalidToken):
            keys.open(text)


def test_compact_size() -> None:
    token = TrackingToken("ab" * 16, "home_banner", "spring_sale_20", "sha256:0123456789ab", 1_780_000_000_000, "web")
    signed = TokenKeys((NEW,)).sign(token.encode())
    # format + key id + flags, time, 16-byte id, 4 length-prefixed texts, 16-byte MAC
    raw = 2 + 5 + 1 + 6 + 16 + (1 + 11) + (1 + 14) + (1 + 19) + (1 + 3) + MAC_BYTES
    assert len(signed) == -(-raw * 4 // 3)


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
    token = keys.sign(TrackingToken("d", "p", "o", "v", 1).encode())
    assert pickle.loads(pickle.dumps(keys)).open(token).offer_id == "o"  # spawned workers get the settings pickled
