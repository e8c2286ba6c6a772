"""``audience-sync watch``: apply the export files landing in cloud storage or a directory, each once and in order.

fsspec and the filesystems (the ``watch`` extra and the URL scheme's) are loaded to run (storage.py).
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
from typing import Any, Final

import orjson

from audience_sync.cli import apply, load
from audience_sync.cli.load import add_allow_empty
from audience_sync.cli.options import UsageError, add_batch_size
from audience_sync.snapshot import owner_id
from audience_sync.store import CutoverGuard, StoreFailure, SyncStore, connect
from audience_sync.watch.ledger import Lease, LeaseLost
from audience_sync.watch.plan import MARKER, SNAPSHOT, STABLE, Export, Rules
from audience_sync.watch.service import HealthServer, WatchMetrics
from audience_sync.watch.storage import Storage
from audience_sync.watch.watcher import Ran, Stopped, Watcher
from inbound_common.cli import Exit, option, port, some_seconds
from inbound_common.keys import KeySpace

Command = Callable[[argparse.Namespace], int]
COMMANDS: Final[dict[str, tuple[Command, int]]] = {  # what runs an export of each kind, its default --batch-size
    "load": (load.run, load.BATCH_SIZE),
    "apply": (apply.run, apply.BATCH_SIZE),
}


def storage_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE``; a VALUE that reads as JSON (a number, true, an object) is taken as such."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected KEY=VALUE, e.g. endpoint_url=http://127.0.0.1:9000")
    try:
        return key, orjson.loads(value)
    except orjson.JSONDecodeError:
        return key, value


def add_command(commands: Any, common: argparse.ArgumentParser, inputs: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("watch", parents=[common, inputs], help="apply the export files landing in cloud "
                                 "storage or a directory, each once and in order (docs/watch.md)")  # fmt: skip
    parser.add_argument("url", help="where exports land: s3://bucket/prefix/, gs://..., az://container/prefix/ "
                        "(abfs://), sftp://host/path/, or a local directory")  # fmt: skip
    option(parser, "--snapshot", action="append", metavar="GLOB", default=[],
           help="files that are full snapshots (a glob on the path below URL; * spans folders; repeatable), "
           "applied as by load")  # fmt: skip
    option(parser, "--deltas", action="append", metavar="GLOB", default=[],
           help="files of incremental changes (repeatable), applied as by apply")  # fmt: skip
    option(parser, "--ready", choices=[STABLE, MARKER], default=STABLE,
           help="when a file is complete: stable (ETag and size unchanged since the previous poll) "
           "or marker (a --marker file in its folder)")  # fmt: skip
    option(parser, "--marker", default="_SUCCESS", help="--ready marker: the file that says a folder is complete")
    option(parser, "--poll-interval", type=some_seconds, default=30.0, help="seconds between two listings")
    option(parser, "--lease-ttl", type=some_seconds, default=30.0,
           help="seconds a watcher keeps the lease without renewing it (renewed every third)")  # fmt: skip
    option(parser, "--name", help="the watcher's name in Redis: its ledger and lease (none: the URL)")
    option(parser, "--storage-option", action="append", type=storage_option, default=[], metavar="KEY=VALUE",
           help="an fsspec option of the filesystem (repeatable), e.g. endpoint_url=..., anon=true; credentials "
           "come from the environment as for the SDKs")  # fmt: skip
    option(parser, "--work-dir", help="where object-store files are copied to be read (none: a new temporary "
           "directory)")  # fmt: skip
    add_batch_size(parser, None, "memberships (snapshots) or changes (deltas) per pipeline (none: as load, apply)")
    add_allow_empty(parser)
    option(parser, "--drain", action="store_true", help="exit when no export is due or being written")
    option(parser, "--host", env="AUDIENCE_SYNC_WATCH_HOST", default="0.0.0.0",
           help="address of /health, /live and /metrics")  # fmt: skip
    option(parser, "--port", env="AUDIENCE_SYNC_WATCH_PORT", type=port, default=8081,
           help="their port; 0 a free one")  # fmt: skip
    parser.set_defaults(func=run)


class ExportRunner:
    """Runs the ``load`` command on a snapshot's files, ``apply`` on deltas: the same checks, progress,
    ``--json`` summary and exit status as on the command line; the summary is captured for the ledger."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.base = args

    def __call__(self, export: Export, paths: Sequence[str], guard: CutoverGuard | None) -> Ran:
        name = "load" if export.kind == SNAPSHOT else "apply"
        command, batch_size = COMMANDS[name]
        args = argparse.Namespace(**vars(self.base))
        args.command = name
        args.files = list(paths)
        args.json = True
        args.opened = []
        args.cutover_guard = guard
        args.force = False
        args.batch_size = self.base.batch_size or batch_size
        args.source = self.base.source or (
            export.files[0].url if len(export.files) == 1 else f"{export.series} ({len(export.files)} files)"
        )
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured):
                status = command(args)
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
        if self.applying():
            raise LeaseLost("the lease was lost while applying")

    def lease_lost(self) -> None:
        """From the lease's thread: interrupt the main thread if it is applying an export."""
        if self.applying():
            _thread.interrupt_main(signal.SIGUSR1)


def run(args: argparse.Namespace) -> int:
    """Watch until SIGTERM/SIGINT (or, with --drain, until nothing is left to apply)."""
    try:
        return _watch(args)
    except (ValueError, ImportError) as exc:  # bad options, no fsspec or no filesystem for the URL's scheme
        raise UsageError(str(exc)) from None


def _watch(args: argparse.Namespace) -> int:
    if not args.snapshot and not args.deltas:
        raise ValueError("say which files to apply: --snapshot GLOB and/or --deltas GLOB")
    if args.dry_run:
        raise ValueError("--dry-run is not for watch: try load or apply --dry-run on a file")
    name = args.name or args.url.rstrip("/")
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"--name {name!r}: no spaces")
    for path_option in ("attribute_map", "rejects"):  # read or written per export: an absolute path
        if getattr(args, path_option, None):
            setattr(args, path_option, os.path.abspath(getattr(args, path_option)))
    storage = Storage(args.url, dict(args.storage_option))
    store = SyncStore(connect(args.redis_url), KeySpace(args.key_prefix))
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="audience-sync-watch-")
    metrics = WatchMetrics()
    stop = _Stop()
    lease = Lease(store, name, owner_id(), ttl=args.lease_ttl, on_lost=stop.lease_lost)
    rules = Rules(tuple(args.snapshot), tuple(args.deltas), args.ready, args.marker)
    watcher = Watcher(storage, store, lease, rules, ExportRunner(args), owner=lease.owner,
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
    status = int(Exit.OK)
    try:
        while not stop.stopping:
            report = watcher.poll()
            status = status or report.status
            if args.drain:
                if report.role == "storage_error":
                    return Exit.USAGE
                if report.role == "redis_error":
                    return Exit.UNAVAILABLE
                if report.role == "leader" and not report.plan.due and not report.plan.waiting:
                    return status
            stop.event.wait(args.poll_interval)
    except Stopped:
        print("audience-sync watch: stopped; the export being applied is applied again from scratch by the next "
              "watcher", file=sys.stderr)  # fmt: skip
        return Exit.INTERRUPTED
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        lease.release()
        server.stop()
        store.close()
        if not args.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    return status
