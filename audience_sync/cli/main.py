"""The ``audience-sync`` command: load, apply, attributes, stream, receive, watch, status, gc."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

import orjson

from audience_sync.cli.receive import add_arguments as receive_arguments
from audience_sync.cli.watch import add_arguments as watch_arguments
from audience_sync.formats import Format, InputOptions, parse
from audience_sync.records import Change, LineError, ParseStats
from audience_sync.report import ErrorReport, Progress, human

if TYPE_CHECKING:  # imported where used: `--help` and `status` stay quick to start
    from audience_sync.snapshot import SnapshotLoad

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_CONFLICT = 4
EXIT_REDIS_ERROR = 5
EXIT_INTERRUPTED = 130
EXIT_CLOSED_PIPE = 141  # as a shell reports a writer killed by SIGPIPE

EXIT_CODES = f"""exit status:
  {EXIT_OK}    done (or, with --dry-run, the input is acceptable)
  {EXIT_BAD_INPUT}    input refused: bad lines over --max-bad-ratio, an audience left empty without
       --allow-empty, no audience in the input — nothing was applied
  {EXIT_USAGE}    usage: bad options, unreadable input file
  {EXIT_UNAVAILABLE}    Redis unavailable (connection refused, timeout, loading)
  {EXIT_CONFLICT}    conflict: a snapshot of the same audience is loading, or a newer one was switched
       in first — nothing was applied
  {EXIT_REDIS_ERROR}    another Redis error
  {EXIT_INTERRUPTED}  interrupted (SIGINT/SIGTERM); a snapshot is not applied, deltas applied so far stay
  {EXIT_CLOSED_PIPE}  stdout was closed early (e.g. piped into head); the work itself was done

