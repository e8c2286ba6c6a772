"""audience_sync writes profile attributes atomically per profile: the later event wins whatever the delivery
order, the later arrival at equal times; an identical resend is unchanged."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_sync.attributes import AttributeChange, AttributeRejected, AttributeTally, write_attributes
from audience_sync.gc import KeepRule, collect
from audience_sync.store import CutoverItem, SyncStore
from inbound_common.codecs import AudienceDirectory, decode_attribute, profile_attributes
from tests.audience_sync.helpers import latest_arrival, results_of

# Few values and few times: ties, identical resends and removals are frequent.
pushes = st.lists(
    st.tuples(st.sampled_from([None, "gold", "silver", "bronze"]), st.sampled_from([1.0, 1.001, 2.0])),
    min_size=1,
    max_size=4,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pushes, st.lists(st.integers(0, 3), min_size=1, max_size=10), st.lists(st.integers(1, 3), min_size=1))
def test_the_latest_event_time_wins_then_the_later_arrival(
    store: SyncStore, sent: list[tuple[str | None, float]], schedule: list[int], calls: list[int]
) -> None:
    """Any interleaving of writes and retries (a write delivered again), in calls of any size: the stored value
    is the one of the latest event time, the later arrival winning a tie — never the order of the values — and
    each delivery is answered written, unchanged (an identical resend) or stale as it arrived."""
    profile = f"p-{uuid.uuid4().hex}"
    deliveries = [sent[i % len(sent)] for i in schedule]
    changes = [AttributeChange(profile, "tier", "string", value, at) for value, at in deliveries]
    tally, start = AttributeTally(), 0
    for size in itertools.cycle(calls):  # each call: one script, its changes in order
        if start >= len(changes):
            break
        tally.merge(write_attributes(store, changes[start : start + size]))
        start += size
    in_ms = [(value, round(at * 1000)) for value, at in deliveries]
    winner = latest_arrival(in_ms)
    stored = store.client.hgetall(store.keys.membership(profile))
    assert profile_attributes(stored, set()).get("tier") == winner
    assert decode_attribute(stored[b"@tier"]) == (max(at for _, at in in_ms), winner)
    results = results_of(in_ms)
    assert tally.as_json() == {r: results.count(r) for r in ("written", "unchanged", "stale")}


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


def test_a_tie_goes_to_the_later_arrival_never_to_the_greater_value(store: SyncStore) -> None:
    """The regression: bronze after gold at the same time is written; so is a removal then a value again."""
    writes = [("gold", 5.0), ("bronze", 5.0), ("silver", 5.0), (None, 5.0), ("gold", 5.0), ("gold", 5.0)]
    answers = [write_attributes(store, [AttributeChange("p", "tier", "string", v, at)]) for v, at in writes]
    assert [a.as_json() for a in answers] == [
        {"written": 1, "unchanged": 0, "stale": 0},
        {"written": 1, "unchanged": 0, "stale": 0},
        {"written": 1, "unchanged": 0, "stale": 0},
        {"written": 1, "unchanged": 0, "stale": 0},
        {"written": 1, "unchanged": 0, "stale": 0},
        {"written": 0, "unchanged": 1, "stale": 0},  # an identical resend
    ]
    assert store.client.hget(store.keys.membership("p"), "@tier") == b"s5000|gold"
    # The same value later: unchanged, and its later time kept (an older write arriving next is stale).
    assert write_attributes(store, [AttributeChange("p", "tier", "string", "gold", 6.0)]).unchanged == 1
    assert write_attributes(store, [AttributeChange("p", "tier", "string", "silver", 5.5)]).stale == 1
    assert store.client.hget(store.keys.membership("p"), "@tier") == b"s6000|gold"
    # Removing what is absent: unchanged, but the removal's time is kept as a tombstone.
    assert write_attributes(store, [AttributeChange("q", "tier", "string", None, 7.0)]).unchanged == 1
    assert write_attributes(store, [AttributeChange("q", "tier", "string", "gold", 6.0)]).stale == 1
    # Another type with the same text is another value.
    assert write_attributes(store, [AttributeChange("p", "tier", "list", ["gold"], 6.0)]).written == 1


def test_a_value_written_by_the_previous_release_is_compared_as_before(store: SyncStore) -> None:
    """Values are encoded as they were (no arrival stored): those already in Redis keep their meaning."""
    key = store.keys.membership("old")
    store.client.hset(key, mapping={"@tier": "s5000|gold", "@ltv": "n5000|12.0", "@gone": "-5000|"})
    tally = write_attributes(
        store,
        [
            AttributeChange("old", "tier", "string", "bronze", 5.0),  # a tie: the later arrival, now
            AttributeChange("old", "ltv", "number", 12, 5.0),  # the same number: unchanged
            AttributeChange("old", "gone", "string", None, 5.0),  # removed again: unchanged
        ],
    )
    assert tally.as_json() == {"written": 1, "unchanged": 2, "stale": 0}
    assert profile_attributes(store.client.hgetall(key), set()) == {"tier": "bronze", "ltv": 12.0}
