"""audience_sync writes profile attributes atomically per profile: a later event wins whatever the order."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_sync.attributes import AttributeChange, AttributeRejected, write_attributes
from audience_sync.gc import KeepRule, collect
from audience_sync.store import CutoverItem, SyncStore
from decision.store.codecs import AudienceDirectory, decode_attribute, profile_attributes

changes = st.lists(
    st.tuples(st.sampled_from([None, "gold", "silver", "platinum"]), st.sampled_from([1.0, 2.0, 3.0])),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes, st.randoms(use_true_random=False))
def test_the_result_does_not_depend_on_delivery_order(store: SyncStore, updates: list, rnd: object) -> None:
    """Applied in any order, the stored value is the one of the latest event (ties: removal, then greater)."""
    profile = f"p-{uuid.uuid4().hex}"
    other = f"q-{uuid.uuid4().hex}"
    batch = [AttributeChange(profile, "tier", "string", v, t) for v, t in updates]
    shuffled = [AttributeChange(other, c.name, c.type, c.value, c.event_time) for c in batch]
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    for change in batch:  # one by one: each its own script call
        write_attributes(store, [change])
    write_attributes(store, shuffled)  # in one call, shuffled
    stored = [store.client.hget(store.keys.membership(p), "@tier") for p in (profile, other)]
    assert stored[0] == stored[1]
    latest = max(t for _, t in updates)
    at_latest = [v for v, t in updates if t == latest]
    decoded = decode_attribute(stored[0])
    assert decoded is not None
    assert decoded == (int(latest * 1000), None if None in at_latest else max(at_latest))


def test_a_bad_change_writes_nothing_of_its_batch(store: SyncStore) -> None:
    good = AttributeChange("p1", "tier", "string", "gold", time.time())
    for bad, reason in [
        (AttributeChange("p1", "bad-name", "string", "x", 1.0), "profile 'p1': attribute 'bad-name': invalid"),
        (AttributeChange("p1", "ltv", "number", "12", 1.0), "attribute 'ltv': expected a finite number, got str"),
        (AttributeChange("p1", "ltv", "money", 12, 1.0), "attribute 'ltv': unknown attribute type 'money'"),
        (AttributeChange("}p", "ltv", "number", 12, 1.0), "profile '}p': attribute 'ltv': profile_id: may not"),
        (AttributeChange("p1", "tags", "list", ["a", 1], 1.0), "attribute 'tags': expected strings"),
    ]:
        with pytest.raises(AttributeRejected) as error:
            write_attributes(store, [good, bad])
        assert reason in str(error.value), error.value
    assert store.client.exists(store.keys.membership("p1")) == 0


def test_a_snapshots_attributes_go_with_its_generation(store: SyncStore) -> None:
    now = time.time()
    begun = store.begin_snapshot("loyalty", now=now, stale_after=300, source="t", owner="tests:1")
    code, first = begun.code, begun.generation
    write_attributes(store, [AttributeChange("p1", "tier", "string", "gold", now)], snapshot=(code, first))
    write_attributes(store, [AttributeChange("p1", "ltv", "number", 10, now)])  # a change: no generation
    key = store.keys.membership("p1")
    assert set(store.client.hkeys(key)) == {f"@tier/{code}:{first}".encode(), b"@ltv"}

    def seen() -> dict[str, object]:
        state = store.registry_state()
        directory = AudienceDirectory.build(state.version, state.entries)
        return directory.attributes(store.client.hgetall(key))

    assert seen() == {"ltv": 10.0}  # loading: not counted
    assert not store.cutover([CutoverItem("loyalty", code, first, 1, "t")], now=now, extra={}).refused
    assert seen() == {"ltv": 10.0, "tier": "gold"}
    second = store.begin_snapshot("loyalty", now=now, stale_after=300, source="t", owner="tests:1").generation
    write_attributes(store, [AttributeChange("p1", "tier", "string", "silver", now - 5)], snapshot=(code, second))
    assert seen() == {"ltv": 10.0, "tier": "gold"}
    assert not store.cutover([CutoverItem("loyalty", code, second, 1, "t")], now=now, extra={}).refused
    assert seen() == {"ltv": 10.0, "tier": "silver"}  # switched with the memberships, even though older

    # gc: the replaced generation's attribute goes (once past the grace period); changes' stay.
    rule = KeepRule.build(store.registry_state(), now + 3600)
    assert rule.is_garbage(f"@tier/{code}:{first}".encode())
    assert not rule.is_garbage(f"@tier/{code}:{second}".encode())
    assert not rule.is_garbage(b"@ltv")
    collect(store, clock=lambda: now + 3600)
    assert set(store.client.hkeys(key)) == {f"@tier/{code}:{second}".encode(), b"@ltv"}


def test_at_equal_times_a_change_beats_a_snapshot() -> None:
    fields = {b"@tier": b"s1000|change", b"@tier/1:1": b"s1000|snapshot", b"@ltv/1:1": b"n2000|5.0"}
    assert profile_attributes(fields, {b"1:1"}) == {"tier": "change", "ltv": 5.0}
    later = {**fields, b"@tier/1:1": b"s1001|snapshot"}
    assert profile_attributes(later, {b"1:1"}) == {"tier": "snapshot", "ltv": 5.0}
    removed = {**later, b"@tier": b"-1002|"}
    assert profile_attributes(removed, {b"1:1"}) == {"ltv": 5.0}
    assert profile_attributes(removed, set()) == {}  # the snapshot's generation is not active


def test_every_order_of_three_writes_agrees(store: SyncStore) -> None:
    writes = [("gold", 5.0), (None, 5.0), ("silver", 4.0)]
    results = set()
    for index, order in enumerate(itertools.permutations(writes)):
        profile = f"perm-{index}"
        for value, at in order:
            write_attributes(store, [AttributeChange(profile, "tier", "string", value, at)])
        results.add(store.client.hget(store.keys.membership(profile), "@tier"))
    assert results == {b"-5000|"}
