"""Snapshots against a real Redis: exact replacement, expiry, the bad-line threshold, dry runs, conflicts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from audience_sync.formats import InputOptions
from audience_sync.gc import collect
from audience_sync.report import ErrorReport
from audience_sync.snapshot import LoadOptions, LoadOutcome, SnapshotLoad, SnapshotRefused
from audience_sync.store import CutoverItem, SyncStore
from inbound_common.codecs import identity_namespaces
from tests.audience_sync.helpers import dump, seen_by_readers, write_lines, xdm_line


def load(store: SyncStore, paths: list[Path], **options: Any) -> LoadOutcome:
    input_options = options.pop("input", InputOptions())
    return SnapshotLoad(store, LoadOptions(input=input_options, **options), ErrorReport(show=0)).run(
        [str(p) for p in paths]
    )


def one_audience(store: SyncStore, tmp_path: Path, audience: str, profiles: list[str], **options: Any) -> LoadOutcome:
    path = write_lines(tmp_path / f"{audience}.csv", ["profile_id", *profiles])
    return load(store, [path], input=InputOptions(audience=audience), audiences=frozenset([audience]), **options)


def test_a_snapshot_replaces_the_audience_exactly(store: SyncStore, tmp_path: Path) -> None:
    first = one_audience(store, tmp_path, "vip", ["p1", "p2", "p3"])
    assert first.version > 0
    assert seen_by_readers(store) == {"p1": {"vip"}, "p2": {"vip"}, "p3": {"vip"}}
    second = one_audience(store, tmp_path, "vip", ["p3", "p4", "p4"])
    assert seen_by_readers(store) == {"p3": {"vip"}, "p4": {"vip"}}
    tally = second.audiences["vip"]
    assert (tally.members, tally.added, tally.removed, tally.unchanged) == (2, 1, 2, 1)
    entry = store.registry_state().entries["vip"]
    assert (entry.generation, entry.members, entry.source) == (2, 2, "")
    assert store.registry_state().pending == []


def test_a_multi_audience_export_switches_all_its_audiences(store: SyncStore, tmp_path: Path) -> None:
    export = write_lines(
        tmp_path / "export.json",
        [
            xdm_line("c-1", {"a": "realized", "b": "existing"}),
            xdm_line("c-2", {"a": "exited", "b": "realized"}),
        ],
    )
    outcome = load(store, [export], input=InputOptions(identity_namespaces=("CRMID",)))
    assert seen_by_readers(store) == {"c-1": {"a", "b"}, "c-2": {"b"}}
    assert outcome.audiences["a"].exited == 1
    # Other audiences of the registry are not touched by a snapshot that does not name them.
    one_audience(store, tmp_path, "other", ["c-9"])
    export2 = write_lines(tmp_path / "export2.json", [xdm_line("c-2", {"a": "realized", "b": "exited"})])
    load(store, [export2], input=InputOptions(identity_namespaces=("CRMID",)), allow_empty=True)
    assert seen_by_readers(store) == {"c-2": {"a"}, "c-9": {"other"}}


def test_only_the_named_audiences_are_loaded(store: SyncStore, tmp_path: Path) -> None:
    rows = write_lines(tmp_path / "rows.csv", ["profile_id,audience_id", "p1,a", "p1,b", "p2,b"])
    outcome = load(store, [rows], audiences=frozenset(["b", "c"]), allow_empty=True)
    assert outcome.skipped == 1
    assert seen_by_readers(store) == {"p1": {"b"}, "p2": {"b"}}
    assert set(store.registry_state().entries) == {"b", "c"}  # c is replaced by nothing: now empty


def test_expiry_counts_until_valid_until_without_any_job(store: SyncStore, tmp_path: Path) -> None:
    now = time.time()
    soon, past = int(now) + 3600, int(now) - 10
    export = write_lines(
        tmp_path / "export.json",
        [
            xdm_line("c-1", {"a": {"status": "realized", "validUntil": soon}}),
            xdm_line("c-2", {"a": {"status": "realized", "validUntil": past}}),
        ],
    )
    outcome = load(store, [export], input=InputOptions(identity_namespaces=("CRMID",)))
    assert outcome.audiences["a"].expired == 1
    assert seen_by_readers(store, now) == {"c-1": {"a"}}
    assert seen_by_readers(store, soon + 1) == {}  # no job ran: the reader's clock decides
    assert store.read_membership("c-1") == {b"1:1": str(soon).encode()}


def test_bad_lines_over_the_threshold_change_nothing(store: SyncStore, tmp_path: Path) -> None:
    one_audience(store, tmp_path, "vip", ["p1", "p2"])
    before = seen_by_readers(store)
    lines = ["profile_id", *[f"q{i}" for i in range(97)], "", "bad\x01id", "x,y"]
    path = write_lines(tmp_path / "new.csv", lines)
    with pytest.raises(SnapshotRefused, match=r"2 bad line\(s\) of 99 \(2.02%\) exceed the threshold \(1.00%\)"):
        load(store, [path], input=InputOptions(audience="vip"), audiences=frozenset(["vip"]))
    assert seen_by_readers(store) == before
    assert store.registry_state().pending == []  # released: its fields are garbage now
    collect(store, grace=0)
    assert {k: v for k, v in dump(store).items() if b":m:" in k} == {
        b"ib:m:{p1}": {b"1:1": b""},
        b"ib:m:{p2}": {b"1:1": b""},
    }
    # Under the threshold the same kind of input is applied, bad lines skipped.
    outcome = load(store, [path], input=InputOptions(audience="vip"), audiences=frozenset(["vip"]), max_bad_ratio=0.05)
    assert outcome.audiences["vip"].members == 97


def test_a_snapshot_emptying_an_audience_needs_allow_empty(store: SyncStore, tmp_path: Path) -> None:
    one_audience(store, tmp_path, "vip", ["p1"])
    with pytest.raises(SnapshotRefused, match="without members"):
        one_audience(store, tmp_path, "vip", [])
    assert seen_by_readers(store) == {"p1": {"vip"}}
    one_audience(store, tmp_path, "vip", [], allow_empty=True)
    assert seen_by_readers(store) == {}


def test_dry_run_writes_nothing_and_predicts_the_outcome(store: SyncStore, tmp_path: Path) -> None:
    one_audience(store, tmp_path, "vip", ["p1", "p2", "p3"])
    before = dump(store)
    predicted = one_audience(store, tmp_path, "vip", ["p3", "p4"], dry_run=True)
    assert dump(store) == before
    applied = one_audience(store, tmp_path, "vip", ["p3", "p4"])
    for name in ("members", "added", "removed", "unchanged"):
        assert getattr(predicted.audiences["vip"], name) == getattr(applied.audiences["vip"], name), name


def test_a_second_snapshot_of_a_loading_audience_is_refused(store: SyncStore, tmp_path: Path) -> None:
    begun = store.begin_snapshot("vip", now=time.time(), stale_after=300, source="x", owner="elsewhere:1")
    with pytest.raises(SnapshotRefused, match="already loading") as refused:
        one_audience(store, tmp_path, "vip", ["p1"])
    assert refused.value.conflict
    # A dead loader of this host (its pid is gone) is taken over without --force.
    store.abandon([f"{begun.code}:{begun.generation}"])
    store.begin_snapshot("vip", now=time.time(), stale_after=300, source="x", owner=f"{_hostname()}:999999999")
    one_audience(store, tmp_path, "vip", ["p1"])
    assert seen_by_readers(store) == {"p1": {"vip"}}


def test_an_older_snapshot_never_replaces_a_newer_one(store: SyncStore, tmp_path: Path) -> None:
    """Two loads of one audience overlap (the second with --force): the one that began last wins."""
    one_audience(store, tmp_path, "vip", ["first"])
    slow = store.begin_snapshot("vip", now=time.time(), stale_after=300, source="slow", owner="elsewhere:1")
    store.client.hset(store.keys.membership("slow"), f"{slow.code}:{slow.generation}", "")
    one_audience(store, tmp_path, "vip", ["fast"], force=True)
    late = store.cutover([CutoverItem("vip", slow.code, slow.generation, 1, "slow")], now=time.time(), extra={})
    assert (late.refused, late.audience_id) == ("superseded", "vip")
    assert seen_by_readers(store) == {"fast": {"vip"}}


def _hostname() -> str:
    import socket

    return socket.gethostname()


def test_a_retired_generation_is_dropped_while_the_next_is_written(store: SyncStore, tmp_path: Path) -> None:
    one_audience(store, tmp_path, "vip", ["p1", "p2"])  # generation 1
    one_audience(store, tmp_path, "vip", ["p1", "p2"])  # generation 2: 1 is kept a while for slow readers
    assert store.read_membership("p1") == {b"1:1": b"", b"1:2": b""}
    path = write_lines(tmp_path / "later.csv", ["profile_id", "p1"])
    options = LoadOptions(input=InputOptions(audience="vip"), audiences=frozenset(["vip"]))
    later = time.time() + 120  # past the grace period: generation 1 is retired
    SnapshotLoad(store, options, ErrorReport(show=0), clock=lambda: later).run([str(path)])
    assert store.read_membership("p1") == {b"1:2": b"", b"1:3": b""}
    assert store.read_membership("p2") == {b"1:1": b"", b"1:2": b""}  # not in the file: left to gc


def test_several_identity_namespaces_write_one_hash_per_identity_in_one_generation(
    store: SyncStore, tmp_path: Path
) -> None:
    export = write_lines(
        tmp_path / "export.json",
        [xdm_line("c-1", {"a": "realized", "b": "realized"}), xdm_line("c-2", {"a": "exited", "b": "realized"})],
    )
    both = InputOptions(identity_namespaces=("ECID", "CRMID"))
    outcome = load(store, [export], input=both)
    seen = {"c-1": {"a", "b"}, "ecid-c-1": {"a", "b"}, "c-2": {"b"}, "ecid-c-2": {"b"}}
    assert seen_by_readers(store) == seen
    assert outcome.audiences["a"].members == 2  # memberships written: one per identity
    assert store.read_membership("c-1") == store.read_membership("ecid-c-1") == {b"1:1": b"", b"2:1": b""}
    # The next snapshot replaces the audience under every identity at once.
    export2 = write_lines(tmp_path / "export2.json", [xdm_line("c-2", {"a": "realized", "b": "exited"})])
    load(store, [export2], input=both, allow_empty=True)
    assert seen_by_readers(store) == {"c-2": {"a"}, "ecid-c-2": {"a"}}
    # The registry says under which identities (decision profile and the console show it) ...
    assert identity_namespaces(store.registry_state().entries["a"]) == ("ECID", "CRMID")
    # ... and a later load under the primary identity alone says so too.
    load(store, [export2], input=InputOptions(), allow_empty=True)
    assert identity_namespaces(store.registry_state().entries["a"]) == ()
