"""The Redis key layout (docs/redis-keys.md)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from inbound_common.codecs import AudienceDirectory, AudienceEntry, membership_field, membership_value
from inbound_common.keys import KeySpace

profile_ids = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=64).filter(
    lambda s: "{" not in s and "}" not in s
)


@given(profile_ids)
def test_membership_key_is_tagged_by_the_profile(profile_id: str) -> None:
    key = KeySpace().membership(profile_id)
    assert key == f"ib:m:{{{profile_id}}}"
    # The cluster slot is the profile's, whatever the prefix.
    assert key_slot(key.encode()) == key_slot(KeySpace("other").membership(profile_id).encode())
    assert key_slot(key.encode()) == key_slot(f"{{{profile_id}}}".encode())


@given(profile_ids, st.uuids().map(lambda u: u.hex), st.text(min_size=1, max_size=20))
def test_a_profiles_event_keys_share_its_slot(profile_id: str, decision_id: str, event_id: str) -> None:
    # record_events.lua names the counters, the event keys and the decisions' token keys of one profile: one slot.
    keys = KeySpace()
    token_key = keys.token_events(profile_id, decision_id)
    assert token_key == f"ib:tok:{{{profile_id}}}:{decision_id}"
    slots = {
        key_slot(k.encode()) for k in (keys.counters(profile_id), keys.event_seen(profile_id, event_id), token_key)
    }
    assert slots == {key_slot(keys.membership(profile_id).encode())}


def test_registry_keys_share_one_slot() -> None:
    keys = KeySpace()
    slots = {key_slot(k.encode()) for k in (keys.audiences, keys.next_code, keys.registry_version)}
    assert len(slots) == 1


@pytest.mark.parametrize("prefix", ["", "a:b", "a{b", "a b"])
def test_invalid_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid key prefix"):
        KeySpace(prefix)


@given(
    st.builds(
        AudienceEntry,
        audience_id=st.text(min_size=1, max_size=40),
        code=st.integers(1, 2**40),
        generation=st.integers(1, 2**40),
        name=st.text(max_size=20),
        source=st.text(max_size=20),
        synced_at=st.none() | st.floats(0, 2e9),
        members=st.none() | st.integers(0, 10**9),
    )
)
def test_audience_entries_round_trip(entry: AudienceEntry) -> None:
    assert AudienceEntry.decode(entry.audience_id, entry.encode()) == entry


def test_directory_counts_active_generation_and_unexpired_only() -> None:
    directory = AudienceDirectory.build(
        3, {"vip": AudienceEntry("vip", code=1, generation=2), "gold": AudienceEntry("gold", code=2, generation=1)}
    )
    now = 1_000_000.0
    membership = {
        membership_field(1, 1).encode(): b"",  # an old generation of vip
        membership_field(2, 1).encode(): membership_value(now - 1).encode(),  # gold, expired
    }
    assert directory.audiences(membership, now) == (frozenset(), False)
    membership[membership_field(1, 2).encode()] = membership_value(now + 60).encode()
    assert directory.audiences(membership, now) == (frozenset({"vip"}), False)
    membership[membership_field(9, 1).encode()] = b""  # a code the directory has not seen yet
    assert directory.audiences(membership, now) == (frozenset({"vip"}), True)


def test_codes_of_pending_snapshots_are_known_but_not_active() -> None:
    raw = {b"vip": AudienceEntry("vip", code=1, generation=2).encode()}
    directory = AudienceDirectory.from_redis(b"5", raw, [b"1:3", b"4:1"])  # vip's next generation, a new audience
    now = 1_000_000.0
    membership = {membership_field(1, 3).encode(): b"", membership_field(4, 1).encode(): b""}
    assert directory.audiences(membership, now) == (frozenset(), False)
    membership[membership_field(5, 1).encode()] = b""
    assert directory.audiences(membership, now) == (frozenset(), True)
