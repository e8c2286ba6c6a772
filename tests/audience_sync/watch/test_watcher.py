"""The watcher poll by poll, on a local directory: complete files only, refusals recorded, late snapshots."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from audience_sync.cli.main import build_parser
from audience_sync.cli.watch import ExportRunner
from audience_sync.snapshot import owner_id
from audience_sync.store import SyncStore
from audience_sync.watch.ledger import Lease
from audience_sync.watch.plan import Rules
from audience_sync.watch.service import WatchMetrics
from audience_sync.watch.storage import Storage
from audience_sync.watch.watcher import Watcher
from tests.audience_sync.helpers import seen_by_readers

HEADER = "profile_id,audience_id\n"


@pytest.fixture
def watcher(store: SyncStore, redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Watcher]]:
    made: list[Watcher] = []

    def make(*options: str) -> Watcher:
        exports = tmp_path / "exports"
        exports.mkdir(exist_ok=True)
        args = build_parser().parse_args(
            ["watch", str(exports), "--snapshot", "*_full_*", "--deltas", "*_incremental_*", "--redis-url", redis_url,
             "--json", *options]
        )  # fmt: skip
        lease = Lease(store, str(exports), owner_id(), ttl=30)
        rules = Rules(tuple(args.snapshot), tuple(args.deltas), args.ready, args.marker)
        runner = ExportRunner(args)
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
