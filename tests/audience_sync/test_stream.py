"""The stream consumer: at-least-once, idempotent, ordered by event time, resumes after a crash."""

from __future__ import annotations

import functools
import random
import signal
import subprocess
from typing import Any

import pytest

from audience_sync.report import ErrorReport
from audience_sync.store import SyncStore
from audience_sync.stream import StreamConsumer, StreamOptions
from tests.audience_sync.helpers import cli, seen_by_readers, spawn
from tests.waiting import eventually_sync, freeze_sync

STREAM = "ib:audience-events"


def event(profile: str, audience: str, status: str, at: float, **extra: str) -> dict[str, str]:
    return {"profile_id": profile, "audience_id": audience, "status": status, "event_time": str(at), **extra}


def consume(store: SyncStore, consumer: str = "c1", **options: Any) -> Any:
    settings = StreamOptions(stream=STREAM, consumer=consumer, drain=True, batch_size=7, **options)
    return StreamConsumer(store, settings, ErrorReport(show=0)).run()


def expected_state(events: list[dict[str, str]]) -> dict[str, set[str]]:
    """For each (profile, audience) the latest event decides; at equal times an exit wins."""
    winner: dict[tuple[str, str], tuple[float, bool]] = {}
    for e in events:
        key = (e["profile_id"], e["audience_id"])
        at, member = float(e["event_time"]), e["status"] != "exited"
        best = winner.get(key)
        if best is None or at > best[0] or (at == best[0] and not member):
            winner[key] = (at, member)
    state: dict[str, set[str]] = {}
    for (profile, audience), (_, member) in winner.items():
        if member:
            state.setdefault(profile, set()).add(audience)
    return state


