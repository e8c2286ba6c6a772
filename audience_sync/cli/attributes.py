"""``audience-sync attributes``: profile attributes from files; and the ``--attribute`` values load and apply write."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from audience_sync.attribute_files import read_files
from audience_sync.attribute_options import sources_of
from audience_sync.attributes import AttributeChange, AttributeTally, write_attributes
from audience_sync.cli.options import (
    UsageError,
    add_attributes,
    add_dry_run,
    add_files,
    add_id_column,
    add_identity_namespace,
    add_json,
    add_show_errors,
    check_files,
    emit,
    identity_namespaces,
    store,
    under_identities,
)
from audience_sync.records import ParseStats
from audience_sync.snapshot import AudienceTally, SnapshotRefused
from audience_sync.store import SyncStore
from audience_sync.summaries import attributes_summary
from inbound_common.cli import Exit


class BadAttributes(Exception):
    """Lines of the input whose attributes cannot be written (already printed): nothing is written."""


def tally_before_writing(args: argparse.Namespace, attributes: Sequence[object]) -> dict[str, int] | None:
    """The summary's ``attributes`` before writing: None when no mapping was given."""
    return {"values": len(attributes)} if args.attribute or args.attribute_map else None


def changes_of(args: argparse.Namespace, stats: ParseStats | None = None) -> list[AttributeChange]:
    """The ``--attribute`` values of the input files, all checked; raises BadAttributes (printed) or UsageError.

    ``stats``: counts the XDM profiles read and the identities their values go under."""
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
    changes, errors = read_files(
        args.files, sources, id_column=args.id_column, time_column=args.time_column,
        identity_namespaces=identity_namespaces(args), stats=stats,
    )  # fmt: skip
    for error in errors[: args.show_errors]:
        print(error, file=sys.stderr)
    if errors:
        refused = f"{len(errors)} line(s) with bad attributes: nothing written"
        print(f"audience-sync {args.command}: {refused}", file=sys.stderr)
        if args.json:
            emit(attributes_summary(command=args.command, values=0, dry_run=args.dry_run,
                                    errors=errors[: args.show_errors], refused=refused))  # fmt: skip
        raise BadAttributes
    return changes


def written_with_snapshot(
    sync: SyncStore, changes: list[AttributeChange], counts: dict[str, int] | None
) -> Callable[[Mapping[str, AudienceTally]], None]:
    """Writes the attributes into the generation the snapshot loads: they count from its cutover on."""

    def write(tallies: Mapping[str, AudienceTally]) -> None:
        if len(tallies) != 1:
            raise SnapshotRefused("--attribute needs a snapshot of one audience (a file per audience, --audience)")
        (tally,) = tallies.values()
        written = write_attributes(sync, changes, snapshot=(tally.code, tally.generation))
        if counts is not None:
            counts.update(written.as_json())

    return write


def run(args: argparse.Namespace) -> int:
    check_files(args.files)
    stats = ParseStats()
    try:
        changes = changes_of(args, stats)
    except BadAttributes:
        return Exit.INVALID
    tally = AttributeTally() if args.dry_run else write_attributes(store(args), changes)
    if args.json:
        emit(attributes_summary(command="attributes", values=len(changes), dry_run=args.dry_run,
                                tally=tally.as_json(), stats=stats))  # fmt: skip
    elif args.dry_run:
        print(f"dry run: {len(changes):,} attribute values would be written{under_identities(stats)}")
    else:
        print(tally.describe() + under_identities(stats))
    return Exit.OK


def add_command(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("attributes", parents=[common], help="profile attributes from CSV, NDJSON or "
                                 "Parquet files (docs/personalization.md)")  # fmt: skip
    add_files(parser, "CSV (.csv) or NDJSON files, plain or gzip, or Parquet")
    add_attributes(parser)
    add_id_column(parser, "column / member / path")
    add_identity_namespace(parser)
    add_json(parser)
    add_show_errors(parser)
    add_dry_run(parser, "read and check everything")
    parser.set_defaults(func=run)
