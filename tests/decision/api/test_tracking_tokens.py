"""Signed tracking tokens end to end: RecordEvents counts only events about decisions this service made."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from decision.api.token_keys import load_token_keys
from decision.core.tokens import TokenKey, TokenKeyError, TokenKeys, TrackingToken
from tests.conftest import StartServer, decision_stub
from tests.decision.delivery import PATIENT, Clock, decide, event, first, record, ruleset, with_clock

RULES = ruleset(
    """
  - {id: promo, placements: [banner], priority: 10, caps: [{max: 1, period: 30d, counts: impression}]}
  - {id: next, placements: [banner], priority: 5}
"""
)
OLD = TokenKey("k-old", b"old-secret-" + b"o" * 32)
NEW = TokenKey("k-new", b"new-secret-" + b"n" * 32)


def flipped(token: str, at: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[at] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


async def test_forged_and_altered_tokens_are_rejected_and_count_nothing(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T09:00:00+00:00")
    server = with_clock(await start_server(write_rules(RULES), token_keys=TokenKeys((NEW,)), **PATIENT), clock)
    async with decision_stub(server.port) as stub:
        item = first(await decide(stub))
        assert item.offer_id == "promo"
        decided = server.settings.token_keys.open(item.tracking_token)
        # A hand-made token for a decision that never happened, signed with a key the server does not hold ...
        forged_token = TokenKeys((TokenKey("k-new", b"guessed-" + b"g" * 32),)).sign(
            TrackingToken("f" * 32, "banner", "promo", decided.ruleset_version, decided.decided_at_ms, "web").encode()
        )
        forged = event(item, "forged", at=clock())
        forged.tracking_token = forged_token
        # ... and the real token with its offer changed (a byte of the fields, then of the MAC).
        altered = event(item, "altered", at=clock())
        altered.tracking_token = flipped(item.tracking_token, 30)
        bad_mac = event(item, "bad-mac", at=clock())
        bad_mac.tracking_token = flipped(item.tracking_token, -1)
        assert await record(stub, forged, altered, bad_mac) == [
            ("rejected", f"events[{i}].tracking_token: signature does not match: altered or forged") for i in range(3)
        ]
        assert first(await decide(stub)).offer_id == "promo"  # nothing counted toward the cap of 1
        assert await record(stub, event(item, "real", at=clock())) == [("recorded", "")]
        assert first(await decide(stub)).offer_id == "next"


async def test_a_rotated_out_key_is_refused_a_still_listed_one_verifies(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T09:00:00+00:00")
    rules = write_rules(RULES)
    before = with_clock(await start_server(rules, token_keys=TokenKeys((OLD,)), **PATIENT), clock)
    during = with_clock(await start_server(rules, token_keys=TokenKeys((OLD, NEW)), **PATIENT), clock)
    after = with_clock(await start_server(rules, token_keys=TokenKeys((NEW,)), **PATIENT), clock)
    async with decision_stub(before.port) as stub:
        old_item = first(await decide(stub, "p1"))
    async with decision_stub(during.port) as stub:
        new_item = first(await decide(stub, "p2"))
        assert during.settings.token_keys.open(new_item.tracking_token)  # signed by the last key: NEW
        assert await record(stub, event(old_item, "old-during", at=clock())) == [("recorded", "")]
    async with decision_stub(after.port) as stub:
        assert await record(
            stub, event(old_item, "old-after", at=clock()), event(new_item, "new", at=clock(), profile="p2")
        ) == [
            (
                "rejected",
                "events[0].tracking_token: signed with key 'k-old', which this server does not hold (rotated out?)",
            ),
            ("recorded", ""),
        ]


def test_keys_load_from_a_file_then_the_environment_the_last_signs(tmp_path: Path) -> None:
    path = tmp_path / "token-keys"
    path.write_text(f"# rotation: the last line signs\nk-old {OLD.secret.decode()}\n\nk-new  {NEW.secret.decode()} \n")
    assert load_token_keys(str(path), {}) == TokenKeys((OLD, NEW))
    env = {"DECISION_TOKEN_KEYS": f"k-env:{'e' * 32}"}
    assert load_token_keys(str(path), env).signing == TokenKey("k-env", b"e" * 32)  # type: ignore[union-attr]
    assert load_token_keys(None, {}) is None
    path.write_text("k1 too-short-secret\n")
    with pytest.raises(TokenKeyError, match=rf"{path}:1: key k1: the secret must be at least 32 bytes") as error:
        load_token_keys(str(path), {})
    assert "too-short-secret" not in str(error.value)
    path.write_text("# nothing\n")
    with pytest.raises(TokenKeyError, match="holds no entry"):
        load_token_keys(str(path), {})
