"""The watcher poll by poll, on a local directory: complete files only, refusals recorded, late snapshots."""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import orjson
import pytest

from audience_sync.cli.main import build_parser
from audience_sync.cli.watch import ExportRunner
from audience_sync.snapshot import owner_id
from audience_sync.store import _SCRIPTS, CutoverGuard, SyncStore
from audience_sync.watch.ledger import Lease
from audience_sync.watch.plan import Export, Rules
from audience_sync.watch.service import WatchMetrics
from audience_sync.watch.storage import Storage, StoredFile
from audience_sync.watch.watcher import Ran, RunExport, Watcher
from tests.audience_sync.helpers import seen_by_readers
from tests.audience_sync.watch.conftest import Proxy

HEADER = "profile_id,audience_id\n"


@pytest.fixture
def watcher(store: SyncStore, redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Watcher]]:
    made: list[Watcher] = []

    def make(*options: str, run_export: Callable[[RunExport], RunExport] = lambda run: run) -> Watcher:
        exports = tmp_path / "exports"
        exports.mkdir(exist_ok=True)
        args = build_parser().parse_args(
            ["watch", str(exports), "--snapshot", "*_full_*", "--deltas", "*_incremental_*", "--redis-url", redis_url,
             "--json", *options]
        )  # fmt: skip
        lease = Lease(store, str(exports), owner_id() + f"-{len(made)}", ttl=30)  # each a watcher of its own
        rules = Rules(tuple(args.snapshot), tuple(args.deltas), args.ready, args.marker)
        runner = run_export(ExportRunner(args))
        work_dir = str(tmp_path / "work")
        made.append(
            Watcher(
                Storage(str(exports)),
                store,
                lease,
                rules,
                runner,
                owner=lease.owner,
                work_dir=work_dir,
                metrics=WatchMetrics(),
                json=True,
                out=io.StringIO(),
            )
        )
        return made[-1]

    yield make
    for each in made:
        each.lease.release()


def outcomes(watcher: Watcher) -> list[tuple[str, str]]:
    return [(Path(e.files[0].path).name, outcome) for e, outcome in watcher.poll().handled]


def test_a_file_being_written_is_not_read_until_it_is_complete(
    watcher: Callable[..., Watcher], store: SyncStore, tmp_path: Path
) -> None:
    watch = watcher()
    path = tmp_path / "exports" / "a_full_20260301000000.csv"
    rows = [f"p{i},vip\n" for i in range(300)]
    with path.open("w") as export:
        export.write(HEADER + "".join(rows[:100]))
        export.flush()
        for more in (rows[100:200], rows[200:]):
            assert outcomes(watch) == []  # growing since the previous poll: not complete
            export.write("".join(more))
            export.flush()
    assert outcomes(watch) == []  # the last write came after the previous poll
    assert seen_by_readers(store) == {}
    assert outcomes(watch) == [(path.name, "applied")]  # unchanged across two polls: complete
    assert seen_by_readers(store) == {f"p{i}": {"vip"} for i in range(300)}
    assert outcomes(watch) == []  # once


def test_with_a_marker_nothing_is_read_before_the_marker(
    watcher: Callable[..., Watcher], store: SyncStore, tmp_path: Path
) -> None:
    watch = watcher("--ready", "marker")
    run = tmp_path / "exports" / "run-1"
    run.mkdir(parents=True)
    (run / "a_full_20260301000000.csv").write_text(HEADER + "p1,vip\n")
    for _ in range(3):
        assert outcomes(watch) == []
    (run / "_SUCCESS").write_text("")
    assert outcomes(watch) == [("a_full_20260301000000.csv", "applied")]
    assert seen_by_readers(store) == {"p1": {"vip"}}


