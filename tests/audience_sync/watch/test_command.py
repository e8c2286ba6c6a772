"""``audience-sync watch`` as it runs: real processes, a real S3 API server (moto) on loopback, real Redis.

An AEP destination drops a full export, then incremental ones, into a bucket; the watcher applies each
exactly once and in order, survives a SIGKILL in the middle of a file (the next watcher applies it from
scratch, nothing counted twice), and two watchers started together apply each file once.
"""

from __future__ import annotations

import gzip
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from audience_sync.store import SyncStore
from audience_sync.watch.record import Record
from tests.audience_sync.helpers import seen_by_readers, xdm_line
from tests.audience_sync.watch.conftest import WatchProcess
from tests.conftest import StartServer, decision_stub
from tests.decision.helpers import decide_request, offers, registry_heard
from tests.waiting import eventually

PROFILES = 40_000
RULES = """
placements: [{id: banner, channels: [web], max_items: 5, fallback: fb}]
offers:
  - {id: fb, placements: [banner], priority: -1, eligibility: {audiences: {all: [nobody]}}}
  - {id: vip_offer, placements: [banner], priority: 10, eligibility: {audiences: {all: [seg-vip]}}}
  - {id: new_offer, placements: [banner], priority: 5, eligibility: {audiences: {all: [seg-new]}}}
"""


def full_export(profiles: int) -> tuple[bytes, dict[str, set[str]]]:
    """An AEP profile export (XDM JSON lines, gzip): seg-vip every other profile, seg-new every third."""
    members: dict[str, set[str]] = {}
    lines = []
    for i in range(profiles):
        segments = {a: "realized" for a, member in (("seg-vip", i % 2 == 0), ("seg-new", i % 3 == 0)) if member}
        if not segments:
            segments = {"seg-vip": "exited"}
        else:
            members[f"p{i}"] = set(segments)
        lines.append(xdm_line(f"p{i}", {a: {"status": s, "lastQualificationTime": "2026-03-01T00:00:00Z"}
                                        for a, s in segments.items()}))  # fmt: skip
    return gzip.compress(b"\n".join(lines) + b"\n"), members


def incremental(changes: list[tuple[str, str, str]], when: str) -> bytes:
    """An incremental export: the profiles whose qualification changed, with its time."""
    return b"".join(xdm_line(p, {a: {"status": s, "lastQualificationTime": when}}) + b"\n" for p, a, s in changes)


def apply_model(members: dict[str, set[str]], changes: list[tuple[str, str, str]]) -> None:
    for profile, audience, status in changes:
        if status == "exited":
            members.get(profile, set()).discard(audience)
        else:
            members.setdefault(profile, set()).add(audience)
    for profile in [p for p, a in members.items() if not a]:
        del members[profile]


def ledger(store: SyncStore, name: str) -> dict[str, Record]:
    return {p: Record.decode(raw) for p, raw in store.ledger_read(store.keys.watch_ledger(name)).items()}


def applied(store: SyncStore, name: str, path: str) -> Callable[[], bool]:
    def check() -> bool:
        record = ledger(store, name).get(path)
        return record is not None and record.outcome == "applied"

    return check


async def until(condition: Callable[[], object], what: str) -> Any:
    """A watcher process loading tens of thousands of profiles on a busy machine: a generous deadline."""
    return await eventually(condition, what, within=120)


def watch_args(s3: Any, prefix: str, *extra: str) -> list[str]:
    return [
        f"s3://{s3.test_bucket}/{prefix}/", "--snapshot", "*_full_*", "--deltas", "*_incremental_*",
        "--identity-namespace", "CRMID", "--poll-interval", "0.2", "--lease-ttl", "2",
        "--storage-option", f"endpoint_url={s3.test_endpoint}", *extra,
    ]  # fmt: skip


