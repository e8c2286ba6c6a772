"""The Redis edge of audience_sync: key placement, the lean pipeline, scripts after a flush."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot
from redis.exceptions import ResponseError

from audience_sync.deltas import DeltaApplier
from audience_sync.records import Change
from audience_sync.store import SyncStore
from inbound_common.keys import KeySpace
from tests.audience_sync.helpers import seen_by_readers

# As the parsers accept them (check_profile_id): no control characters, not starting with "}".
profile_ids = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40).filter(
    lambda s: not s.startswith("}")
)


@given(profile_ids)
def test_a_profiles_keys_share_its_slot(profile_id: str) -> None:
    """The event-time hash sits beside the memberships: one script applies an event to both."""
    keys = KeySpace()
    assert key_slot(keys.event_times(profile_id).encode()) == key_slot(keys.membership(profile_id).encode())


def test_audience_sync_registry_keys_share_the_registry_slot() -> None:
    keys = KeySpace()
    names = (keys.audiences, keys.registry_version, keys.next_code, keys.generations, keys.pending)
    assert len({key_slot(name.encode()) for name in names}) == 1


def test_a_failed_pipeline_leaves_no_unread_replies(store: SyncStore) -> None:
    store.client.set("text", "x")
    with pytest.raises(ResponseError):
        store.pipeline([("HSET", "h", "f", "1"), ("HSET", "text", "f", "1"), ("HSET", "h", "g", "2")])
    # The next commands get their own replies, not leftovers of the failed batch.
    assert store.pipeline([("HGETALL", "h"), ("GET", "text")]) == [{b"f": b"1", b"g": b"2"}, b"x"]


def test_scripts_are_loaded_again_after_a_flush(store: SyncStore) -> None:
    applier = DeltaApplier(store, source="test")
    applier.apply([Change("p1", "a", True, None, 1.0, 0)])
    store.client.script_flush()
    applier.apply([Change("p2", "a", True, None, 1.0, 0)])
    assert seen_by_readers(store) == {"p1": {"a"}, "p2": {"a"}}