def test_a_refused_file_is_recorded_and_not_tried_again_until_it_changes(
    watcher: Callable[..., Watcher], store: SyncStore, tmp_path: Path
) -> None:
    watch = watcher()
    path = tmp_path / "exports" / "a_full_20260301000000.csv"
    path.write_text(HEADER + "p1,vip\n" + "".join(f"p{i}\n" for i in range(2, 10)))  # 8 bad lines of 9
    assert outcomes(watch) == []
    assert outcomes(watch) == [(path.name, "refused")]
    (record,) = watch.lease.read().values()
    assert record.outcome == "refused" and "bad line(s) of 9" in record.reason and record.attempts == 1
    emitted = [orjson.loads(line) for line in watch.out.getvalue().splitlines()]  # type: ignore[attr-defined]
    assert emitted[-1]["outcome"] == "refused" and emitted[-1]["status"] == 1
    assert emitted[-1]["result"]["command"] == "load" and emitted[-1]["result"]["refused"] == record.reason
    for _ in range(3):
        assert outcomes(watch) == []  # not retried
    assert watch.lease.read()[str(path)].attempts == 1
    assert seen_by_readers(store) == {}

    path.write_text(HEADER + "p1,vip\np2,vip\n")  # fixed: another version
    assert outcomes(watch) == []
    assert outcomes(watch) == [(path.name, "applied")]
    assert seen_by_readers(store) == {"p1": {"vip"}, "p2": {"vip"}}


def test_a_snapshot_arriving_after_a_later_one_of_its_series_is_superseded(
    watcher: Callable[..., Watcher], store: SyncStore, tmp_path: Path
) -> None:
    watch = watcher()
    exports = tmp_path / "exports"
    (exports / "a_full_20260302000000.csv").write_text(HEADER + "p2,vip\n")
    outcomes(watch)
    assert outcomes(watch) == [("a_full_20260302000000.csv", "applied")]
    (exports / "a_full_20260301000000.csv").write_text(HEADER + "p1,vip\n")  # the day before, late
    outcomes(watch)
    assert outcomes(watch) == [("a_full_20260301000000.csv", "superseded")]
    assert seen_by_readers(store) == {"p2": {"vip"}}


