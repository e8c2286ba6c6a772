"""``audience-sync load``: a full snapshot; afterwards the audiences' members are the input's."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from audience_sync.cli.attributes import BadAttributes, changes_of, tally_before_writing, written_with_snapshot
from audience_sync.cli.options import (
    add_batch_size,
    add_files,
    check_files,
    emit,
    input_options,
    progress_factory,
    rejects,
    source,
    store,
    table,
    under_identities,
)
from audience_sync.parallel import snapshot_load
from audience_sync.report import ErrorReport, human
from audience_sync.snapshot import LoadOptions, SnapshotLoad, SnapshotRefused, bad_ratio
from audience_sync.summaries import load_summary
from inbound_common.cli import Exit, option, positive

BATCH_SIZE = 10_000


def _say_cleaned(load: SnapshotLoad, stale_after: float) -> None:
    """What a load that was not applied removed of what it wrote (nothing to say if it wrote nothing)."""
    if load.cleanup is not None:
        print(f"audience-sync load: not applied; {load.cleanup.describe(stale_after)}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    check_files(args.files)
    options = LoadOptions(
        input=input_options(args),
        audiences=frozenset(args.audience or ()),
        batch_size=args.batch_size,
        max_bad_ratio=args.max_bad_ratio,
        allow_empty=args.allow_empty,
        dry_run=args.dry_run,
        source=source(args),
        stale_after=args.stale_after,
        force=args.force,
    )
    try:
        attributes = changes_of(args)  # read and checked before anything is written
    except BadAttributes:
        return Exit.INVALID
    sync = store(args)
    attribute_tally = tally_before_writing(args, attributes)
    with rejects(args.rejects) as rejected:
        report = ErrorReport(show=args.show_errors, rejects=rejected)
        write = written_with_snapshot(sync, attributes, attribute_tally) if attributes and not args.dry_run else None
        load = snapshot_load(sync, options, report, url=args.redis_url, jobs=getattr(args, "jobs", 1),
                             progress=progress_factory(args), before_cutover=write,
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
                emit(summary(refused=str(exc)))
            return Exit.CONFLICT if exc.conflict else Exit.INVALID
        except BaseException as exc:  # a Redis error, an interruption: main() says which
            _say_cleaned(load, args.stale_after)
            if args.json:
                emit(summary(failed=f"{type(exc).__name__}: {exc}".rstrip(": ")))
            raise
    if args.json:
        emit(summary(version=outcome.version, seconds=outcome.seconds))
        return Exit.OK
    rows = [
        (t.audience_id, t.code, t.generation or "-", t.members, t.added, t.removed, t.unchanged, t.expired, t.exited)
        for t in outcome.audiences.values()
    ]
    print(table(("AUDIENCE", "CODE", "NEW GEN", "MEMBERS", "ADDED", "REMOVED", "UNCHANGED", "EXPIRED", "EXITED"), rows))
    stats = outcome.stats
    rate = outcome.memberships / outcome.seconds if outcome.seconds else 0.0
    print(
        f"lines {stats.lines:,}, bad {stats.bad:,} ({bad_ratio(stats):.2%}), skipped {outcome.skipped:,} "
        f"(other audiences){under_identities(stats)}; {outcome.memberships:,} memberships in "
        f"{outcome.seconds:.1f}s ({human(rate)}/s)"
    )
    if outcome.dry_run:
        print("dry run: nothing written; the snapshot would be applied as above")
    else:
        print(f"snapshot applied: registry version {outcome.version}")
    return Exit.OK


def add_command(commands: Any, common: argparse.ArgumentParser, inputs: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("load", parents=[common, inputs],
                                 help="full snapshot: afterwards the audiences' members are the input's")  # fmt: skip
    add_files(parser)
    add_batch_size(parser, BATCH_SIZE, "memberships per pipeline")
    add_allow_empty(parser)
    option(parser, "--force", action="store_true", help="take over a snapshot of the same audience that looks alive")
    option(parser, "--jobs", type=positive, default=1, help="processes parsing and writing the input's blocks "
           "(one cutover; about one per core Redis does not use)")  # fmt: skip
    parser.set_defaults(func=run, cutover_guard=None)


def add_allow_empty(parser: argparse.ArgumentParser) -> None:
    option(parser, "--allow-empty", action="store_true", help="let a snapshot leave an audience without members")