async def test_a_snapshot_then_two_deltas_each_once_through_a_sigkill_and_a_restart(
    s3: Any,
    store: SyncStore,
    watchers: Callable[..., WatchProcess],
    start_server: StartServer,
    write_rules: Callable[[str], Path],
) -> None:
    bucket, name = s3.test_bucket, f"s3://{s3.test_bucket}/aep"
    snapshot_path = f"{bucket}/aep/amazon-s3_full_20260301_010000.json.gz"
    body, members = full_export(PROFILES)
    first = watchers(*watch_args(s3, "aep", "--batch-size", "100"))
    s3.pipe(snapshot_path, body)

    def loading() -> bool:  # the snapshot's first memberships are written, not switched in
        pending = store.registry_state().pending
        return any(store.client.hexists(store.keys.membership("p0"), p.field) for p in pending)

    await until(loading, "the watcher to begin loading the snapshot")
    first.stop(signal.SIGKILL)
    assert ledger(store, name)[snapshot_path].outcome == "applying"  # killed in the middle of the file
    assert seen_by_readers(store) == {}  # nothing of it switched in
    assert store.registry_state().pending  # its generation is left pending by the killed load

    second = watchers(*watch_args(s3, "aep", "--batch-size", "100"))
    await until(applied(store, name, snapshot_path), "the restarted watcher to apply the snapshot")
    record = ledger(store, name)[snapshot_path]
    assert record.attempts == 2 and record.registry_version == store.registry_state().version
    assert store.registry_state().pending == []  # the killed load's generation was dropped
    assert seen_by_readers(store) == members

    deltas = [
        ("amazon-s3_incremental_20260301_040000.json", "2026-03-01T04:00:00Z",
         [("p0", "seg-vip", "exited"), ("p1", "seg-vip", "realized"), ("p5", "seg-new", "realized")]),
        ("amazon-s3_incremental_20260301_070000.json", "2026-03-01T07:00:00Z",
         [("p1", "seg-vip", "exited"), ("p3", "seg-new", "exited"), ("p0", "seg-vip", "realized")]),
    ]  # fmt: skip
    for file_name, when, changes in deltas:
        s3.pipe(f"{bucket}/aep/{file_name}", incremental(changes, when))
        await until(applied(store, name, f"{bucket}/aep/{file_name}"), f"{file_name} to be applied")
        apply_model(members, changes)
    assert seen_by_readers(store) == members
    state = store.registry_state()
    counted = {a: sum(a in s for s in members.values()) for a in ("seg-vip", "seg-new")}
    assert {a: e.members for a, e in state.entries.items()} == counted  # nothing counted twice
    records = ledger(store, name)
    assert {p: (r.outcome, r.attempts) for p, r in records.items()} == {
        snapshot_path: ("applied", 2),
        f"{bucket}/aep/{deltas[0][0]}": ("applied", 1),
        f"{bucket}/aep/{deltas[1][0]}": ("applied", 1),
    }
    # The restarted watcher applied each file once, in order; the killed one applied nothing.
    assert second.outcomes() == [f"s3://{p}" for p in (snapshot_path, *(f"{bucket}/aep/{d[0]}" for d in deltas))]
    assert first.outcomes() == []

    server = await start_server(write_rules(RULES))
    await registry_heard(server)
    async with decision_stub(server.port) as stub:

        async def decide(profile: str) -> list[str]:
            return offers(await stub.Decide(decide_request(profile_id=profile, placements=["banner"]), timeout=5))

        assert await decide("p0") == ["vip_offer", "new_offer"]  # exited at 04:00, realized again at 07:00
        assert await decide("p1") == ["fb"]  # realized at 04:00, exited at 07:00
        assert await decide("p3") == ["fb"]  # seg-new exited
        assert await decide("p5") == ["new_offer"]  # realized at 04:00
        assert await decide("p6") == ["vip_offer", "new_offer"]  # from the snapshot


