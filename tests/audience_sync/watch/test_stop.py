"""How a watcher process ends and stays alive: a long download, SIGTERM, --drain on failures, a busy port.

Real ``audience-sync watch`` processes, a real S3 API server (moto) and Redis, each behind a real TCP proxy
where a test needs a download that lasts or a reply that never comes.
"""

from __future__ import annotations

import re
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audience_sync.store import _SCRIPTS, SyncStore
from inbound_common.cli import Exit
from tests.audience_sync.helpers import cli, seen_by_readers
from tests.audience_sync.watch.conftest import Proxy, WatchProcess
from tests.audience_sync.watch.test_command import ledger
from tests.audience_sync.watch.test_service import get
from tests.waiting import eventually_sync as wait_for

HEADER = b"profile_id,audience_id\n"


def health_port(watcher: WatchProcess) -> int:
    found = wait_for(lambda: re.search(r"on http://127.0.0.1:(\d+)", watcher.stderr()), "the watcher to listen")
    return int(found.group(1))


def test_a_long_download_keeps_the_watcher_alive_and_sigterm_interrupts_it(
    s3: Any, store: SyncStore, watchers: Callable[..., WatchProcess], proxies: Callable[[str, bytes, str], Proxy]
) -> None:
    bucket = s3.test_bucket
    path = f"{bucket}/aep/a_full_20260301000000.csv"
    proxy = proxies(s3.test_endpoint, f"GET /{path}".encode(), "hold")  # the object's download never ends
    watcher = watchers(
        f"s3://{bucket}/aep/", "--snapshot", "*_full_*", "--poll-interval", "0.1", "--host", "127.0.0.1",
        "--storage-option", f"endpoint_url=http://127.0.0.1:{proxy.port}",
    )  # fmt: skip
    port = health_port(watcher)
    s3.pipe(path, HEADER + b"p1,vip\n")
    wait_for(proxy.done.is_set, "the watcher to be downloading the export")
    # The download outlasts the liveness limit (3 polls + 10 s): time passing is the scenario.
    time.sleep(3 * 0.1 + 10 + 1)
    assert get(port, "/live") == (200, '{"status":"alive"}')  # before: 503 "no poll for 11s", killed by its probe
    assert watcher.stop(signal.SIGTERM) == Exit.INTERRUPTED  # at once, the download still held (before: never)
    assert not proxy.released.is_set()
    assert ledger(store, f"s3://{bucket}/aep")[path].outcome == "interrupted"
    assert seen_by_readers(store) == {}


def test_after_sigterm_the_status_is_0_whatever_an_export_gave(
    store: SyncStore, watchers: Callable[..., WatchProcess], tmp_path: Path
) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "a_full_20260301000000.csv").write_bytes(HEADER + b"p1\np2\np3\n")  # bad lines: refused
    watcher = watchers(str(exports), "--snapshot", "*_full_*", "--poll-interval", "0.1")
    wait_for(lambda: watcher.outcomes("refused"), "the export to be refused")
    assert watcher.stop(signal.SIGTERM) == Exit.OK  # docs/watch.md: 0, or 130 if it interrupted an export


def test_drain_ends_with_the_status_of_a_redis_failure_on_an_export(
    store: SyncStore,
    watchers: Callable[..., WatchProcess],
    tmp_path: Path,
    redis_url: str,
    proxies: Callable[[str, bytes, str], Proxy],
) -> None:
    proxy = proxies(redis_url, _SCRIPTS["APPLY_CHANGES"].sha.encode(), "cut")  # apply's write never answered
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "a_incremental_20260301000000.csv").write_bytes(b"profile_id,audience_id,status\np1,vip,realized\n")
    watcher = watchers(
        str(exports), "--deltas", "*_incremental_*", "--poll-interval", "0.1", "--drain",
        "--redis-url", f"redis://127.0.0.1:{proxy.port}/0",
    )  # fmt: skip
    wait_for(lambda: watcher.process.poll() is not None, "the watcher to end")
    assert proxy.done.is_set()
    assert watcher.stop() == Exit.UNAVAILABLE  # docs: 3 when Redis is unavailable (before: 4, after a retry)
    (line,) = watcher.lines
    assert (line["outcome"], line["status"]) == ("failed", Exit.UNAVAILABLE)
    assert line["reason"].startswith("Redis: ConnectionError"), line


def test_a_busy_port_is_unavailable_in_one_line_and_leaves_nothing(
    capsys: Any, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        status, _, err = cli(capsys, "watch", str(tmp_path), "--snapshot", "*", "--host", "127.0.0.1", "--port",
                             str(port), "--redis-url", redis_url)  # fmt: skip
    assert status == Exit.UNAVAILABLE  # as `decision serve` and `receive` (before: 1)
    assert err.splitlines() == [f"audience-sync watch: cannot listen on 127.0.0.1:{port}: the port is in use"]
    assert list(temporary.iterdir()) == []  # no work directory left behind
