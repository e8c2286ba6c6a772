"""Conventions shared by the ``decision`` commands: exit statuses, options with env var and default, ``--context``.

Every option is added through :func:`option`, so its help text names its default
and the environment variable that sets it, from the same values the parser uses:
the text cannot drift from the behaviour. New subcommands should add theirs the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn

import orjson

from decision.observe.redact import mask_url


class Exit(IntEnum):
    """The exit statuses of ``decision`` (documented in ``decision --help`` and docs/operations.md)."""

    OK = 0
    INVALID = 1  # input refused: an invalid ruleset, an unreadable file, a request the server refused
    USAGE = 2  # a bad option, argument or DECISION_* environment variable
    UNAVAILABLE = 3  # Redis, the server or the port is unavailable (connection refused, timeout, port in use)
    CONFLICT = 4  # a version name published before with other content
    REDIS = 5  # another Redis error (e.g. wrong type, no permission)
    NOT_FOUND = 6  # what the command names is not in Redis (decision profile: an unknown profile id)
    INTERRUPTED = 130  # Ctrl-C (SIGINT) before the command finished
    CLOSED_PIPE = 141  # stdout was closed early (e.g. `| head`): 128 + SIGPIPE, as a C program killed by it


EXIT_MEANINGS: dict[Exit, str] = {
    Exit.OK: "ok",
    Exit.INVALID: "input refused (invalid ruleset, unreadable file, request refused by the server)",
    Exit.USAGE: "usage (bad option, argument or environment variable)",
    Exit.UNAVAILABLE: "Redis, the server or the port unavailable",
    Exit.CONFLICT: "conflict (a version name already published with other content)",
    Exit.REDIS: "other Redis error",
    Exit.NOT_FOUND: "not found (decision profile: no such profile in Redis)",
    Exit.INTERRUPTED: "interrupted (Ctrl-C)",
    Exit.CLOSED_PIPE: "stdout closed before the output was written (e.g. | head); nothing printed",
}

# The names other modules import.
EXIT_INVALID = Exit.INVALID
EXIT_USAGE = Exit.USAGE
EXIT_UNAVAILABLE = Exit.UNAVAILABLE
EXIT_CONFLICT = Exit.CONFLICT

# Every DECISION_* variable an option reads, with its help: listed in `decision --help`.
ENVIRONMENT: dict[str, str] = {}
# Read by the server itself rather than by an option (decision.service.stages).
ENVIRONMENT["DECISION_STAGE_TIMING"] = (
    "1: export the cost of each stage of Decide (decision_stage_seconds_total) on --metrics-port, for benchmarks"
)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (``decision serve: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(Exit.USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *flags: str,
    help: str,
    default: Any = None,
    env: str | None = None,
    type: Callable[[str], Any] | None = None,
    **kwargs: Any,
) -> argparse.Action:
    """Add an option whose help ends with its environment variable and its default.

    ``env`` (when set and non-empty) replaces ``default``; its text goes through
    ``type`` like a command-line value, so a bad value is a usage error naming the variable.
    """
    notes = []
    if env is not None:
        notes.append(f"env {env}")
        ENVIRONMENT[env] = help
    if default is not None and default is not False and default != []:
        notes.append(f"default: {default}")
    full_help = f"{help} ({'; '.join(notes)})" if notes else help
    value = os.environ.get(env) if env is not None else None
    if value:
        default = value
        if type is None and "choices" in kwargs:  # argparse checks choices on the command line only
            type = _one_of(kwargs["choices"])
        if type is not None:
            type = _from_env(type, env or "", value)
    if type is not None:
        kwargs["type"] = type
    return parser.add_argument(*flags, default=default, help=full_help.replace("%", "%%"), **kwargs)


def _from_env(convert: Callable[[str], Any], env: str, value: str) -> Callable[[str], Any]:
    """``convert``, with the variable named in its error when the text is the variable's."""

    def checked(text: str) -> Any:
        try:
            return convert(text)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            if text != value:
                raise
            raise argparse.ArgumentTypeError(f"{env}={mask_url(value)!r}: {exc}") from None

    checked.__name__ = getattr(convert, "__name__", "value")
    return checked


def _one_of(choices: Sequence[str]) -> Callable[[str], str]:
    def checked(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)}")
        return text

    return checked


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def port(text: str) -> int:
    value = integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port (0 to 65535): {text!r}")
    return value


def positive(text: str) -> int:
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


def seconds(text: str) -> float:
    """A duration option: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text!r}")
    return value


def some_seconds(text: str) -> float:
    """A duration option that cannot be nothing: a number of seconds, more than 0."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def share(text: str) -> float:
    """A ratio option: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text!r}")
    return value


def milliseconds(text: str) -> float:
    """A duration option in milliseconds, more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of milliseconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 ms: {text!r}")
    return value


def redis_url(text: str) -> str:
    """A Redis URL, checked as every client reads it (inbound_common.urls): a malformed one is a usage error."""
    from inbound_common.urls import InvalidRedisUrl, parse_redis_url  # imports redis: only when a URL is given

    try:
        return parse_redis_url(text).url
    except InvalidRedisUrl as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_redis_url(parser: argparse.ArgumentParser, help: str = "") -> None:
    option(
        parser,
        "--redis-url",
        env="DECISION_REDIS_URL",
        type=redis_url,
        help="redis://[:password@]host:port/db, rediss:// for TLS, redis+cluster:// for Redis Cluster" + help,
    )


def add_redis_options(parser: argparse.ArgumentParser) -> None:
    add_redis_url(parser)
    add_key_prefix(parser)


def add_key_prefix(parser: argparse.ArgumentParser) -> None:
    option(parser, "--key-prefix", env="DECISION_KEY_PREFIX", default="ib", help="prefix of every Redis key")


def add_json(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    option(parser, "--json", action="store_true", help=f"print {what} as JSON on stdout")


def epilog() -> str:
    """The environment variables and exit statuses, for ``decision --help``."""
    width = max(len(name) for name in ENVIRONMENT) if ENVIRONMENT else 0
    env_lines = [f"  {name:<{width}}  {text}" for name, text in sorted(ENVIRONMENT.items())]
    exit_lines = [f"  {int(code):>3}  {text}" for code, text in EXIT_MEANINGS.items()]
    return "\n".join(
        [
            "environment variables (an option given on the command line wins):",
            *env_lines,
            "",
            "exit statuses:",
            *exit_lines,
        ]
    )


def emit(
    as_json: bool,
    body: Callable[[], Any],
    text: Callable[[], str],
    page: tuple[str, str | None, Callable[[], str]] = ("", None, str),
) -> None:
    """A result on stdout: ``body()`` as JSON (``--json``) or ``text()``.

    ``page`` (label, path, render): a file written first when a path is given, named after the result
    (on stderr with ``--json``, so stdout stays one JSON document).
    """
    label, path, render = page
    if path:
        Path(path).write_text(render(), encoding="utf-8")
    print(orjson.dumps(body(), option=orjson.OPT_INDENT_2).decode() if as_json else text())
    if path:
        print(f"{label}: {path}", file=sys.stderr if as_json else sys.stdout)


def fail(command: str, message: str, status: Exit) -> int:
    """Say what went wrong on one line of stderr; returns ``status``."""
    print(f"decision {command}: {message}", file=sys.stderr)
    return int(status)


def parse_context(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; a value that parses as JSON is taken as such (120, true, ["a"]), else as a string."""
    context: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--context {pair!r}: expected key=value")
        try:
            context[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            context[key] = raw
    return context
