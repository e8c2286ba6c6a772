"""Signed tracking tokens end to end: RecordEvents counts only events about decisions this service made, for the
profile they were made for, each token each event type once; servers of the previous release and of this one side
by side lose no event."""

from __future__ import annotations

import base64
import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis.asyncio as aioredis

from decision.api.token_keys import load_token_keys
from decision.core.tokens import PREVIOUS_FORMAT, TokenKey, TokenKeyError, TokenKeys, TrackingToken
from decision.v1 import decision_pb2
from inbound_common.keys import KeySpace
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
# The MAC covers the profile: a token of another profile cannot be told from an altered or forged one.
NOT_FOR_THIS_PROFILE = "not made for events[{i}].profile_id (a token of another profile), altered or forged"


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
        decided = server.settings.token_keys.open(item.tracking_token, "p1")
        # A hand-made token for a decision that never happened, signed with a key the server does not hold ...
        forged_token = TokenKeys((TokenKey("k-new", b"guessed-" + b"g" * 32),)).sign(
            TrackingToken("f" * 32, "banner", "promo", decided.ruleset_version, decided.decided_at_ms, "web").encode(),
            "p1",
        )
        forged = event(item, "forged", at=clock())
        forged.tracking_token = forged_token
        # ... and the real token with its offer changed (a byte of the fields, then of the MAC).
        altered = event(item, "altered", at=clock())
        altered.tracking_token = flipped(item.tracking_token, 30)
        bad_mac = event(item, "bad-mac", at=clock())
        bad_mac.tracking_token = flipped(item.tracking_token, -1)
        assert await record(stub, forged, altered, bad_mac) == [
            ("rejected", f"events[{i}].tracking_token: {NOT_FOR_THIS_PROFILE.format(i=i)}") for i in range(3)
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
        assert during.settings.token_keys.open(new_item.tracking_token, "p2")  # signed by the last key: NEW
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


async def keys_of(redis_client: aioredis.Redis, profile: str) -> list[bytes]:
    """Every key in the profile's hash tag."""
    return [key async for key in redis_client.scan_iter(match=f"*{{{profile}}}*")]


async def promo_server(start: StartServer, write_rules: Callable[[str], Path], caps: str, **options: Any) -> Any:
    """A server proposing ``promo`` (with ``caps``) before ``next``, its clock at 2026-06-01 09:00 UTC."""
    rules = ruleset(
        f"  - {{id: promo, placements: [banner], priority: 10, caps: [{caps}]}}\n"
        "  - {id: next, placements: [banner], priority: 5}\n"
    )
    return with_clock(await start(write_rules(rules), **PATIENT, **options), Clock("2026-06-01T09:00:00+00:00"))


@pytest.fixture
async def impressions_capped(start_server: StartServer, write_rules: Callable[[str], Path]) -> Any:
    """``promo`` capped at 2 impressions in 30 days, then ``next``."""
    return await promo_server(start_server, write_rules, "{max: 2, period: 30d, counts: impression}")


async def test_a_token_sent_for_another_profile_is_rejected_naming_both_fields(
    impressions_capped: Any, redis_client: aioredis.Redis
) -> None:
    # Found from the outside: profile s1's token sent twice as an impression for s3 made s3 "capped: 2 of 2".
    server = impressions_capped
    clock = server.service.clock
    async with decision_stub(server.port) as stub:
        item = first(await decide(stub, "s1"))
        replays = [event(item, f"r{n}", at=clock(), profile="s3") for n in range(2)]
        assert await record(stub, *replays) == [
            ("rejected", f"events[{i}].tracking_token: {NOT_FOR_THIS_PROFILE.format(i=i)}") for i in range(2)
        ]
        assert await keys_of(redis_client, "s3") == []  # nothing counted, nothing written
        assert first(await decide(stub, "s3")).offer_id == "promo"
        assert await record(stub, event(item, "own", at=clock(), profile="s1")) == [("recorded", "")]


async def test_five_clicks_with_one_token_count_once(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    server = await promo_server(start_server, write_rules, "{max: 2, period: 30d, counts: click}")
    clock = server.service.clock
    click = decision_pb2.EVENT_TYPE_CLICK
    async with decision_stub(server.port) as stub:
        item = first(await decide(stub))
        clicks = [event(item, f"c{n}", click, at=clock() + n) for n in range(5)]  # each with its own event id
        assert await record(stub, *clicks[:3]) == [("recorded", "")] + [("duplicate", "")] * 2
        assert [await record(stub, c) for c in clicks[3:]] == [[("duplicate", "")]] * 2
        assert first(await decide(stub)).offer_id == "promo"  # one click of the cap's 2
        # The impression the click implied was counted with it: the item's own impression is a duplicate.
        assert await record(stub, event(item, "i1", at=clock())) == [("duplicate", "")]
        # Another decision's token counts: the cap is reached.
        assert await record(stub, event(first(await decide(stub)), "c-other", click, at=clock())) == [("recorded", "")]
        assert first(await decide(stub)).offer_id == "next"


async def test_a_thousand_replays_of_one_token_count_once_and_leave_the_total_cap(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_client: aioredis.Redis
) -> None:
    # Found from the outside: one genuine token replayed 1,000 times with fresh event ids exhausted a 500/day total
    # cap for every profile (a profile never shown the offer got TOTAL_CAP_REACHED).
    total_cap = "{max: 500, scope: total, period: day, time_zone: UTC, counts: impression}"
    server = await promo_server(start_server, write_rules, total_cap, totals_refresh_interval=0.0)
    clock = server.service.clock
    async with decision_stub(server.port) as stub:
        item = first(await decide(stub))
        outcomes: list[tuple[str, str]] = []
        for start in (0, 500):  # at most 500 events per call
            outcomes += await record(stub, *(event(item, f"e{n}", at=clock()) for n in range(start, start + 500)))
        assert outcomes == [("recorded", "")] + [("duplicate", "")] * 999
        total = KeySpace().total_count("promo", "impression", "d2026-06-01@UTC")
        assert await redis_client.get(total) == b"1"
        assert first(await decide(stub, "p-new")).offer_id == "promo"  # a profile never shown it


async def test_events_for_a_profile_never_decided_write_nothing(
    impressions_capped: Any, redis_client: aioredis.Redis
) -> None:
    # Found from the outside: a token was accepted for a profile that does not exist, and a counter key created.
    # A token verifies only for the profile it was made for, and a token is made only by a decision for it.
    server = impressions_capped
    clock = server.service.clock
    async with decision_stub(server.port) as stub:
        item = first(await decide(stub))
        kinds = [decision_pb2.EVENT_TYPE_IMPRESSION, decision_pb2.EVENT_TYPE_CLICK, decision_pb2.EVENT_TYPE_DISMISS]
        ghosts = [event(item, f"g{n}", kind, at=clock(), profile="ghost") for n, kind in enumerate(kinds)]
        custom = event(item, "g-custom", decision_pb2.EVENT_TYPE_CUSTOM, at=clock(), profile="ghost", custom_type="x")
        assert {outcome for outcome, _ in await record(stub, *ghosts, custom)} == {"rejected"}
    assert await keys_of(redis_client, "ghost") == []


def previous_release_tokens(tmp_path: Path) -> ModuleType:
    """decision/core/tokens.py of the previous release (the commit before format 4), from the repository's history:
    its verifier and signer, to run against this release's tokens."""
    root = Path(__file__).resolve().parents[3]
    try:
        source = subprocess.run(
            ["git", "show", f"{PREVIOUS_RELEASE}:decision/core/tokens.py"],
            cwd=root, capture_output=True, text=True, check=True, timeout=30,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        pytest.skip("the previous release is not in this checkout's history (a shallow clone?)")
    path = tmp_path / "previous_tokens.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("previous_tokens", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while they are made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


# The last commit whose tokens were of format 3 (signed, not bound to a profile).
PREVIOUS_RELEASE = "33d6d4e49d360c45b76e6206bbcc685393229d24"


async def test_a_rolling_upgrade_loses_no_event_either_way(
    start_server: StartServer, write_rules: Callable[[str], Path], tmp_path: Path
) -> None:
    previous: Any = previous_release_tokens(tmp_path)
    clock = Clock("2026-06-01T09:00:00+00:00")
    rules = write_rules(RULES)
    old_keys = previous.TokenKeys((previous.TokenKey(NEW.key_id, NEW.secret),))
    # Step 1: servers of this release sign the previous format: the previous release verifies their tokens.
    step1 = with_clock(
        await start_server(rules, token_keys=TokenKeys((NEW,), signing_format=PREVIOUS_FORMAT), **PATIENT), clock
    )
    async with decision_stub(step1.port) as stub:
        item = first(await decide(stub, "p1"))
    opened = old_keys.open(item.tracking_token)
    assert (opened.offer_id, opened.placement_id) == ("promo", "banner")
    # ... and a token the previous release signed is recorded by this one, once per token like its own.
    made_before = old_keys.sign(
        previous.TrackingToken("e" * 32, "banner", "promo", opened.ruleset_version, int(clock() * 1000), "web").encode()
    )
    after = with_clock(await start_server(rules, token_keys=TokenKeys((NEW,)), **PATIENT), clock)
    async with decision_stub(after.port) as stub:
        before = event(item, "before", at=clock(), profile="p2")
        before.tracking_token = made_before
        replay = event(item, "replay", at=clock(), profile="p2")
        replay.tracking_token = made_before
        assert await record(stub, event(item, "step1", at=clock()), before, replay) == [
            ("recorded", ""), ("recorded", ""), ("duplicate", ""),
        ]  # fmt: skip
        # Step 2 (this release's format, bound to the profile): the previous release refuses these, so step 2
        # waits until no server of the previous release records events.
        bound = first(await decide(stub, "p3")).tracking_token
    with pytest.raises(previous.InvalidToken, match="not a tracking token"):
        old_keys.open(bound)
