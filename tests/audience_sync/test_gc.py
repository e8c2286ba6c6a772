"""gc removes the fields of generations no reader counts, and only those."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from audience_sync.gc import KeepRule, collect
from audience_sync.registry import PendingSnapshot, RegistryState
from audience_sync.store import SyncStore
from inbound_common.codecs import AudienceEntry
from tests.audience_sync.helpers import seen_by_readers, write_lines


def test_gc_keeps_what_readers_or_loads_need(store: SyncStore, tmp_path: Path, redis_url: str) -> None:
    from audience_sync.cli.main import main

    url = ["--redis-url", redis_url]
    for members in (["p1", "p2"], ["p1", "p3"], ["p1"]):  # generations 1, 2, 3 of "vip"
        path = write_lines(tmp_path / "vip.csv", ["profile_id", *members])
        assert main(["load", str(path), "--audience", "vip", *url]) == 0
    vip = store.registry_state().entries["vip"]
    assert (vip.code, vip.generation) == (1, 3)
    now = time.time()
    live = store.begin_snapshot("vip", now=now, stale_after=300, source="t", owner="elsewhere:1")  # generation 4
    dead = store.begin_snapshot("gone", now=now - 1000, stale_after=300, source="t", owner="elsewhere:2")
    client = store.client
    deleted = client.incr(store.keys.next_code)  # the code of an audience no longer in the registry
    fields = {"1:4": "", f"{dead.code}:1": "", f"{deleted}:1": "", "99:1": "", "note": "x"}
    client.hset(store.keys.membership("p1"), mapping=fields)
    before = seen_by_readers(store)

    outcome = collect(store)  # within the grace period: generation 2 is kept for slow readers
    # Kept: the active generation 3, the previous one, the live load's 4, a code handed out after gc read
    # the registry (99), a field that is not a membership. Gone: generation 1, the dead load's, the deleted code's.
    kept = {b"1:3": b"", b"1:4": b"", b"99:1": b"", b"note": b"x"}
    assert client.hgetall(store.keys.membership("p1")) == {b"1:2": b"", **kept}
    assert not client.exists(store.keys.membership("p2"))  # generation 1 only: gone with its last field
    assert outcome.pending_dropped == 1  # the dead load's record, after its fields
    assert [p.field for p in store.registry_state().pending] == [f"{live.code}:{live.generation}"]

    collect(store, grace=0)
    assert client.hgetall(store.keys.membership("p1")) == kept
    assert not client.exists(store.keys.membership("p3"))
    assert seen_by_readers(store) == before == {"p1": {"vip"}}


codes = st.integers(1, 6)
gens = st.integers(1, 6)


@given(
    st.dictionaries(codes, gens, max_size=4),
    st.lists(st.tuples(codes, gens, st.booleans()), max_size=4),
    st.lists(st.tuples(st.integers(1, 9), gens), max_size=12),
)
def test_the_active_generation_is_never_garbage(
    active: dict[int, int], pending: list[tuple[int, int, bool]], fields: list[tuple[int, int]]
) -> None:
    now = 1_000_000.0
    entries = {f"a{code}": AudienceEntry(f"a{code}", code, gen) for code, gen in active.items()}
    snapshots = [
        PendingSnapshot(f"a{code}", code, gen, now, now if alive else now - 10_000) for code, gen, alive in pending
    ]
    rule = KeepRule.build(RegistryState(1, 6, entries, {}, snapshots), now)
    for code, gen in fields:
        garbage = rule.is_garbage(f"{code}:{gen}".encode())
        if active.get(code) == gen or code > 6 or any(p[:2] == (code, gen) and p[2] for p in pending):
            assert not garbage
        elif code not in active or gen < active[code]:
            assert garbage