def random_events(seed: int, count: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [
        event(f"p{rng.randrange(40)}", f"a{rng.randrange(3)}", rng.choice(["realized", "exited"]), rng.randrange(50))
        for _ in range(count)
    ]


def test_out_of_order_and_repeated_events_end_in_the_latest_state(store: SyncStore) -> None:
    events = random_events(1, 300)
    delivered = events + random.Random(2).sample(events, 100)  # at-least-once: some twice, late
    store.add_events(STREAM, delivered)
    outcome = consume(store)
    assert outcome.entries == outcome.acked == 400
    assert seen_by_readers(store) == expected_state(events)
    assert store.pending_count(STREAM, "audience-sync") == 0
    # The same events again (a replay from the start): nothing changes.
    before = seen_by_readers(store)
    store.add_events(STREAM, events)
    assert consume(store).tally.added == 0
    assert seen_by_readers(store) == before


def test_bad_entries_are_reported_and_acknowledged(store: SyncStore) -> None:
    store.add_events(STREAM, [event("p1", "a", "realized", 1), {"profile_id": "p2", "status": "realized"}])
    store.add_events(STREAM, [event("p3", "a", "maybe", 1), {"audience_id": "a", "status": "exited"}])
    report = ErrorReport(show=0)
    outcome = StreamConsumer(store, StreamOptions(stream=STREAM, drain=True), report).run()
    assert (outcome.entries, outcome.bad, report.count) == (4, 3, 3)
    assert store.pending_count(STREAM, "audience-sync") == 0
    assert seen_by_readers(store) == {"p1": {"a"}}


def test_entries_of_a_dead_consumer_are_claimed(store: SyncStore) -> None:
    store.add_events(STREAM, [event("p1", "a", "realized", 1), event("p2", "a", "realized", 1)])
    store.ensure_group(STREAM, "audience-sync")
    delivered = store.read_group(STREAM, "audience-sync", "dead", count=10, block_ms=1, pending=False)
    assert len(delivered) == 2  # delivered to "dead", which never acknowledges them
    outcome = consume(store, consumer="alive", claim_idle_ms=0)
    assert outcome.entries == 2
    assert seen_by_readers(store) == {"p1": {"a"}, "p2": {"a"}}
    assert store.pending_count(STREAM, "audience-sync") == 0


@pytest.mark.timeout(120)
def test_a_consumer_killed_mid_batch_resumes_exactly(store: SyncStore, redis_url: str, capsys: Any) -> None:
    events = random_events(3, 3000)
    ids = store.add_events(STREAM, events)
    position = {entry_id: i + 1 for i, entry_id in enumerate(ids)}

    def acked() -> int:
        """Entries delivered to the group (up to its last delivered id) and no longer pending."""
        groups = store.client.xinfo_groups(STREAM)
        if not groups:
            return 0
        return position.get(groups[0]["last-delivered-id"], 0) - int(groups[0]["pending"])

    def pending() -> int:
        return store.pending_count(STREAM, "audience-sync")

    def holding_a_batch(consumer: subprocess.Popen[bytes], progress: int) -> bool:
        """Past ``progress``, frozen while it holds entries it has read and not acknowledged."""
        assert consumer.poll() is None, "the consumer ended before it could be killed"
        if acked() < progress or not pending():
            return False
        freeze_sync(consumer)  # nothing moves now: what is pending stays pending
        if pending():
            return True
        consumer.send_signal(signal.SIGCONT)  # it acknowledged meanwhile: on to its next batch
        return False

    args = ("stream", "--drain", "--batch-size", "20", "--consumer", "worker-1")
    left_pending = []
    for progress in (20, 1000, 2000):  # kill it three times, at different points of its work
        consumer = spawn(*args, redis_url=redis_url)
        caught = functools.partial(holding_a_batch, consumer, progress)
        eventually_sync(caught, f"the consumer past {progress} entries, mid-batch", interval=0.002)
        left_pending.append(pending())
        consumer.send_signal(signal.SIGKILL)
        consumer.wait()
    assert acked() < len(events), "the consumer finished before it could be killed"
    assert all(left_pending), "killed between a write and its acknowledgement"
    # Restarted under the same name: it first takes back its own unacknowledged entries.
    status, out, _ = cli(capsys, *args, "--redis-url", redis_url)
    assert status == 0, out
    assert seen_by_readers(store) == expected_state(events)
    assert store.pending_count(STREAM, "audience-sync") == 0
    assert acked() == len(events)


def attribute(profile: str, name: str, at: float, value: str | None = None, type: str = "string") -> dict[str, str]:
    entry = {"profile_id": profile, "attribute": name, "type": type, "event_time": str(at)}
    return entry if value is None else {**entry, "value": value}


def test_attribute_entries_are_written_by_event_time_then_acked(store: SyncStore, redis_url: str, capsys: Any) -> None:
    from inbound_common.codecs import profile_attributes

    def attributes_of(profile_id: str) -> dict[str, object]:
        return profile_attributes(store.client.hgetall(store.keys.membership(profile_id)), set())

    store.add_events(
        STREAM,
        [
            attribute("p1", "tier", 20, "gold"),
            event("p1", "vip", "realized", 20),  # memberships and attributes in one stream
            attribute("p1", "tier", 10, "silver"),  # older: skipped
            attribute("p1", "ltv", 10, "99.5", "number"),
            attribute("p1", "stores", 10, "lyon|paris", "list"),
            attribute("p2", "tier", 10, "gold"),
            attribute("p2", "tier", 11),  # no value: removed
            attribute("p3", "ltv", 10, "lots", "number"),  # bad: reported, acknowledged
            attribute("p3", "bad-name", 10, "x"),
            attribute("p3", "ltv", 10, "", "number"),
        ],
    )
    status, out, err = cli(capsys, "stream", "--stream", STREAM, "--drain", "--redis-url", redis_url)
    assert status == 0, err
    assert "10 entries, 3 bad" in out and "attribute values written 5, unchanged 0, stale 1" in out
    assert attributes_of("p1") == {"tier": "gold", "ltv": 99.5, "stores": ("lyon", "paris")}
    assert attributes_of("p2") == {} and attributes_of("p3") == {}
    assert seen_by_readers(store) == {"p1": {"vip"}}
    assert store.pending_count(STREAM, "audience-sync") == 0
    for reason in ("value: expected a number, got 'lots'", "'bad-name' is not an attribute name", "value: empty"):
        assert reason in err
    # Delivered again (at-least-once): nothing changes (the same value: unchanged; older than the removal: stale).
    store.add_events(STREAM, [attribute("p1", "tier", 20, "gold"), attribute("p2", "tier", 10, "gold")])
    assert consume(store).attributes.as_json() == {"written": 0, "unchanged": 1, "stale": 1}
    assert attributes_of("p1")["tier"] == "gold" and attributes_of("p2") == {}
