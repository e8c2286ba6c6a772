"""The ``audience-sync`` command: its parser (a module per command adds its own) and its entry point.

The conventions are ``decision``'s (``inbound_common.cli``): options with their default and variable, one
line on stderr and an exit status for every failure a user can cause, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Sequence
from types import FrameType
from typing import Final

from audience_sync.cli import apply, attributes, gc, load, receive, status, stream, watch
from audience_sync.cli.options import InputRefused, UsageError, add_connection, add_inputs
from audience_sync.receive.auth import ENV_TOKENS
from audience_sync.store import StoreFailure, StoreUnavailable
from inbound_common.cli import Exit, epilog, fail, flushed, program

# audience-sync's cases of each exit status (``audience-sync --help``; docs/audience-sync.md).
STATUSES: Final = {
    Exit.OK: "done; with --dry-run, the input is acceptable",
    Exit.INVALID: "bad lines over --max-bad-ratio, an unreadable file, an audience left empty without "
    "--allow-empty, no audience in the input: nothing was applied",
    Exit.USAGE: "",
    Exit.UNAVAILABLE: "Redis: connection refused, timeout, loading; receive: the port in use",
    Exit.CONFLICT: "a snapshot of the same audience is loading, or a newer one was switched in first: nothing "
    "was applied",
    Exit.REDIS: "",
    Exit.INTERRUPTED: "Ctrl-C or SIGTERM; a snapshot is not applied, deltas applied so far stay",
    Exit.CLOSED_PIPE: "the work itself was done",
}
# The variables read other than by an option.
VARIABLES: Final = {ENV_TOKENS: "bearer tokens receive accepts, comma-separated (all scopes)"}
SNAPSHOTS: Final = """\
A snapshot that is refused, fails or is interrupted removes the membership fields it wrote and its pending
registration, gives back the generation and code it took (Redis is as it was), and says so; one killed
(SIGKILL) leaves them to `gc` (see `status`)."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)  # the options of every command
    add_connection(common)
    inputs = argparse.ArgumentParser(add_help=False)  # of the commands reading memberships from files
    add_inputs(inputs)
    parser, commands = program(
        "audience-sync", "Bring audience memberships from the outbound orchestrator into Redis (docs/redis-keys.md)."
    )
    load.add_command(commands, common, inputs)
    apply.add_command(commands, common, inputs)
    attributes.add_command(commands, common)
    stream.add_command(commands, common)
    receive.add_command(commands, common)
    watch.add_command(commands, common, inputs)
    status.add_command(commands, common)
    gc.add_command(commands, common)
    parser.epilog = f"{epilog(parser, STATUSES, VARIABLES)}\n\n{SNAPSHOTS}"
    return parser


def _interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure a user can cause ends with one line on stderr and an exit status (Exit)."""
    args = build_parser().parse_args(argv)
    args.opened = []  # the stores the command opened, closed here
    said = f"audience-sync {args.command}"
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    if args.command != "stream":
        signal.signal(signal.SIGTERM, _interrupt)  # unwind: a snapshot releases its pending generations
    try:
        if not args.redis_url:  # every command needs Redis
            raise UsageError("no Redis: pass --redis-url or set AUDIENCE_SYNC_REDIS_URL (or DECISION_REDIS_URL)")
        return flushed(lambda: args.func(args))
    except UsageError as exc:
        return fail(said, str(exc), Exit.USAGE)
    except InputRefused as exc:
        return fail(said, str(exc), Exit.INVALID)
    except StoreUnavailable as exc:
        return fail(said, f"Redis unavailable: {exc}", Exit.UNAVAILABLE)
    except StoreFailure as exc:
        return fail(said, f"Redis error: {exc}", Exit.REDIS)
    except OSError as exc:  # a file the command could not read or write
        return fail(said, str(exc), Exit.INVALID)
    except KeyboardInterrupt:
        return fail(said, "interrupted", Exit.INTERRUPTED)
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        for store in args.opened:
            with contextlib.suppress(Exception):
                store.close()