A snapshot that is refused, fails or is interrupted removes the membership fields it wrote and
its pending registration, gives back the generation and code it took (Redis is as it was), and says
so; one killed (SIGKILL) leaves them to `gc` (see `status`)."""


class UsageError(Exception):
    pass


def _redis_url(args: argparse.Namespace) -> str:
    """The Redis URL (option, else environment), checked as the clients read it: a malformed one is a UsageError."""
    from inbound_common.urls import InvalidRedisUrl, parse_redis_url

    given = [("--redis-url", args.redis_url)]
    given += [(name, os.environ.get(name)) for name in ("AUDIENCE_SYNC_REDIS_URL", "DECISION_REDIS_URL")]
    source, url = next(((name, value) for name, value in given if value), ("", None))
    if not url:
        raise UsageError("no Redis: pass --redis-url or set AUDIENCE_SYNC_REDIS_URL (or DECISION_REDIS_URL)")
    try:
        return parse_redis_url(url).url
    except InvalidRedisUrl as exc:
        raise UsageError(f"{source}: {exc}") from None


def _store(args: argparse.Namespace) -> Any:
    from audience_sync.store import SyncStore
    from inbound_common.keys import KeySpace

    try:
        keys = KeySpace(args.key_prefix)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    store = SyncStore.from_url(args.redis_url, keys)  # checked by main (_redis_url)
    args.opened.append(store)  # closed by main
    return store


def _input_options(args: argparse.Namespace) -> InputOptions:
    audiences = args.audience or []
    return InputOptions(
        format=Format(args.format),
        id_column=args.id_column,
        audience_column=args.audience_column,
        audience=audiences[0] if len(audiences) == 1 else None,
        identity_namespaces=tuple(dict.fromkeys(args.identity_namespace or ())),
        segment_namespace=args.segment_namespace,
    )


def _check_files(paths: Sequence[str]) -> None:
    for path in paths:
        if path != "-" and not os.access(path, os.R_OK):
            raise UsageError(f"{path}: cannot read" + ("" if Path(path).exists() else " (no such file)"))


@contextlib.contextmanager
def _rejects(path: str | None) -> Iterator[IO[bytes] | None]:
    if path is None:
        yield None
        return
    with open(path, "wb") as handle:
        yield handle


def _progress_factory(args: argparse.Namespace) -> Callable[[str, int | None, Callable[[], int]], Progress]:
    enabled = args.progress or sys.stderr.isatty()

    def make(label: str, size: int | None, position: Callable[[], int]) -> Progress:
        return Progress(label, total_bytes=size, position=position, enabled=enabled)

    return make


def _emit(summary: dict[str, Any]) -> None:
    """--json: one object on stdout."""
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("inbound-decisioning")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(header)] + [[f"{c:,}" if isinstance(c, int) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
        for r in cells
    )


def _under_identities(stats: ParseStats) -> str:
    """'; 2 profiles under 5 identities' when XDM profiles were read ('' for flat records)."""
    if not stats.profiles:
        return ""
    profiles = f"{stats.profiles:,} profile" + ("" if stats.profiles == 1 else "s")
    return f"; {profiles} under {stats.identities:,} identit" + ("y" if stats.identities == 1 else "ies")


# -- load ----------------------------------------------------------------------------
def _say_cleaned(load: SnapshotLoad, stale_after: float) -> None:
    """What a load that was not applied removed of what it wrote (nothing to say if it wrote nothing)."""
    if load.cleanup is not None:
        print(f"audience-sync load: not applied; {load.cleanup.describe(stale_after)}", file=sys.stderr)


def cmd_load(args: argparse.Namespace) -> int:
    from audience_sync.snapshot import LoadOptions, SnapshotLoad, SnapshotRefused, bad_ratio
    from audience_sync.summaries import load_summary

    _check_files(args.files)
    options = LoadOptions(
        input=_input_options(args),
        audiences=frozenset(args.audience or ()),
        batch_size=args.batch_size,
        max_bad_ratio=args.max_bad_ratio,
        allow_empty=args.allow_empty,
        dry_run=args.dry_run,
        source=args.source or ",".join(os.path.basename(f) for f in args.files),
        stale_after=args.stale_after,
        force=args.force,
    )
    try:
        attributes = _attribute_changes(args)  # read and checked before anything is written
    except BadAttributes:
        return EXIT_BAD_INPUT
    store = _store(args)
    attribute_tally: dict[str, int] | None = _attribute_tally(args, attributes)
    with _rejects(args.rejects) as rejects:
        report = ErrorReport(show=args.show_errors, rejects=rejects)
        write = _snapshot_attributes(store, attributes, attribute_tally) if attributes and not args.dry_run else None
        load = SnapshotLoad(store, options, report, progress=_progress_factory(args), before_cutover=write,
                            guard=args.cutover_guard)  # fmt: skip

        def summary(**outcome: Any) -> dict[str, Any]:
            return load_summary(
                tallies=load.tallies.values(), stats=load.stats, errors=report.shown, dry_run=options.dry_run,
                skipped=load.skipped, cleanup=load.cleanup, attributes=attribute_tally, **outcome,
            )  # fmt: skip

        try:
            outcome = load.run(args.files)
        except SnapshotRefused as exc:
            print(f"audience-sync load: {exc}", file=sys.stderr)
            _say_cleaned(load, args.stale_after)
            if args.json:
                _emit(summary(refused=str(exc)))
            return EXIT_CONFLICT if exc.conflict else EXIT_BAD_INPUT
        except BaseException as exc:  # a Redis error, an interruption: main() says which
            _say_cleaned(load, args.stale_after)
            if args.json:
                _emit(summary(failed=f"{type(exc).__name__}: {exc}".rstrip(": ")))
            raise
    if args.json:
        _emit(summary(version=outcome.version, seconds=outcome.seconds))
        return EXIT_OK
    rows = [
        (t.audience_id, t.code, t.generation or "-", t.members, t.added, t.removed, t.unchanged, t.expired, t.exited)
        for t in outcome.audiences.values()
    ]
    print(
        _table(("AUDIENCE", "CODE", "NEW GEN", "MEMBERS", "ADDED", "REMOVED", "UNCHANGED", "EXPIRED", "EXITED"), rows)
    )
    stats = outcome.stats
    rate = outcome.memberships / outcome.seconds if outcome.seconds else 0.0
    print(
        f"lines {stats.lines:,}, bad {stats.bad:,} ({bad_ratio(stats):.2%}), skipped {outcome.skipped:,} "
        f"(other audiences){_under_identities(stats)}; {outcome.memberships:,} memberships in "
        f"{outcome.seconds:.1f}s ({human(rate)}/s)"
    )
    if outcome.dry_run:
        print("dry run: nothing written; the snapshot would be applied as above")
    else:
        print(f"snapshot applied: registry version {outcome.version}")
    return EXIT_OK


def _snapshot_attributes(
    store: Any, changes: list[Any], counts: dict[str, int] | None
) -> Callable[[Mapping[str, Any]], None]:
    """Writes the attributes into the generation the snapshot loads: they count from its cutover on."""
    from audience_sync.attributes import write_attributes
    from audience_sync.snapshot import SnapshotRefused

    def write(tallies: Mapping[str, Any]) -> None:
        if len(tallies) != 1:
            raise SnapshotRefused("--attribute needs a snapshot of one audience (a file per audience, --audience)")
        (tally,) = tallies.values()
        written = write_attributes(store, changes, snapshot=(tally.code, tally.generation))
        if counts is not None:
            counts.update(written.as_json())

    return write


# -- apply ---------------------------------------------------------------------------
def _read_changes(args: argparse.Namespace, report: ErrorReport) -> tuple[list[Change], ParseStats]:
    from audience_sync.sources import open_input

    options = _input_options(args)
    stats = ParseStats()
    changes: list[Change] = []
    make_progress = _progress_factory(args)
    for path in args.files:
        with open_input(path, options.format) as opened:
            progress = make_progress(path, opened.size, opened.position)
            for item in parse(opened.lines, path, opened.format, options, stats):
                if isinstance(item, LineError):
                    report.add(item)
                else:
                    changes.append(item)
                    if len(changes) % 10_000 == 0:
                        progress.update(len(changes))
            progress.finish()
    return changes, stats


def cmd_apply(args: argparse.Namespace) -> int:
    from audience_sync.deltas import DeltaApplier
    from audience_sync.snapshot import bad_ratio
    from audience_sync.summaries import apply_summary

    _check_files(args.files)
    selected = frozenset(args.audience or ())
    try:
        attributes = _attribute_changes(args)
    except BadAttributes:
        return EXIT_BAD_INPUT
    with _rejects(args.rejects) as rejects:
        report = ErrorReport(show=args.show_errors, rejects=rejects)
        changes, stats = _read_changes(args, report)
    ratio = bad_ratio(stats)
    if ratio > args.max_bad_ratio:
        refused = (
            f"{stats.bad} bad line(s) of {stats.lines} ({ratio:.2%}) exceed the threshold "
            f"({args.max_bad_ratio:.2%}): nothing applied"
        )
        print(f"audience-sync apply: {refused}", file=sys.stderr)
        if args.json:
            _emit(apply_summary(tallies={}, stats=stats, errors=report.shown, dry_run=args.dry_run, changes=0,
                                refused=refused))  # fmt: skip
        return EXIT_BAD_INPUT
    if selected:
        changes = [c for c in changes if c.audience_id in selected]
    store = _store(args)
    source = args.source or ",".join(os.path.basename(f) for f in args.files)
    applier = DeltaApplier(store, source=source, dry_run=args.dry_run, stale_after=args.stale_after)
    progress = _progress_factory(args)("apply", None, lambda: 0)
    started = time.monotonic()
    for start in range(0, len(changes), args.batch_size):
        applier.apply(changes[start : start + args.batch_size])
        progress.update(min(start + args.batch_size, len(changes)))
    progress.finish()
    attribute_tally: dict[str, int] | None = _attribute_tally(args, attributes)
    if attributes and not args.dry_run:
        from audience_sync.attributes import write_attributes

        tally = write_attributes(store, attributes)
        attribute_tally = {"values": len(attributes), **tally.as_json()}
        if not args.json:
            print(tally.describe())
    seconds = time.monotonic() - started
    if args.json:
        _emit(apply_summary(tallies=applier.outcome.audiences, stats=stats, errors=report.shown,
                            dry_run=args.dry_run, changes=len(changes), seconds=seconds,
                            attributes=attribute_tally))  # fmt: skip
        return EXIT_OK
    rows = [
        (audience, t.added, t.removed, t.unchanged, t.stale, t.expired)
        for audience, t in sorted(applier.outcome.audiences.items())
    ]
    print(_table(("AUDIENCE", "ADDED", "REMOVED", "UNCHANGED", "STALE", "EXPIRED"), rows))
    print(
        f"lines {stats.lines:,}, bad {stats.bad:,} ({ratio:.2%}){_under_identities(stats)}; {len(changes):,} changes "
        f"in {seconds:.1f}s"
    )
    if args.dry_run:
        print("dry run: nothing written; the changes would be applied as above")
    return EXIT_OK


# -- attributes ------------------------------------------------------------------------
class BadAttributes(Exception):
    """Lines of the input whose attributes cannot be written (already printed): nothing is written."""


def _attribute_tally(args: argparse.Namespace, attributes: Sequence[object]) -> dict[str, int] | None:
    """The summary's ``attributes`` before writing: None when no mapping was given."""
    return {"values": len(attributes)} if args.attribute or args.attribute_map else None


