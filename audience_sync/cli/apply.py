"""``audience-sync apply``: incremental changes (realized/exited) on top of the snapshots."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from audience_sync.attributes import write_attributes
from audience_sync.cli.attributes import BadAttributes, changes_of, tally_before_writing
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
from audience_sync.deltas import DeltaApplier
from audience_sync.formats import parse
from audience_sync.records import Change, LineError, ParseStats
from audience_sync.report import ErrorReport
from audience_sync.snapshot import bad_ratio
from audience_sync.sources import open_input
from audience_sync.summaries import apply_summary
from inbound_common.cli import Exit

BATCH_SIZE = 5_000


def _read_changes(args: argparse.Namespace, report: ErrorReport) -> tuple[list[Change], ParseStats]:
    options = input_options(args)
    stats = ParseStats()
    changes: list[Change] = []
    make_progress = progress_factory(args)
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


def run(args: argparse.Namespace) -> int:
    check_files(args.files)
    selected = frozenset(args.audience or ())
    try:
        attributes = changes_of(args)
    except BadAttributes:
        return Exit.INVALID
    with rejects(args.rejects) as rejected:
        report = ErrorReport(show=args.show_errors, rejects=rejected)
        changes, stats = _read_changes(args, report)
    ratio = bad_ratio(stats)
    if ratio > args.max_bad_ratio:
        refused = (
            f"{stats.bad} bad line(s) of {stats.lines} ({ratio:.2%}) exceed the threshold "
            f"({args.max_bad_ratio:.2%}): nothing applied"
        )
        print(f"audience-sync apply: {refused}", file=sys.stderr)
        if args.json:
            emit(apply_summary(tallies={}, stats=stats, errors=report.shown, dry_run=args.dry_run, changes=0,
                               refused=refused))  # fmt: skip
        return Exit.INVALID
    if selected:
        changes = [c for c in changes if c.audience_id in selected]
    sync = store(args)
    applier = DeltaApplier(sync, source=source(args), dry_run=args.dry_run, stale_after=args.stale_after)
    progress = progress_factory(args)("apply", None, lambda: 0)
    started = time.monotonic()
    for start in range(0, len(changes), args.batch_size):
        applier.apply(changes[start : start + args.batch_size])
        progress.update(min(start + args.batch_size, len(changes)))
    progress.finish()
    attribute_tally = tally_before_writing(args, attributes)
    if attributes and not args.dry_run:
        tally = write_attributes(sync, attributes)
        attribute_tally = {"values": len(attributes), **tally.as_json()}
        if not args.json:
            print(tally.describe())
    seconds = time.monotonic() - started
    if args.json:
        emit(apply_summary(tallies=applier.outcome.audiences, stats=stats, errors=report.shown, dry_run=args.dry_run,
                           changes=len(changes), seconds=seconds, attributes=attribute_tally))  # fmt: skip
        return Exit.OK
    rows = [
        (audience, t.added, t.removed, t.unchanged, t.stale, t.expired)
        for audience, t in sorted(applier.outcome.audiences.items())
    ]
    print(table(("AUDIENCE", "ADDED", "REMOVED", "UNCHANGED", "STALE", "EXPIRED"), rows))
    print(
        f"lines {stats.lines:,}, bad {stats.bad:,} ({ratio:.2%}){under_identities(stats)}; {len(changes):,} changes "
        f"in {seconds:.1f}s"
    )
    if args.dry_run:
        print("dry run: nothing written; the changes would be applied as above")
    return Exit.OK


def add_command(commands: Any, common: argparse.ArgumentParser, inputs: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("apply", parents=[common, inputs],
                                 help="incremental changes (realized/exited) on top of the snapshots")  # fmt: skip
    add_files(parser)
    add_batch_size(parser, BATCH_SIZE, "changes per pipeline")
    parser.set_defaults(func=run)
