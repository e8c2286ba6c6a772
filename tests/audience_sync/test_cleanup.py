"""A snapshot load that is not applied removes what it wrote: its generations' fields and pending records,
and gives back the generation and code it took: Redis is as it was, byte for byte (``DUMP`` of every key).

Against a real Redis: every key is SCANned afterwards. A load killed by SIGKILL cannot clean up;
``status`` and ``gc`` then say what gc removes, and gc removes exactly that.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_sync.cleanup import Cleanup, clean_up
from audience_sync.deltas import DeltaApplier
from audience_sync.formats import InputOptions
from audience_sync.records import Change
from audience_sync.report import ErrorReport
from audience_sync.snapshot import LoadOptions, SnapshotLoad, SnapshotRefused
from audience_sync.store import StoreFailure, SyncStore
from tests.audience_sync.helpers import cli, dumped, seen_by_readers, spawn, write_lines
from tests.waiting import eventually_sync


def membership_fields(store: SyncStore) -> dict[str, set[str]]:
    """Every profile hash (by SCAN) and its field names."""
    out = {}
    for key in store.scan_membership_keys(count=1000):
        if store.client.type(key) == b"hash":
            out[key.decode()] = {f.decode() for f in store.client.hkeys(key)}
    return out


def csv(tmp_path: Path, name: str, profiles: list[str], tail: list[str] | None = None) -> Path:
    return write_lines(tmp_path / name, ["profile_id", *profiles, *(tail or [])])


def start(store: SyncStore, audience: str, *, track_limit: int | None = None, **options: Any) -> SnapshotLoad:
    load = SnapshotLoad(
        store,
        LoadOptions(input=InputOptions(audience=audience), audiences=frozenset([audience]), batch_size=10, **options),
        ErrorReport(show=0),
    )
    if track_limit is not None:
        load.track_limit = track_limit
    return load


def load_from_a_pipe(
    store: SyncStore, redis_url: str, profiles: list[str], *, until: tuple[str, str]
) -> subprocess.Popen[bytes]:
    """``audience-sync load -`` of audience vip fed ``profiles``, its stdin left open; returns once the
    field ``until[1]`` of profile ``until[0]`` is written (the process then waits for more input)."""
    process = spawn("load", "-", "--format", "csv", "--audience", "vip", "--batch-size", "10",
                    stdin=subprocess.PIPE, redis_url=redis_url)  # fmt: skip
    assert process.stdin is not None
    process.stdin.write(("profile_id\n" + "".join(p + "\n" for p in profiles)).encode())
    process.stdin.flush()
    eventually_sync(lambda: store.client.hexists(store.keys.membership(until[0]), until[1]), "the load wrote")
    return process


@pytest.mark.parametrize("track_limit", [None, 0], ids=["profiles-remembered", "found-by-scan"])
def test_a_load_refused_for_bad_lines_leaves_no_field_and_no_pending_entry(
    store: SyncStore, tmp_path: Path, track_limit: int | None
) -> None:
    start(store, "vip").run([str(csv(tmp_path, "old.csv", ["p1", "p2"]))])
    before, every_key = membership_fields(store), dumped(store)
    # 60 good rows are written (batches of 10) before the bad tail is read and the ratio refused.
    path = csv(tmp_path, "new.csv", [f"q{i}" for i in range(60)], tail=["bad\x01id"] * 5)
    load = start(store, "vip", track_limit=track_limit)
    with pytest.raises(SnapshotRefused, match="exceed the threshold"):
        load.run([str(path)])
    assert load.written == 60  # it did write: there was something to clean
    assert membership_fields(store) == before
    assert store.registry_state().pending == []
    assert seen_by_readers(store) == {"p1": {"vip"}, "p2": {"vip"}}
    cleanup = load.cleanup
    assert cleanup is not None
    assert (cleanup.fields_removed, cleanup.pending_removed, cleanup.left_to_gc) == (60, ["1:2"], [])
    assert cleanup.scanned == (track_limit == 0)
    assert cleanup.new_codes == {}  # vip had its code already
    assert cleanup.given_back == ["1:2"]  # generation 2 will be the next load's again
    assert dumped(store) == every_key


def test_a_new_audience_refused_as_empty_gives_its_code_back(store: SyncStore, tmp_path: Path) -> None:
    export = write_lines(tmp_path / "x.csv", ["profile_id,audience_id", *[f"p{i},a" for i in range(30)]])
    load = SnapshotLoad(
        store,
        LoadOptions(audiences=frozenset(["a", "b"]), batch_size=10),  # b: named, no member in the input
        ErrorReport(show=0),
    )
    with pytest.raises(SnapshotRefused, match="leaves b without members"):
        load.run([str(export)])
    assert dumped(store) == {}  # Redis was empty: it is again
    assert load.cleanup is not None
    assert load.cleanup.describe(300) == (
        "removed the 30 membership field(s) it had written and the pending registration of generation(s) "
        "1:1 (a), 2:1 (b); gave back the generation number(s) and code(s) it took: the registry is as it was"
    )
    # A later load of the same audiences gets the same codes: nothing ever used them.
    outcome = SnapshotLoad(store, LoadOptions(batch_size=10), ErrorReport(show=0)).run([str(export)])
    assert outcome.audiences["a"].code == 1


def test_a_generation_deltas_wrote_to_is_not_given_back(store: SyncStore, tmp_path: Path) -> None:
    """A delta applied while a snapshot loads writes to its generation too, in profiles the load never wrote:
    that generation is never reused (gc removes those fields), and a delta after the load ended skips it."""
    start(store, "vip").run([str(csv(tmp_path, "old.csv", ["p1"]))])
    stale_state = store.registry_state()  # read before the next load begins
    begun = store.begin_snapshot("vip", now=time.time(), stale_after=300, source="t", owner="h:1")
    field = f"{begun.code}:{begun.generation}"
    DeltaApplier(store, source="deltas").apply([Change("p9", "vip", True, None, None, 1)])
    assert store.client.hkeys(store.keys.membership("p9")) == [b"1:1", field.encode()]  # both generations
    cleanup = clean_up(store, Cleanup({field: "vip"}, begun={field: begun}), set(), heartbeat=lambda _: None)
    assert (cleanup.pending_removed, cleanup.given_back) == ([field], [])
    assert store.registry_state().last_generation["vip"] == 2  # burnt: p9's field 1:2 is left to gc
    assert "generation(s) 1:2 (vip) are not reused (deltas wrote to them" in cleanup.describe(300)
    # A delta that read the registry while the load was pending does not write to its generation once it ended.
    late = DeltaApplier(store, source="deltas")
    assert late._targets(stale_state, ["vip"], time.time()) == {"vip": ("1", ["1:1"])}
    begun = store.begin_snapshot("vip", now=time.time(), stale_after=300, source="t", owner="h:1")
    pending = store.registry_state()
    field = f"{begun.code}:{begun.generation}"
    assert late._targets(pending, ["vip"], time.time()) == {"vip": ("1", ["1:1", field])}
    store.abandon([field])
    assert late._targets(pending, ["vip"], time.time()) == {"vip": ("1", ["1:1"])}  # the record is gone


def test_a_load_failing_on_a_redis_error_removes_what_it_wrote(
    store: SyncStore, tmp_path: Path, capsys: Any, redis_url: str
) -> None:
    store.client.set(store.keys.membership("p25"), "not a hash")  # HSET fails there: WRONGTYPE
    path = csv(tmp_path, "vip.csv", [f"p{i}" for i in range(40)])
    load = start(store, "vip")
    with pytest.raises(StoreFailure, match="WRONGTYPE"):
        load.run([str(path)])
    assert membership_fields(store) == {}
    assert store.registry_state().pending == []
    # p0..p29 but p25; on a single Redis the next pipeline (p30..p39) was sent before the failing one's replies
    # were read (one pipeline in flight), and is removed too
    written = 29 if store.cluster else 39
    assert load.cleanup is not None and load.cleanup.fields_removed == written
    assert load.cleanup.new_codes == {"vip": 1} and load.cleanup.codes_given_back == ["vip"]
    status, out, err = cli(capsys, "load", str(path), "--audience", "vip", "--batch-size", "10", "--json",
                           "--redis-url", redis_url)  # fmt: skip
    assert status == 5
    body = json.loads(out)
    assert body["failed"].startswith("ResponseError: WRONGTYPE") and not body["ok"]
    assert body["cleaned"]["fields_removed"] == written and body["cleaned"]["pending_removed"] == ["1:1"]
    assert f"not applied; removed the {written} membership field(s)" in err and "Redis error: WRONGTYPE" in err
    assert membership_fields(store) == {}


def test_an_interrupted_load_removes_what_it_wrote(store: SyncStore, redis_url: str) -> None:
    process = load_from_a_pipe(store, redis_url, [f"p{i}" for i in range(35)], until=("p29", "1:1"))
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    # The 35 lines came in one write to the pipe: all were written (a pipe's lines are read as they come).
    assert b"not applied; removed the 35 membership field(s)" in err
    assert membership_fields(store) == {}
    assert store.registry_state().pending == []


def test_a_killed_load_is_reported_by_status_and_removed_by_gc(
    store: SyncStore, tmp_path: Path, capsys: Any, redis_url: str
) -> None:
    url = ["--redis-url", redis_url]
    assert cli(capsys, "load", str(csv(tmp_path, "old.csv", ["p1"])), "--audience", "vip", *url)[0] == 0
    process = load_from_a_pipe(store, redis_url, [f"q{i}" for i in range(25)], until=("q24", "1:2"))
    process.kill()
    process.communicate(timeout=20)
    status, out, _ = cli(capsys, "status", "--stale-after", "0", *url)
    assert "dead (" in out and "): gc removes 1:2 fields and the record" in out
    status, out, _ = cli(capsys, "status", "--json", "--stale-after", "0", *url)
    (loading,) = json.loads(out)["audiences"][0]["loading"]
    assert (loading["field"], loading["alive"]) == ("1:2", False)
    assert loading["gc_removes"].startswith("every membership field 1:2")
    status, out, _ = cli(capsys, "gc", "--dry-run", "--stale-after", "0", "--grace", "0", *url)
    assert "would delete 25 stale fields in 25 of them; would drop 1 dead snapshot record(s): 1:2 (vip, by " in out
    status, out, _ = cli(capsys, "gc", "--stale-after", "0", "--grace", "0", *url)
    assert status == 0
    assert "deleted 25 stale fields" in out and "dropped 1 dead snapshot record(s): 1:2 (vip" in out
    assert membership_fields(store) == {store.keys.membership("p1"): {"1:1"}}
    assert store.registry_state().pending == []


def test_a_generation_no_longer_pending_is_left_alone(store: SyncStore) -> None:
    """A cutover whose reply was lost looks like a failure: its (now active) fields must survive."""
    begun = store.begin_snapshot("vip", now=time.time(), stale_after=300, source="t", owner="h:1")
    field = f"{begun.code}:{begun.generation}"
    store.client.hset(store.keys.membership("p1"), field, "")
    store.abandon([field])  # as the cutover does
    cleanup = clean_up(store, Cleanup(generations={field: "vip"}), {"p1"}, heartbeat=lambda _: None)
    assert (cleanup.not_found, cleanup.fields_removed) == ([field], 0)
    assert membership_fields(store) == {store.keys.membership("p1"): {field}}
    assert "left 1:1 (vip) alone: no longer pending" in cleanup.describe(300)


def test_when_redis_is_gone_the_message_says_gc_will_remove_it(store: SyncStore, redis_url: str) -> None:
    begun = store.begin_snapshot("vip", now=time.time(), stale_after=300, source="t", owner="h:1")
    field = f"{begun.code}:{begun.generation}"
    unreachable = SyncStore.from_url("redis://127.0.0.1:1/0")
    cleanup = clean_up(unreachable, Cleanup(generations={field: "vip"}), {"p1"}, heartbeat=lambda _: None)
    unreachable.close()
    assert cleanup.left_to_gc == [field] and cleanup.error.startswith("ConnectionError")
    assert "could not remove 1:1 (vip) (ConnectionError" in cleanup.describe(300)
    assert "`audience-sync gc` deletes their fields and records once their heartbeat is 300s old" in (
        cleanup.describe(300)
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    old=st.sets(st.sampled_from([f"p{i}" for i in range(40)]), min_size=1),
    new=st.lists(st.tuples(st.sampled_from([f"p{i}" for i in range(60)]), st.sampled_from(["vip", "new"]))),
    track_limit=st.sampled_from([0, 10, 1000]),
)
def test_a_refused_load_leaves_redis_as_it_found_it(
    store: SyncStore, tmp_path: Path, old: set[str], new: list[tuple[str, str]], track_limit: int
) -> None:
    """Whatever it wrote, in however many batches, to a new audience or one with a code: Redis is as before,
    byte for byte."""
    store.client.flushall()
    start(store, "vip").run([str(csv(tmp_path, "old.csv", sorted(old)))])
    before = dumped(store)
    rows = ["profile_id,audience_id", *(f"{p},{a}" for p, a in new), *["bad\x01,vip"] * (len(new) // 50 + 1)]
    load = SnapshotLoad(store, LoadOptions(batch_size=7), ErrorReport(show=0))
    load.track_limit = track_limit
    with pytest.raises(SnapshotRefused):
        load.run([str(write_lines(tmp_path / "new.csv", rows))])
    assert dumped(store) == before


def parquet_export(path: Path) -> Path:
    table = pa.table({"profile_id": ["p1", "p2"], "audience_id": ["vip", "new"]})
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(
    "case", ["no id column", "corrupt parquet", "bad lines", "bad line after a batch", "dry run", "dry run parquet"]
)
def test_a_refused_or_dry_run_load_changes_nothing_in_redis(
    store: SyncStore, tmp_path: Path, capsys: Any, redis_url: str, case: str
) -> None:
    """``DUMP`` of every key, registry included (generations, next code, version, pending), before and after."""
    url = ["--redis-url", redis_url]
    assert cli(capsys, "load", str(csv(tmp_path, "old.csv", ["p1", "p2"])), "--audience", "vip", *url)[0] == 0
    assert cli(capsys, "apply", str(csv(tmp_path, "delta.csv", ["p3"])), "--audience", "other", *url)[0] == 0
    before = dumped(store)
    if case == "no id column":  # the header names no profile id: line 1 is bad, the file refused
        args, expected = [str(write_lines(tmp_path / "x.csv", ["email", "a@x.org"])), "--audience", "x"], 1
    elif case == "corrupt parquet":
        good = parquet_export(tmp_path / "good.parquet").read_bytes()
        corrupt = tmp_path / "corrupt.parquet"
        corrupt.write_bytes(good[:4] + b"\0" * (len(good) - 8) + good[-4:])
        args, expected = [str(corrupt), "--audience", "x"], 1  # input that cannot be read: refused
    elif case == "bad lines":
        args, expected = [str(csv(tmp_path, "x.csv", ["q1"], tail=["bad\x01"])), "--audience", "vip"], 1
    elif case == "bad line after a batch":  # written in batches of 10 to vip and new audiences, then refused
        rows = ["profile_id,audience_id", *(f"q{i},{a}" for i in range(30) for a in ("vip", "x", "y")), "q,bad\x01"]
        args, expected = [str(write_lines(tmp_path / "x.csv", rows)), "--batch-size", "10", "--max-bad-ratio", "0"], 1
    elif case == "dry run":
        rows = ["profile_id,audience_id", "p1,vip", "q1,x"]
        args, expected = [str(write_lines(tmp_path / "x.csv", rows)), "--dry-run"], 0
    else:
        args, expected = [str(parquet_export(tmp_path / "x.parquet")), "--dry-run"], 0
    status, _, err = cli(capsys, "load", *args, *url)
    assert status == expected, err
    assert dumped(store) == before
