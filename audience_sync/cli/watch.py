"""The ``audience-sync watch`` command: its options, and running the watcher until SIGTERM/SIGINT.

It imports nothing optional at import time (fsspec and the filesystems are loaded to run), and nothing of
``audience_sync.cli``: the ``load`` and ``apply`` commands it runs on each export are handed in.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import io
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Final

import orjson

from audience_sync.watch.plan import MARKER, SNAPSHOT, STABLE, Export

if TYPE_CHECKING:  # imported where used: they import redis, which `audience-sync --help` does not need
    from audience_sync.store import CutoverGuard
    from audience_sync.watch.watcher import Ran

Command = Callable[[argparse.Namespace], int]
DEFAULT_BATCH: Final = {"load": 10_000, "apply": 5_000}  # as the load and apply commands' --batch-size
EXIT_USAGE: Final = 2
EXIT_UNAVAILABLE: Final = 3
EXIT_INTERRUPTED: Final = 130


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("expected a positive number of seconds")
    return value


def storage_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE``; a VALUE that reads as JSON (a number, true, an object) is taken as such."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected KEY=VALUE, e.g. endpoint_url=http://127.0.0.1:9000")
    try:
        return key, orjson.loads(value)
    except orjson.JSONDecodeError:
        return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="where exports land: s3://bucket/prefix/, gs://..., az://container/prefix/ "
                        "(abfs://), sftp://host/path/, or a local directory")  # fmt: skip
    parser.add_argument("--snapshot", action="append", metavar="GLOB", default=[],
                        help="files that are full snapshots (a glob on the path below URL; * spans folders; "
                        "repeatable), applied as by load")  # fmt: skip
    parser.add_argument("--deltas", action="append", metavar="GLOB", default=[],
                        help="files of incremental changes (repeatable), applied as by apply")  # fmt: skip
    parser.add_argument("--ready", choices=[STABLE, MARKER], default=STABLE,
                        help="when a file is complete: stable (ETag and size unchanged since the previous poll) "
                        "or marker (a --marker file in its folder)")  # fmt: skip
    parser.add_argument("--marker", default="_SUCCESS", help="--ready marker: the file that says a folder is complete")
    parser.add_argument("--poll-interval", type=_seconds, default=30.0, help="seconds between two listings")
    parser.add_argument("--lease-ttl", type=_seconds, default=30.0,
                        help="seconds a watcher keeps the lease without renewing it (renewed every third)")  # fmt: skip
    parser.add_argument("--name", help="the watcher's name in Redis: its ledger and lease (none: the URL)")
    parser.add_argument("--storage-option", action="append", type=storage_option, default=[], metavar="KEY=VALUE",
                        help="an fsspec option of the filesystem (repeatable), e.g. endpoint_url=..., "
                        "anon=true; credentials come from the environment as for the SDKs")  # fmt: skip
    parser.add_argument("--work-dir", help="where object-store files are copied to be read (none: a new "
                        "temporary directory)")  # fmt: skip
    parser.add_argument(
        "--batch-size",
        type=int,
        help="memberships (snapshots) or changes (deltas) per pipeline (none: as load, apply)",
    )
    parser.add_argument("--allow-empty", action="store_true", help="let a snapshot leave an audience without members")
    parser.add_argument("--drain", action="store_true", help="exit when no export is due or being written")
    parser.add_argument("--host", default=os.environ.get("AUDIENCE_SYNC_WATCH_HOST", "0.0.0.0"),
                        help="address of /health, /live and /metrics (env AUDIENCE_SYNC_WATCH_HOST)")  # fmt: skip
    parser.add_argument("--port", type=int, default=int(os.environ.get("AUDIENCE_SYNC_WATCH_PORT", "8081")),
                        help="their port; 0 a free one (env AUDIENCE_SYNC_WATCH_PORT)")  # fmt: skip


class ExportRunner:
    """Runs the ``load`` command on a snapshot's files, ``apply`` on deltas: the same checks, progress,
    ``--json`` summary and exit status as on the command line; the summary is captured for the ledger."""

    def __init__(self, args: argparse.Namespace, *, load: Command, apply: Command) -> None:
        self.base = args
        self.commands = {"load": load, "apply": apply}

    def __call__(self, export: Export, paths: Sequence[str], guard: CutoverGuard | None) -> Ran:
        from audience_sync.watch.watcher import Ran

        name = "load" if export.kind == SNAPSHOT else "apply"
        args = argparse.Namespace(**vars(self.base))
        args.command = name
        args.files = list(paths)
        args.json = True
        args.opened = []
        args.cutover_guard = guard
        args.force = False
        args.batch_size = self.base.batch_size or DEFAULT_BATCH[name]
        args.source = self.base.source or (
            export.files[0].url if len(export.files) == 1 else f"{export.series} ({len(export.files)} files)"
        )
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured):
                status = self.commands[name](args)
        finally:
            for store in args.opened:
                with contextlib.suppress(Exception):
                    store.close()
        lines = [line for line in captured.getvalue().splitlines() if line.strip()]
        return Ran(status, orjson.loads(lines[-1]) if lines else None)


class _Stop:
    """SIGTERM/SIGINT stop the loop (and interrupt the export being applied); a lost lease interrupts it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.applying: Callable[[], bool] = lambda: False

    @property
    def stopping(self) -> bool:
        return self.event.is_set()

    def on_signal(self, signum: int, _: FrameType | None) -> None:
        self.event.set()
        if self.applying():
            raise KeyboardInterrupt

    def on_lease_lost_signal(self, signum: int, _: FrameType | None) -> None:
        from audience_sync.watch.ledger import LeaseLost

        if self.applying():
            raise LeaseLost("the lease was lost while applying")

    def lease_lost(self) -> None:
        """From the lease's thread: interrupt the main thread if it is applying an export."""
        if self.applying():
            _thread.interrupt_main(signal.SIGUSR1)