def test_a_truncated_gzip_export_is_refused_and_the_later_ones_go_on(
    watcher: Callable[..., Watcher], store: SyncStore, tmp_path: Path
) -> None:
    """A half-uploaded .gz (gzip raises EOFError, not OSError) is refused with its reason, not retried, and does
    not stop the watcher: before, it crashed the poll and left the ledger at ``applying``, crashing every restart."""
    watch = watcher()
    exports = tmp_path / "exports"
    whole = gzip.compress((HEADER + "".join(f"p{i},vip\n" for i in range(2000))).encode())
    half = exports / "a_full_20260301000000.csv.gz"
    half.write_bytes(whole[: len(whole) // 2])
    (exports / "a_incremental_20260302000000.csv").write_text("profile_id,audience_id,status\np1,vip,realized\n")
    assert outcomes(watch) == []
    assert outcomes(watch) == [(half.name, "refused"), ("a_incremental_20260302000000.csv", "applied")]
    record = watch.lease.read()[str(half)]
    assert record.outcome == "refused" and record.reason.startswith(f"{half}: corrupt gzip: ")
    assert seen_by_readers(store) == {"p1": {"vip"}}
    restarted = watcher()  # another watcher (a restart) once the first gave its lease up
    watch.lease.release()
    assert outcomes(restarted) == [] and outcomes(restarted) == []


def test_whatever_load_raises_on_an_export_is_recorded_and_the_watcher_goes_on(
    watcher: Callable[..., Watcher], store: SyncStore, tmp_path: Path
) -> None:
    def failing_on_the_first(run: RunExport) -> RunExport:
        def runner(export: Export, paths: Sequence[str], guard: CutoverGuard | None) -> Ran:
            if "20260301" in export.name:
                raise RuntimeError("a defect of load on this file")
            return run(export, paths, guard)

        return runner

    watch = watcher(run_export=failing_on_the_first)
    exports = tmp_path / "exports"
    (exports / "a_full_20260301000000.csv").write_text(HEADER + "p1,vip\n")
    (exports / "a_incremental_20260302000000.csv").write_text("profile_id,audience_id,status\np2,vip,realized\n")
    assert outcomes(watch) == []
    assert outcomes(watch) == [
        ("a_full_20260301000000.csv", "refused"),
        ("a_incremental_20260302000000.csv", "applied"),
    ]
    record = watch.lease.read()[str(exports / "a_full_20260301000000.csv")]
    assert (record.outcome, record.reason) == ("refused", "RuntimeError: a defect of load on this file")
    assert seen_by_readers(store) == {"p2": {"vip"}}


def test_a_cutover_whose_reply_is_lost_is_not_applied_again(
    watcher: Callable[..., Watcher], store: SyncStore, tmp_path: Path, redis_url: str,
    proxies: Callable[[str, bytes, str], Proxy],
) -> None:  # fmt: skip
    """CUTOVER switches the snapshot in and records it ``applied`` in the ledger; load then hears nothing (its
    connection cut after Redis replied). The watcher's ``failed`` record must not replace ``applied``: before,
    it did, and the next poll (or a restart) loaded the snapshot a second time."""
    proxy = proxies(redis_url, _SCRIPTS["CUTOVER"].sha.encode(), "cut")
    watch = watcher("--redis-url", f"redis://127.0.0.1:{proxy.port}/0")  # load's connection only
    path = tmp_path / "exports" / "a_full_20260301000000.csv"
    path.write_text(HEADER + "p1,vip\np2,vip\n")
    assert outcomes(watch) == []
    assert outcomes(watch) == [(path.name, "applied")]  # what its cutover recorded
    assert proxy.done.is_set()  # the reply was swallowed
    (record,) = watch.lease.read().values()
    assert (record.outcome, record.registry_version) == ("applied", 1)
    assert seen_by_readers(store) == {"p1": {"vip"}, "p2": {"vip"}}
    version = store.registry_state().version
    assert outcomes(watch) == []
    restarted = watcher()
    watch.lease.release()
    assert outcomes(restarted) == [] and outcomes(restarted) == []
    assert store.registry_state().version == version  # loaded once
    assert restarted.lease.read()[str(path)].outcome == "applied"


def test_a_stop_asked_while_listing_is_seen_before_the_first_fetch(
    watcher: Callable[..., Watcher], store: SyncStore, tmp_path: Path
) -> None:
    watch = watcher()
    path = tmp_path / "exports" / "a_full_20260301000000.csv"
    path.write_text(HEADER + "p1,vip\n")
    assert outcomes(watch) == []
    stop = [False]
    watch.stopping = lambda: stop[0]
    listed = watch.storage.list

    def listing_then_sigterm() -> list[StoredFile]:
        found = listed()
        stop[0] = True  # SIGTERM while the storage was being listed
        return found

    watch.storage.list = listing_then_sigterm  # type: ignore[method-assign]
    assert outcomes(watch) == []  # nothing applied: stopped before its first fetch
    assert seen_by_readers(store) == {}


def test_the_records_of_files_gone_from_the_storage_are_dropped_but_the_latest_snapshot_of_a_series(
    watcher: Callable[..., Watcher], store: SyncStore, tmp_path: Path
) -> None:
    watch = watcher()
    exports = tmp_path / "exports"
    first, second = exports / "a_full_20260301000000.csv", exports / "a_full_20260302000000.csv"
    delta = exports / "a_incremental_20260303000000.csv"
    first.write_text(HEADER + "p1,vip\n")
    second.write_text(HEADER + "p2,vip\n")
    delta.write_text("profile_id,audience_id,status\np3,vip,realized\n")
    outcomes(watch)
    assert [o for _, o in outcomes(watch)] == ["applied", "applied", "applied"]
    assert set(watch.lease.read()) == {str(first), str(second), str(delta)}
    for gone in (first, second, delta):
        gone.unlink()  # the bucket's lifecycle rule removed them
    assert outcomes(watch) == []
    assert set(watch.lease.read()) == {str(second)}  # the latest snapshot of its series stays
    first.write_text(HEADER + "p1,vip\n")  # the older snapshot arrives again: still too old
    outcomes(watch)
    assert outcomes(watch) == [(first.name, "superseded")]
    assert seen_by_readers(store) == {"p2": {"vip"}, "p3": {"vip"}}