def _attribute_changes(args: argparse.Namespace, stats: ParseStats | None = None) -> list[Any]:
    """The ``--attribute`` values of the input files, all checked; raises BadAttributes (printed) or UsageError.

    ``stats``: counts the XDM profiles read and the identities their values go under."""
    from audience_sync.attribute_files import read_files
    from audience_sync.attribute_options import sources_of

    if not (args.attribute or args.attribute_map):
        if args.command == "attributes":
            raise UsageError("attributes: give --attribute SOURCE[:TYPE][=NAME] (repeatable) or --attribute-map FILE")
        return []
    if "-" in args.files:
        raise UsageError(
            "attributes are read from files (their time is the file's, or --attribute-time-field), not stdin"
        )
    try:
        sources = sources_of(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    namespaces = tuple(dict.fromkeys(args.identity_namespace or ()))
    changes, errors = read_files(
        args.files, sources, id_column=args.id_column, time_column=args.time_column, identity_namespaces=namespaces,
        stats=stats,
    )  # fmt: skip
    for error in errors[: args.show_errors]:
        print(error, file=sys.stderr)
    if errors:
        refused = f"{len(errors)} line(s) with bad attributes: nothing written"
        print(f"audience-sync {args.command}: {refused}", file=sys.stderr)
        if args.json:
            from audience_sync.summaries import attributes_summary

            _emit(attributes_summary(command=args.command, values=0, dry_run=args.dry_run,
                                     errors=errors[: args.show_errors], refused=refused))  # fmt: skip
        raise BadAttributes
    return changes


def cmd_attributes(args: argparse.Namespace) -> int:
    from audience_sync.attributes import AttributeTally, write_attributes
    from audience_sync.summaries import attributes_summary

    _check_files(args.files)
    stats = ParseStats()
    try:
        changes = _attribute_changes(args, stats)
    except BadAttributes:
        return EXIT_BAD_INPUT
    tally = AttributeTally() if args.dry_run else write_attributes(_store(args), changes)
    if args.json:
        _emit(attributes_summary(command="attributes", values=len(changes), dry_run=args.dry_run,
                                 tally=tally.as_json(), stats=stats))  # fmt: skip
    elif args.dry_run:
        print(f"dry run: {len(changes):,} attribute values would be written{_under_identities(stats)}")
    else:
        print(tally.describe() + _under_identities(stats))
    return EXIT_OK


# -- stream --------------------------------------------------------------------------
def cmd_stream(args: argparse.Namespace) -> int:
    from audience_sync.stream import StreamConsumer, StreamOptions, StreamOutcome

    store = _store(args)
    stream_key = args.stream or store.keys.audience_events
    options = StreamOptions(
        stream=stream_key,
        group=args.group,
        consumer=args.consumer or socket.gethostname(),
        batch_size=args.batch_size,
        block_ms=args.block_ms,
        claim_idle_ms=args.claim_idle_ms,
        start_id=args.start_id,
        drain=args.drain,
        id_field=args.id_column,
    )
    stopping = False

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    progress = _progress_factory(args)(f"stream {stream_key}", None, lambda: 0)

    def on_batch(outcome: StreamOutcome) -> None:
        progress.update(outcome.entries)

    with _rejects(args.rejects) as rejects:
        report = ErrorReport(show=args.show_errors, rejects=rejects)
        consumer = StreamConsumer(store, options, report, on_batch=on_batch)
        outcome = consumer.run(lambda: stopping)
    progress.finish()
    t = outcome.tally
    print(
        f"stream {stream_key} group {options.group} consumer {options.consumer}: {outcome.entries:,} entries, "
        f"{outcome.bad:,} bad; added {t.added:,}, removed {t.removed:,}, unchanged {t.unchanged:,}, "
        f"stale {t.stale:,}, expired {t.expired:,}; attribute values written {outcome.attributes.written:,}, "
        f"unchanged {outcome.attributes.unchanged:,}, stale {outcome.attributes.stale:,}"
    )
    return EXIT_OK


# -- receive -------------------------------------------------------------------------
def cmd_receive(args: argparse.Namespace) -> int:
    from audience_sync.cli.receive import run

    try:
        return run(args, args.redis_url)
    except (ValueError, ImportError) as exc:  # bad credentials files (AuthConfigError), options, no aiohttp
        raise UsageError(str(exc)) from None
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        # As `decision serve` says it, with the same status: the port is unavailable, not a usage error.
        reason = os.strerror(exc.errno) if exc.errno != errno.EADDRINUSE else "the port is in use"
        print(f"audience-sync receive: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return EXIT_UNAVAILABLE


# -- watch -------------------------------------------------------------------------
def cmd_watch(args: argparse.Namespace) -> int:
    from audience_sync.cli.watch import run

    try:
        return run(args, args.redis_url, load=cmd_load, apply=cmd_apply)
    except (ValueError, ImportError) as exc:  # bad options, no fsspec or no filesystem for the URL's scheme
        raise UsageError(str(exc)) from None


# -- status, gc -----------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    from audience_sync.status import rows, table

    state = _store(args).registry_state()
    now = time.time()
    if args.json:
        _emit({"command": "status", "ok": True, "version": state.version,
               "audiences": rows(state, now, args.stale_after)})  # fmt: skip
    else:
        print(table(state, now, args.stale_after))
    return EXIT_OK


def cmd_gc(args: argparse.Namespace) -> int:
    from audience_sync.gc import GcOutcome, collect

    progress = _progress_factory(args)("gc", None, lambda: 0)

    def on_batch(outcome: GcOutcome) -> None:
        progress.update(outcome.keys_scanned)

    outcome = collect(
        _store(args),
        batch_size=args.batch_size,
        grace=args.grace,
        stale_after=args.stale_after,
        dry_run=args.dry_run,
        on_batch=on_batch,
    )
    progress.finish()
    verb, dropped = ("would delete", "would drop") if args.dry_run else ("deleted", "dropped")
    dead = f": {', '.join(outcome.dead_loads)}" if outcome.dead_loads else ""
    print(
        f"gc: scanned {outcome.keys_scanned:,} profiles, {verb} {outcome.fields_deleted:,} stale fields in "
        f"{outcome.keys_touched:,} of them; {dropped} {outcome.pending_dropped} dead snapshot record(s){dead}"
    )
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------
def _ratio(text: str) -> float:
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("expected a ratio between 0 and 1, or a percentage like 1%")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("expected a positive integer")
    return value


def _attribute_options(parser: argparse.ArgumentParser) -> None:
    from audience_sync.attribute_options import add_arguments, time_field_argument

    add_arguments(parser, what="CSV column, JSON member or dotted path (CSV, NDJSON/XDM or Parquet files; an "
                  "XDM profile's go under the identities its memberships go under)")  # fmt: skip
    time_field_argument(parser, fallback="the file's modification time", aliases=("--time-column",))


class _Help(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, read from the parser itself so it cannot drift (none for
    flags and options without one); epilogs keep their lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--redis-url",
        help="redis://[:password@]host:port/db, rediss:// (TLS), redis+cluster:// "
        "(env AUDIENCE_SYNC_REDIS_URL, else DECISION_REDIS_URL)",
    )
    common.add_argument(
        "--key-prefix",
        default=os.environ.get("DECISION_KEY_PREFIX", "ib"),
        help="prefix of every Redis key, as the decision service's (env DECISION_KEY_PREFIX)",
    )
    common.add_argument("--progress", action="store_true", help="progress on stderr even when it is not a terminal")
    common.add_argument(
        "--stale-after",
        type=float,
        default=300.0,
        help="seconds without heartbeat after which a loading snapshot is dead",
    )

    inputs = argparse.ArgumentParser(add_help=False)  # the options of load and apply (and watch) but the files
    inputs.add_argument(
        "--format", choices=[f.value for f in Format], default="auto", help="auto: from the name, else the first lines"
    )
    inputs.add_argument("--audience", action="append", help="the audience of a file without audience column; "
                        "with several audiences in the input: only these (repeatable)")  # fmt: skip
    inputs.add_argument("--id-column", default="profile_id", help="CSV column / JSON member of the profile id")
    inputs.add_argument("--audience-column", default="audience_id", help="CSV column / JSON member of the audience")
    inputs.add_argument(
        "--identity-namespace",
        action="append",
        help="XDM: an identityMap namespace; each profile is written under every id listed under it "
        "(repeatable: every id of each; none: the profile's primary identity only)",
    )
    inputs.add_argument("--segment-namespace", default="ups", help="XDM: segmentMembership namespace")
    inputs.add_argument(
        "--max-bad-ratio",
        type=_ratio,
        default=0.01,
        help="refuse the input above this share of bad lines (a ratio or a percentage)",
    )
    inputs.add_argument("--rejects", help="write every bad line here, after a '# file:line: reason' line")
    inputs.add_argument("--show-errors", type=int, default=20, help="bad lines printed (all are counted)")
    inputs.add_argument("--dry-run", action="store_true", help="parse and check everything, read Redis, write nothing")
    inputs.add_argument("--source", help="recorded in the registry (none: the file names)")
    inputs.add_argument("--json", action="store_true", help="the outcome as one JSON object on stdout")
    _attribute_options(inputs)
    files = argparse.ArgumentParser(add_help=False)
    files.add_argument("files", nargs="+", help="input files (plain or gzip; - for stdin)")

    parser = argparse.ArgumentParser(
        prog="audience-sync",
        description="Bring audience memberships from the outbound orchestrator into Redis (docs/redis-keys.md).",
        epilog=EXIT_CODES,
        formatter_class=_Help,
    )
    parser.add_argument("--version", action="version", version=f"audience-sync {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    load = commands.add_parser(
        "load", parents=[common, files, inputs],
        help="full snapshot: afterwards the audiences' members are the input's",
        epilog=EXIT_CODES, formatter_class=_Help,
    )  # fmt: skip
    load.add_argument("--batch-size", type=_positive, default=10_000, help="memberships per pipeline")
    load.add_argument("--allow-empty", action="store_true", help="let a snapshot leave an audience without members")
    load.add_argument("--force", action="store_true", help="take over a snapshot of the same audience that looks alive")
    load.set_defaults(func=cmd_load, cutover_guard=None)

    apply = commands.add_parser(
        "apply", parents=[common, files, inputs],
        help="incremental changes (realized/exited) on top of the snapshots",
        epilog=EXIT_CODES, formatter_class=_Help,
    )  # fmt: skip
    apply.add_argument("--batch-size", type=_positive, default=5_000, help="changes per pipeline")
    apply.set_defaults(func=cmd_apply)

    attributes = commands.add_parser(
        "attributes", parents=[common], help="profile attributes from CSV, NDJSON or Parquet files "
        "(docs/personalization.md)",
        epilog=EXIT_CODES, formatter_class=_Help,
    )  # fmt: skip
    attributes.add_argument("files", nargs="+", help="CSV (.csv) or NDJSON files, plain or gzip, or Parquet")
    _attribute_options(attributes)
    attributes.add_argument("--id-column", default="profile_id", help="column / member / path of the profile id")
    attributes.add_argument(
        "--identity-namespace",
        action="append",
        help="XDM: an identityMap namespace; each profile is written under every id listed under it "
        "(repeatable: every id of each; none: the profile's primary identity only)",
    )
    attributes.add_argument("--json", action="store_true", help="the outcome as one JSON object on stdout")
    attributes.add_argument("--show-errors", type=int, default=20, help="bad lines printed (all are counted)")
    attributes.add_argument("--dry-run", action="store_true", help="read and check everything, write nothing")
    attributes.set_defaults(func=cmd_attributes)

    stream = commands.add_parser(
        "stream", parents=[common], help="consume membership events from a Redis Stream (consumer group)",
        epilog=EXIT_CODES, formatter_class=_Help,
    )  # fmt: skip
    stream.add_argument("--stream", help="stream key (none: <prefix>:audience-events)")
    stream.add_argument("--group", default="audience-sync", help="consumer group")
    stream.add_argument("--consumer", help="consumer name (none: the host name, so a restart resumes its entries)")
    stream.add_argument("--batch-size", type=_positive, default=1000, help="entries per read")
    stream.add_argument("--block-ms", type=_positive, default=2000, help="how long one read waits for entries")
    stream.add_argument("--claim-idle-ms", type=int, default=60_000, help="claim others' entries idle this long")
    stream.add_argument("--start-id", default="0", help="where a new group starts: 0 (all) or $ (new entries)")
    stream.add_argument("--drain", action="store_true", help="exit when nothing is left to read")
    stream.add_argument("--id-column", default="profile_id", help="entry field of the profile id")
    stream.add_argument("--rejects", help="write every bad entry here")
    stream.add_argument("--show-errors", type=int, default=20, help="bad entries printed (all are counted)")
    stream.set_defaults(func=cmd_stream)

    receive = commands.add_parser(
        "receive", parents=[common], help="HTTP endpoint for pushed changes (AEP HTTP API destination, delta records)",
        epilog=EXIT_CODES, formatter_class=_Help,
    )  # fmt: skip
    receive_arguments(receive)
    receive.set_defaults(func=cmd_receive)

    watch = commands.add_parser(
        "watch", parents=[common, inputs], help="apply the export files landing in cloud storage or a directory, "
        "each once and in order (docs/watch.md)",
        epilog=EXIT_CODES, formatter_class=_Help,
    )  # fmt: skip
    watch_arguments(watch)
    watch.set_defaults(func=cmd_watch)

    status = commands.add_parser(
        "status", parents=[common], help="the audience registry as a table", formatter_class=_Help
    )
    status.add_argument("--json", action="store_true", help="the registry as one JSON object on stdout")
    status.set_defaults(func=cmd_status)

    gc = commands.add_parser(
        "gc", parents=[common], help="delete membership fields of generations no longer served", formatter_class=_Help
    )
    gc.add_argument("--batch-size", type=_positive, default=500, help="profiles per SCAN step")
    gc.add_argument("--grace", type=float, default=60.0, help="seconds the replaced generation is kept after a cutover")
    gc.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    gc.set_defaults(func=cmd_gc)
    return parser


def _interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    from audience_sync.store import StoreFailure, StoreUnavailable

    args = build_parser().parse_args(argv)
    args.opened = []
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    if args.command != "stream":
        signal.signal(signal.SIGTERM, _interrupt)  # unwind: a snapshot releases its pending generations
    try:
        args.redis_url = _redis_url(args)  # every command needs Redis: a missing or malformed URL ends it first
        status: int = args.func(args)
        sys.stdout.flush()  # here, where a closed pipe can be handled, rather than at exit
    except BrokenPipeError:
        # The reader went away (``| head``): the standard way is to send what is left to devnull, so
        # that the flush at exit does not fail again, and to exit quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_CLOSED_PIPE
    except UsageError as exc:
        print(f"audience-sync {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreUnavailable as exc:
        print(f"audience-sync {args.command}: Redis unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except StoreFailure as exc:
        print(f"audience-sync {args.command}: Redis error: {exc}", file=sys.stderr)
        return EXIT_REDIS_ERROR
    except OSError as exc:
        print(f"audience-sync {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"audience-sync {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        for store in args.opened:
            with contextlib.suppress(Exception):
                store.close()
    return status
