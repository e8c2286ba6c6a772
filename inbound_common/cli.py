"""The command-line conventions of ``decision`` and ``audience-sync``: exit statuses, options, checked values.

Every option is added through :func:`option`, so its help text names its default and the environment
variable that sets it, from the same values the parser uses: the text cannot drift from the behaviour,
and ``--help`` lists every variable (:func:`epilog`). Exit statuses come from :class:`Exit`, one set for
both commands; a user's mistake ends in one line on stderr (:class:`Parser`, :func:`fail`), never a
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from enum import IntEnum
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final, NoReturn

from inbound_common.keys import KeySpace
from inbound_common.urls import InvalidRedisUrl, mask_url, parse_redis_url


class Exit(IntEnum):
    """The exit statuses of ``decision`` and ``audience-sync`` (their ``--help``; docs/operations.md)."""

    OK = 0
    INVALID = 1  # input refused: a ruleset, an export, events, a request that is invalid or cannot be read
    USAGE = 2  # a bad option, argument or environment variable, or a file an option names that cannot be used
    UNAVAILABLE = 3  # Redis, the server or the port is unavailable (connection refused, timeout, port in use)
    CONFLICT = 4  # someone else's work came first: a version name published with other content, another load
    REDIS = 5  # another Redis error (e.g. wrong type, no permission)
    NOT_FOUND = 6  # what the command names is not in Redis (decision profile: an unknown profile id)
    INTERRUPTED = 130  # Ctrl-C (SIGINT) before the command finished
    CLOSED_PIPE = 141  # stdout was closed early (e.g. `| head`): 128 + SIGPIPE, as a C program killed by it


# What each status means, in both commands; a command's epilog adds its own cases (exit_statuses).
MEANINGS: Final[Mapping[Exit, str]] = {
    Exit.OK: "ok",
    Exit.INVALID: "input refused: what the command reads or applies is invalid or cannot be read",
    Exit.USAGE: "usage: a bad option, argument or environment variable",
    Exit.UNAVAILABLE: "Redis, the server or the port unavailable",
    Exit.CONFLICT: "conflict: other work came first",
    Exit.REDIS: "another Redis error",
    Exit.NOT_FOUND: "not found in Redis",
    Exit.INTERRUPTED: "interrupted",
    Exit.CLOSED_PIPE: "stdout closed before the output was written (e.g. | head): nothing more printed",
}


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (``decision serve: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(Exit.USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def program(name: str, description: str) -> tuple[Parser, Any]:
    """A command's parser, with ``--version`` (the release installed), and the action its subcommands are added to."""
    parser = Parser(prog=name, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{name} {release()}")
    return parser, parser.add_subparsers(dest="command", required=True, metavar="COMMAND")


def release() -> str:
    try:
        return version("inbound-decisioning")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown (not installed)"


def option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *flags: str,
    help: str,
    default: Any = None,
    env: str | Sequence[str] | None = None,
    type: Callable[[str], Any] | None = None,
    **kwargs: Any,
) -> argparse.Action:
    """Add an option whose help ends with its environment variable(s) and its default.

    ``env`` (the first one set and non-empty, when several) replaces ``default``; its text goes through
    ``type`` like a command-line value, so a bad value is a usage error naming the variable.
    """
    variables = (env,) if isinstance(env, str) else tuple(env or ())
    notes = []
    if variables:
        notes.append("env " + ", else ".join(variables))
    if default is not None and default is not False and default != []:
        notes.append(f"default: {default}")
    full_help = f"{help} ({'; '.join(notes)})" if notes else help
    name, value = next(((v, os.environ[v]) for v in variables if os.environ.get(v)), ("", ""))
    if value:
        default = value
        if type is None and "choices" in kwargs:  # argparse checks choices on the command line only
            type = _one_of(kwargs["choices"])
        if type is not None:
            type = _from_env(type, name, value)
    if type is not None:
        kwargs["type"] = type
    action = parser.add_argument(*flags, default=default, help=full_help.replace("%", "%%"), **kwargs)
    action.env = variables  # type: ignore[attr-defined]  # read by environment()
    return action


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


def subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every parser of its subcommands, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # an alias maps to its command's parser again
                yield from subparsers(sub)


