"""The lease and the ledger in Redis: one watcher at a time, and one that lost its lease writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from audience_sync.report import ErrorReport
from audience_sync.snapshot import LoadOptions, SnapshotLoad, SnapshotRefused
from audience_sync.store import SyncStore
from audience_sync.watch.ledger import Lease, LeaseLost
from audience_sync.watch.record import Record
from tests.audience_sync.helpers import seen_by_readers, write_lines


def record(outcome: str = "applied") -> Record:
    return Record(version="e1|10", kind="snapshot", outcome=outcome, export_time=1.0, series="a_*.csv")


def test_one_holder_at_a_time_each_with_a_new_token(store: SyncStore) -> None:
    first, second = Lease(store, "w", "host:1", ttl=30), Lease(store, "w", "host:2", ttl=30)
    try:
        assert first.acquire() and first.token == 1
        assert not second.acquire() and second.holder == "1 host:1"
        first.release()  # a watcher that stops gives it up: the other takes it at once
        assert second.acquire() and second.token == 2
    finally:
        first.release()
        second.release()


def test_a_watcher_that_lost_its_lease_records_nothing(store: SyncStore) -> None:
    lost: list[bool] = []
    first = Lease(store, "w", "host:1", ttl=30, on_lost=lambda: lost.append(True))
    second = Lease(store, "w", "host:2", ttl=30)
    try:
        assert first.acquire()
        first.write({"bucket/a.csv": record("applying")})
        store.client.delete(store.keys.watch_lease("w"))  # as when its TTL ran out (paused, cut off)
        assert second.acquire()
        with pytest.raises(LeaseLost):
            first.write({"bucket/a.csv": record("refused")})
        assert lost == [True] and not first.held
        assert second.read()["bucket/a.csv"].outcome == "applying"
    finally:
        first.release()
        second.release()


def test_a_snapshot_is_switched_in_only_under_the_lease_and_recorded_with_it(store: SyncStore, tmp_path: Path) -> None:
    export = write_lines(tmp_path / "a.csv", ["profile_id,audience_id", "p1,vip", "p2,vip"])
    first, second = Lease(store, "w", "host:1", ttl=30), Lease(store, "w", "host:2", ttl=30)
    try:
        assert first.acquire()
        guard = first.guard({"bucket/a.csv": record()})
        store.client.delete(store.keys.watch_lease("w"))
        assert second.acquire()
        stale = SnapshotLoad(store, LoadOptions(), ErrorReport(), guard=guard)
        with pytest.raises(SnapshotRefused, match="fenced"):
            stale.run([str(export)])
        assert seen_by_readers(store) == {} and store.registry_state().pending == []  # cleaned up, nothing seen
        assert second.read() == {}

        outcome = SnapshotLoad(store, LoadOptions(), ErrorReport(), guard=second.guard({"bucket/a.csv": record()})).run(
            [str(export)]
        )
        assert seen_by_readers(store) == {"p1": {"vip"}, "p2": {"vip"}}
        assert second.read()["bucket/a.csv"].registry_version == outcome.version  # recorded by the same script
    finally:
        first.release()
        second.release()