async def test_a_delta_file_killed_midway_is_replayed_without_double_counting(
    s3: Any, store: SyncStore, watchers: Callable[..., WatchProcess]
) -> None:
    bucket, name = s3.test_bucket, f"s3://{s3.test_bucket}/aep"
    body, members = full_export(300)
    first = watchers(*watch_args(s3, "aep", "--batch-size", "50"))
    s3.pipe(f"{bucket}/aep/x_full_20260301_010000.json.gz", body)
    await until(applied(store, name, f"{bucket}/aep/x_full_20260301_010000.json.gz"), "the snapshot")
    changes = [(f"n{i}", "seg-new", "realized") for i in range(20_000)]
    delta_path = f"{bucket}/aep/x_incremental_20260301_040000.json"
    s3.pipe(delta_path, incremental(changes, "2026-03-01T04:00:00Z"))
    await until(lambda: store.client.exists(store.keys.membership("n0")), "the deltas to begin")
    first.stop(signal.SIGKILL)
    assert not store.client.exists(store.keys.membership(f"n{len(changes) - 1}"))  # killed midway
    assert ledger(store, name)[delta_path].outcome == "applying"

    second = watchers(*watch_args(s3, "aep", "--batch-size", "50"))
    await until(applied(store, name, delta_path), "the restarted watcher to apply the deltas again")
    apply_model(members, changes)
    assert seen_by_readers(store) == members
    (replayed,) = [line for line in second.lines if line["outcome"] == "applied"]
    (tally,) = replayed["result"]["audiences"]
    assert tally["added"] + tally["stale"] == len(changes)  # what the first run applied is stale, not re-added
    assert tally["stale"] > 0
    truth = sum("seg-new" in s for s in members.values())
    # The registry's count is never above the truth: at most the one batch being written when the
    # process died is missing from it (its count update comes after its write).
    assert truth - 50 <= store.registry_state().entries["seg-new"].members <= truth
    assert ledger(store, name)[delta_path].attempts == 2


async def test_two_watchers_at_once_apply_each_file_once(
    s3: Any, store: SyncStore, watchers: Callable[..., WatchProcess]
) -> None:
    bucket, name = s3.test_bucket, f"s3://{s3.test_bucket}/aep"
    both = [watchers(*watch_args(s3, "aep")), watchers(*watch_args(s3, "aep"))]
    body, members = full_export(500)
    files = [
        (f"{bucket}/aep/x_full_20260301_010000.json.gz", body, []),
        (f"{bucket}/aep/x_incremental_20260301_040000.json",
         incremental([("p1", "seg-vip", "realized")], "2026-03-01T04:00:00Z"), [("p1", "seg-vip", "realized")]),
        (f"{bucket}/aep/x_incremental_20260301_070000.json",
         incremental([("p0", "seg-new", "exited")], "2026-03-01T07:00:00Z"), [("p0", "seg-new", "exited")]),
    ]  # fmt: skip
    for path, content, changes in files:
        s3.pipe(path, content)
        await until(applied(store, name, path), f"{path} to be applied")
        apply_model(members, changes)
    assert seen_by_readers(store) == members
    reported = sorted(f for watcher in both for f in watcher.outcomes())
    assert reported == sorted(f"s3://{path}" for path, _, _ in files)  # each file applied by one watcher, once
    assert all(r.attempts == 1 for r in ledger(store, name).values())

    # The one holding the lease stops (it gives the lease up): the other takes over.
    leader, standby = both if both[0].outcomes() else both[::-1]
    assert leader.stop() == 0
    later = f"{bucket}/aep/x_incremental_20260301_100000.json"
    s3.pipe(later, incremental([("p2", "seg-new", "realized")], "2026-03-01T10:00:00Z"))
    await until(applied(store, name, later), "the other watcher to apply a later file")
    # Its line follows the ledger's record: wait for it rather than race the pipe.
    await until(lambda: f"s3://{later}" in standby.outcomes(), "the other watcher's line for the later file")
    assert standby.outcomes()[-1] == f"s3://{later}"
    assert orjson.loads(store.client.get(store.keys.watch_fence(name)) or b"0") == 2  # two leases in all
