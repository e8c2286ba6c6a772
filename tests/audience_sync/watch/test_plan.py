"""Which exports are due, in which order: complete files, the parts of one export together, late snapshots."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from audience_sync.watch.plan import DELTAS, MARKER, SNAPSHOT, Rules, make_plan
from audience_sync.watch.record import Record
from audience_sync.watch.storage import StoredFile

RULES = Rules(snapshot=("*_full_*",), deltas=("*_incremental_*",))


def stored(relative: str, size: int = 10, etag: str = "e1", mtime: float = 0.0) -> StoredFile:
    return StoredFile(f"bucket/{relative}", relative, f"s3://bucket/{relative}", size, etag, mtime)


def stable(listing: Sequence[StoredFile]) -> dict[str, str]:
    return {f.path: f.version for f in listing}


def applied(file: StoredFile, kind: str, time: float, series: str) -> Record:
    return Record(version=file.version, kind=kind, outcome="applied", export_time=time, series=series)


def test_a_file_is_due_once_unchanged_since_the_previous_poll() -> None:
    growing = stored("a_full_20260301000000.csv", size=10)
    assert make_plan([growing], {}, {}, RULES).due == []  # first seen
    grown = stored("a_full_20260301000000.csv", size=20)
    assert make_plan([grown], stable([growing]), {}, RULES).due == []  # still being written
    (export,) = make_plan([grown], stable([grown]), {}, RULES).due
    assert export.kind == SNAPSHOT and export.files == (grown,)


def test_with_a_marker_a_folder_is_due_when_its_marker_is_there() -> None:
    rules = Rules(snapshot=("run/*",), ready=MARKER)
    data = stored("run/part-0.csv")
    assert make_plan([data], stable([data]), {}, rules).due == []
    (export,) = make_plan([data, stored("run/_SUCCESS", size=0)], {}, {}, rules).due
    assert export.files == (data,)  # the marker is no data


def test_exports_in_time_order_a_snapshot_first_and_a_late_one_holds_back_the_later() -> None:
    snapshot = stored("a_full_20260301000000.csv")
    early = stored("a_incremental_20260301030000.json")
    later = stored("a_incremental_20260301060000.json")
    listing = [later, early, snapshot]
    plan = make_plan(listing, stable(listing), {}, RULES)
    assert [e.files[0] for e in plan.due] == [snapshot, early, later]
    assert [e.kind for e in plan.due] == [SNAPSHOT, DELTAS, DELTAS]
    plan = make_plan(listing, stable([snapshot, later]), {}, RULES)  # `early` is still being written
    assert [e.files[0] for e in plan.due] == [snapshot]
    assert [e.files[0] for e in plan.waiting] == [early, later]


def test_the_parts_of_a_split_export_are_one_snapshot() -> None:
    parts = [stored(f"a_full_20260301000000{s}.csv") for s in ("_2", "", "_3")]
    (export,) = make_plan(parts, stable(parts), {}, RULES).due
    assert [f.relative for f in export.files] == [
        "a_full_20260301000000.csv", "a_full_20260301000000_2.csv", "a_full_20260301000000_3.csv",
    ]  # fmt: skip


def test_done_files_are_skipped_until_they_change() -> None:
    refused = stored("a_full_20260301000000.csv")
    record = Record(version=refused.version, kind=SNAPSHOT, outcome="refused", export_time=0, series="", reason="x")
    plan = make_plan([refused], stable([refused]), {refused.path: record}, RULES)
    assert plan.due == [] and plan.done == 1
    rewritten = stored("a_full_20260301000000.csv", etag="e2")
    assert make_plan([rewritten], stable([rewritten]), {refused.path: record}, RULES).due[0].files == (rewritten,)
    abandoned = Record(version=refused.version, kind=SNAPSHOT, outcome="applying", export_time=0, series="")
    assert make_plan([refused], stable([refused]), {refused.path: abandoned}, RULES).due[0].files == (refused,)


def test_a_snapshot_older_than_one_applied_of_its_series_is_superseded() -> None:
    newer = stored("a_full_20260302000000.csv")
    older = stored("a_full_20260301000000.csv")
    other = stored("b_full_20260301000000.csv")
    ledger = {newer.path: applied(newer, SNAPSHOT, 1772409600.0, "a_full_*.csv")}
    listing = [newer, older, other]
    plan = make_plan(listing, stable(listing), ledger, RULES)
    assert [e.files for e in plan.superseded] == [(older,)]
    assert [e.files for e in plan.due] == [(other,)]  # another series (audience) is not


@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["a", "b"]), st.booleans()), max_size=12, unique=True))
def test_due_exports_are_in_time_order_and_stop_at_the_first_incomplete(files: list[tuple[int, str, bool]]) -> None:
    listing = [stored(f"{series}_incremental_2026030{day + 1}000000.json") for day, series, _ in files]
    complete = [f for f, (_, _, done) in zip(listing, files, strict=True) if done]
    plan = make_plan(listing, stable(complete), {}, RULES)
    keys = [e.key for e in plan.due + plan.waiting]
    assert keys == sorted(keys)  # everything in order, due first
    assert all(all(f in complete for f in e.files) for e in plan.due)
    if plan.waiting:
        assert not all(f in complete for f in plan.waiting[0].files)
