"""Fetching from an object store (a real S3 API server): the copy's time, keys that lead outside the copy's place."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from audience_sync.cli.main import build_parser
from audience_sync.cli.watch import ExportRunner
from audience_sync.snapshot import owner_id
from audience_sync.store import SyncStore
from audience_sync.watch.ledger import Lease
from audience_sync.watch.plan import Rules
from audience_sync.watch.service import WatchMetrics
from audience_sync.watch.storage import Storage, UnsafePath
from audience_sync.watch.watcher import Watcher
from tests.audience_sync.helpers import seen_by_readers


def storage(s3: Any, prefix: str) -> Storage:
    return Storage(f"s3://{s3.test_bucket}/{prefix}/", {"endpoint_url": s3.test_endpoint})


def test_a_copy_is_modified_when_its_object_was(s3: Any, tmp_path: Path) -> None:
    """Attribute files without a time field take the file's modification time as their export time: the copy's
    is the object's LastModified, not the time it was downloaded."""
    s3.pipe(f"{s3.test_bucket}/aep/attributes.csv", b"profile_id,tier\np1,gold\n")
    (stored,) = storage(s3, "aep").list()
    assert stored.mtime is not None
    copy = storage(s3, "aep").fetch(stored, str(tmp_path))
    assert os.path.getmtime(copy) == stored.mtime  # LastModified: whole seconds; a download time is not
    assert Path(copy).read_bytes() == b"profile_id,tier\np1,gold\n"


def test_a_key_leading_outside_the_work_directory_is_refused_and_never_written(
    s3: Any, store: SyncStore, tmp_path: Path, redis_url: str
) -> None:
    key = f"{s3.test_bucket}/aep/x/../../../escape_full_20260301000000.csv"
    s3.pipe(key, b"profile_id,audience_id\np1,vip\n")
    found = [f for f in storage(s3, "aep").list() if ".." in f.relative]
    assert found, "the server keeps '..' in the key"
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    with pytest.raises(UnsafePath, match="leads outside the work directory"):
        storage(s3, "aep").fetch(found[0], str(work))
    assert not (tmp_path / "deep" / "escape_full_20260301000000.csv").exists()

    args = build_parser().parse_args(
        ["watch", f"s3://{s3.test_bucket}/aep/", "--snapshot", "*_full_*", "--redis-url", redis_url, "--json"]
    )
    lease = Lease(store, "escape", owner_id(), ttl=30)
    watcher = Watcher(storage(s3, "aep"), store, lease, Rules(("*_full_*",)), ExportRunner(args), owner=lease.owner,
                      work_dir=str(work), metrics=WatchMetrics(), json=True, out=io.StringIO())  # fmt: skip
    try:
        watcher.poll()
        (handled,) = watcher.poll().handled
        assert handled[1] == "refused"
        (record,) = lease.read().values()
        assert record.outcome == "refused" and "leads outside the work directory" in record.reason
    finally:
        lease.release()
    assert seen_by_readers(store) == {}
    assert [p for p in tmp_path.rglob("escape_*")] == []
