"""What several ``audience-sync`` commands share: their options (each defined once), what they read from them, and
the shapes of their output. Options are added through ``inbound_common.cli.option``, as ``decision``'s are."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final

import orjson

from audience_sync.attribute_options import add_arguments as add_attribute_arguments
from audience_sync.attribute_options import time_field_argument
from audience_sync.formats import Format, InputOptions
from audience_sync.records import ParseStats
from audience_sync.report import Progress
from audience_sync.store import SyncStore
from inbound_common.cli import add_key_prefix, add_redis_url, count, option, positive, seconds, share
from inbound_common.keys import KeySpace

# --redis-url: audience-sync's own variable first, then the decision service's.
REDIS_URL_VARIABLES: Final = ("AUDIENCE_SYNC_REDIS_URL", "DECISION_REDIS_URL")
IDENTITY_NAMESPACE_HELP: Final = (
    "XDM: an identityMap namespace; each profile is written under every id listed under it "
    "(repeatable: every id of each; none: the profile's primary identity only)"
)


class UsageError(Exception):
    """A mistake in the command line (exit status 2); the message is the one line said about it."""


class InputRefused(Exception):
    """An input file that cannot be read (exit status 1, as any refused input); the message names it."""


# -- options --------------------------------------------------------------------------
def add_connection(parser: argparse.ArgumentParser) -> None:
    """The options of every command: where Redis is, and how long a silent snapshot load lives."""
    add_redis_url(parser, env=REDIS_URL_VARIABLES)
    add_key_prefix(parser)
    option(parser, "--progress", action="store_true", help="progress on stderr even when it is not a terminal")
    option(parser, "--stale-after", type=seconds, default=300.0, metavar="SECONDS",
           help="seconds without heartbeat after which a loading snapshot is dead")  # fmt: skip


def add_id_column(parser: argparse.ArgumentParser, what: str = "CSV column / JSON member") -> None:
    option(parser, "--id-column", default="profile_id", help=f"{what} of the profile id")


def add_identity_namespace(parser: argparse.ArgumentParser) -> None:
    option(parser, "--identity-namespace", action="append", help=IDENTITY_NAMESPACE_HELP)


def add_segment_namespace(parser: argparse.ArgumentParser) -> None:
    option(parser, "--segment-namespace", default="ups", help="XDM: segmentMembership namespace")


def add_audience_column(parser: argparse.ArgumentParser, what: str = "CSV column / JSON member") -> None:
    option(parser, "--audience-column", default="audience_id", help=f"{what} of the audience")


def add_rejects(parser: argparse.ArgumentParser, what: str = "line") -> None:
    option(parser, "--rejects", help=f"write every bad {what} here, after a '# file:line: reason' line")


def add_show_errors(parser: argparse.ArgumentParser, what: str = "lines") -> None:
    option(parser, "--show-errors", type=count, default=20, help=f"bad {what} printed (all are counted)")


def add_dry_run(parser: argparse.ArgumentParser, what: str = "parse and check everything, read Redis") -> None:
    option(parser, "--dry-run", action="store_true", help=f"{what}, write nothing")


def add_json(parser: argparse.ArgumentParser, what: str = "the outcome") -> None:
    option(parser, "--json", action="store_true", help=f"{what} as one JSON object on stdout")


def add_batch_size(parser: argparse.ArgumentParser, default: int | None, what: str) -> None:
    option(parser, "--batch-size", type=positive, default=default, help=what)


def add_attributes(parser: argparse.ArgumentParser) -> None:
    """--attribute, --attribute-map, --attribute-time-field of the commands reading files."""
    add_attribute_arguments(parser, what="CSV column, JSON member or dotted path (CSV, NDJSON/XDM or Parquet files; "
                            "an XDM profile's go under the identities its memberships go under)")  # fmt: skip
    time_field_argument(parser, fallback="the file's modification time", aliases=("--time-column",))


def add_inputs(parser: argparse.ArgumentParser) -> None:
    """The options of the commands reading memberships from files (load, apply, watch): all but the files."""
    option(parser, "--format", choices=[f.value for f in Format], default="auto",
           help="auto: from the name, else the first lines")  # fmt: skip
    option(parser, "--audience", action="append", help="the audience of a file without audience column; "
           "with several audiences in the input: only these (repeatable)")  # fmt: skip
    add_id_column(parser)
    add_audience_column(parser)
    add_identity_namespace(parser)
    add_segment_namespace(parser)
    option(parser, "--max-bad-ratio", type=share, default=0.01,
           help="refuse the input above this share of bad lines (a ratio or a percentage)")  # fmt: skip
    add_rejects(parser)
    add_show_errors(parser)
    add_dry_run(parser)
    option(parser, "--source", help="recorded in the registry (none: the file names)")
    add_json(parser)
    add_attributes(parser)


def add_files(parser: argparse.ArgumentParser, what: str = "input files (plain or gzip; - for stdin)") -> None:
    parser.add_argument("files", nargs="+", help=what)


# -- what the options say ---------------------------------------------------------------
def store(args: argparse.Namespace) -> SyncStore:
    """The Redis the command writes to (its URL checked by main), closed by main when the command ends."""
    opened = SyncStore.from_url(args.redis_url, KeySpace(args.key_prefix))
    args.opened.append(opened)
    return opened


def input_options(args: argparse.Namespace) -> InputOptions:
    audiences = args.audience or []
    return InputOptions(
        format=Format(args.format),
        id_column=args.id_column,
        audience_column=args.audience_column,
        audience=audiences[0] if len(audiences) == 1 else None,
        identity_namespaces=identity_namespaces(args),
        segment_namespace=args.segment_namespace,
    )


def identity_namespaces(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(dict.fromkeys(args.identity_namespace or ()))


def source(args: argparse.Namespace) -> str:
    """What the registry records as the input: --source, else the files' names."""
    return str(args.source or ",".join(os.path.basename(f) for f in args.files))


def check_files(paths: Sequence[str]) -> None:
    """Raise InputRefused for a file that cannot be read, before anything is written."""
    for path in paths:
        if path != "-" and not os.access(path, os.R_OK):
            raise InputRefused(f"{path}: cannot read" + ("" if Path(path).exists() else " (no such file)"))


@contextlib.contextmanager
def rejects(path: str | None) -> Iterator[IO[bytes] | None]:
    if path is None:
        yield None
        return
    with open(path, "wb") as handle:
        yield handle


ProgressFactory = Callable[[str, int | None, Callable[[], int]], Progress]


def progress_factory(args: argparse.Namespace) -> ProgressFactory:
    enabled = args.progress or sys.stderr.isatty()

    def make(label: str, size: int | None, position: Callable[[], int]) -> Progress:
        return Progress(label, total_bytes=size, position=position, enabled=enabled)

    return make


# -- output ------------------------------------------------------------------------------
def emit(summary: dict[str, Any]) -> None:
    """--json: one object on stdout."""
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(header)] + [[f"{c:,}" if isinstance(c, int) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
        for r in cells
    )


def under_identities(stats: ParseStats) -> str:
    """'; 2 profiles under 5 identities' when XDM profiles were read ('' for flat records)."""
    if not stats.profiles:
        return ""
    profiles = f"{stats.profiles:,} profile" + ("" if stats.profiles == 1 else "s")
    return f"; {profiles} under {stats.identities:,} identit" + ("y" if stats.identities == 1 else "ies")