def run(args: argparse.Namespace, redis_url: str, *, load: Command, apply: Command) -> int:
    """Watch until SIGTERM/SIGINT (or, with --drain, until nothing is left to apply). ValueError, ImportError:
    a usage error."""
    from audience_sync.snapshot import owner_id
    from audience_sync.store import StoreFailure, SyncStore, connect
    from audience_sync.watch.ledger import Lease
    from audience_sync.watch.plan import Rules
    from audience_sync.watch.service import HealthServer, WatchMetrics
    from audience_sync.watch.storage import Storage
    from audience_sync.watch.watcher import Stopped, Watcher
    from inbound_common.keys import KeySpace

    if not args.snapshot and not args.deltas:
        raise ValueError("say which files to apply: --snapshot GLOB and/or --deltas GLOB")
    if args.batch_size is not None and args.batch_size <= 0:
        raise ValueError(f"--batch-size {args.batch_size}: expected a positive integer")
    if args.dry_run:
        raise ValueError("--dry-run is not for watch: try load or apply --dry-run on a file")
    name = args.name or args.url.rstrip("/")
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"--name {name!r}: no spaces")
    for option in ("attribute_map", "rejects"):  # read or written per export: an absolute path
        if getattr(args, option, None):
            setattr(args, option, os.path.abspath(getattr(args, option)))
    storage = Storage(args.url, dict(args.storage_option))
    store = SyncStore(connect(redis_url), KeySpace(args.key_prefix))
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="audience-sync-watch-")
    metrics = WatchMetrics()
    stop = _Stop()
    lease = Lease(store, name, owner_id(), ttl=args.lease_ttl, on_lost=stop.lease_lost)
    rules = Rules(tuple(args.snapshot), tuple(args.deltas), args.ready, args.marker)
    watcher = Watcher(storage, store, lease, rules, ExportRunner(args, load=load, apply=apply), owner=lease.owner,
                      work_dir=work_dir, metrics=metrics, json=args.json)  # fmt: skip
    stop.applying = lambda: watcher.applying is not None
    idle_limit = 3 * args.poll_interval + 10

    def live() -> str:
        quiet = time.monotonic() - watcher.last_poll
        return "" if watcher.applying is not None or quiet < idle_limit else f"no poll for {quiet:.0f}s"

    def ready() -> str:
        if watcher.storage_problem:
            return f"storage unreachable: {watcher.storage_problem}"
        try:
            store.probe_write()
        except StoreFailure as exc:
            return f"Redis refuses writes: {type(exc).__name__}: {exc}"
        return ""

    server = HealthServer(args.host, args.port, metrics, live=live, ready=ready)
    server.start()
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    signal.signal(signal.SIGTERM, stop.on_signal)
    signal.signal(signal.SIGINT, stop.on_signal)
    signal.signal(signal.SIGUSR1, stop.on_lease_lost_signal)
    print(f"audience-sync watch: watching {args.url} as {name!r} (owner {lease.owner}); /health, /live and "
          f"/metrics on http://{args.host}:{server.port}", file=sys.stderr, flush=True)  # fmt: skip
    status = 0
    try:
        while not stop.stopping:
            report = watcher.poll()
            status = status or report.status
            if args.drain:
                if report.role == "storage_error":
                    return EXIT_USAGE
                if report.role == "redis_error":
                    return EXIT_UNAVAILABLE
                if report.role == "leader" and not report.plan.due and not report.plan.waiting:
                    return status
            stop.event.wait(args.poll_interval)
    except Stopped:
        print("audience-sync watch: stopped; the export being applied is applied again from scratch by the next "
              "watcher", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        lease.release()
        server.stop()
        store.close()
        if not args.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    return status