def environment(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Every variable an option of ``parser`` or of its subcommands reads, with the option's help."""
    found: dict[str, str] = {}
    for sub in subparsers(parser):
        for action in sub._actions:
            for name in getattr(action, "env", ()):
                found.setdefault(name, (action.help or "").partition(" (env ")[0].replace("%%", "%"))
    return found


def exit_statuses(cases: Mapping[Exit, str]) -> list[str]:
    """The lines of the statuses a command uses (the keys of ``cases``): the meaning, then the command's cases."""
    return [
        textwrap.fill(
            MEANINGS[code] + (f" ({cases[code]})" if cases[code] else ""),
            width=110,
            initial_indent=f"  {int(code):>3}  ",
            subsequent_indent=" " * 7,
        )
        for code in cases
    ]


def epilog(parser: argparse.ArgumentParser, statuses: Mapping[Exit, str], others: Mapping[str, str]) -> str:
    """``--help``'s last part: the environment variables (the options' and ``others``), the exit statuses."""
    variables = {**environment(parser), **others}
    width = max(map(len, variables), default=0)
    return "\n".join(
        [
            "environment variables (an option given on the command line wins):",
            *(f"  {name:<{width}}  {text}" for name, text in sorted(variables.items())),
            "",
            "exit statuses:",
            *exit_statuses(statuses),
        ]
    )


def fail(prefix: str, message: str, status: Exit) -> int:
    """Say what went wrong on one line of stderr (``decision serve: ...``); returns ``status``."""
    print(f"{prefix}: {message}", file=sys.stderr)
    return int(status)


def flushed(run: Callable[[], int]) -> int:
    """``run()``'s status, its output flushed; a reader gone early (``| head``): CLOSED_PIPE, quietly."""
    try:
        status = int(run())
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return status
    except BrokenPipeError:
        # Send what is left to devnull, so that the flush at exit does not fail again; say nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.CLOSED_PIPE


# -- checked values: each a `type=` of option(), its error a usage error naming the option ----------------
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


def count(text: str) -> int:
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def positive(text: str) -> int:
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


def _number(text: str, of: str = "") -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number{f' of {of}' if of else ''}: {text!r}") from None


def seconds(text: str) -> float:
    """A duration option: a number of seconds, 0 or more."""
    value = _number(text, "seconds")
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text!r}")
    return value


def some_seconds(text: str) -> float:
    """A duration option that cannot be nothing: a number of seconds, more than 0."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def milliseconds(text: str) -> float:
    """A duration option in milliseconds, more than 0."""
    value = _number(text, "milliseconds")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 ms: {text!r}")
    return value


def share(text: str) -> float:
    """A ratio option: a number from 0 to 1, or a percentage (``1%``)."""
    value = _number(text[:-1]) / 100 if text.endswith("%") else _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (or 0% and 100%): {text!r}")
    return value


def size(text: str) -> int:
    """A size in bytes, more than 0, or with ``k`` or ``m`` (``4m``)."""
    units = {"k": 1 << 10, "m": 1 << 20}
    unit = units.get(text[-1:].lower(), 1)
    value = integer(text[:-1] if unit > 1 else text) * unit
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive size, e.g. 4m: {text!r}")
    return value


def redis_url(text: str) -> str:
    """A Redis URL, checked as every client reads it (inbound_common.urls): a malformed one is a usage error."""
    try:
        return parse_redis_url(text).url
    except InvalidRedisUrl as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def key_prefix(text: str) -> str:
    """A key prefix as the key layout accepts it (inbound_common.keys)."""
    try:
        return KeySpace(text).prefix
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


REDIS_URL_HELP: Final = "redis://[:password@]host:port/db, rediss:// for TLS, redis+cluster:// for Redis Cluster"


def add_redis_url(
    parser: argparse.ArgumentParser, help: str = "", env: Sequence[str] = ("DECISION_REDIS_URL",)
) -> None:
    option(parser, "--redis-url", env=env, type=redis_url, help=REDIS_URL_HELP + help)


def add_key_prefix(parser: argparse.ArgumentParser) -> None:
    option(parser, "--key-prefix", env="DECISION_KEY_PREFIX", type=key_prefix, default="ib",
           help="prefix of every Redis key (the same for the decision service and audience-sync)")  # fmt: skip
