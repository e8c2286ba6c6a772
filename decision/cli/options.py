"""The ``decision`` command's own conventions, on those it shares with audience-sync (``inbound_common.cli``).

What each exit status means for ``decision``, the variables no option reads, the Redis options, ``--json``
output, one-line failures (``decision COMMAND: ...``) and ``--context``. Every option is added through
``inbound_common.cli.option``; new subcommands add theirs the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from decision.core.requests import context_of_pairs
from inbound_common import cli
from inbound_common.cli import Exit, option
from inbound_common.secret_files import BearerToken, load_tokens

# decision's cases of each exit status (``decision --help``; docs/operations.md).
STATUSES: Final = {
    Exit.OK: "",
    Exit.INVALID: "an invalid ruleset, an unreadable file, a request the server refused",
    Exit.USAGE: "DECISION_PORT='abc'; a token, key or limits file that cannot be used",
    Exit.UNAVAILABLE: "connection refused, timeout, port in use",
    Exit.CONFLICT: "a version name already published with other content",
    Exit.REDIS: "e.g. wrong type, no permission",
    Exit.NOT_FOUND: "decision profile: no such profile",
    Exit.INTERRUPTED: "Ctrl-C; serve and redis too, once stopped: SIGTERM ends them with 0",
    Exit.CLOSED_PIPE: "",
}

ENV_TOKENS: Final = "DECISION_AUTH_TOKENS"  # besides --auth-tokens-file (serve, console)
# The DECISION_* variables read other than by an option, with their help: listed in `decision --help`.
VARIABLES: Final = {
    # Read by the server itself (decision.service.stages).
    "DECISION_STAGE_TIMING": "1: export the cost of each stage of Decide (decision_stage_seconds_total) on "
    "--metrics-port, for benchmarks",
    ENV_TOKENS: "bearer tokens accepted, comma-separated, with every scope (serve, console)",
    "DECISION_TOKEN_KEYS": "tracking-token signing keys, 'id:secret' comma-separated (serve)",
}


def epilog(parser: argparse.ArgumentParser) -> str:
    """The environment variables and exit statuses, for ``decision --help``."""
    return cli.epilog(parser, STATUSES, VARIABLES)


def add_redis_options(parser: argparse.ArgumentParser) -> None:
    cli.add_redis_url(parser)
    cli.add_key_prefix(parser)


def add_tls_server_options(parser: argparse.ArgumentParser, what: str = "serve TLS") -> None:
    """``--tls-cert``/``--tls-key``: a listener's TLS (``serve``'s gRPC port, the console's HTTPS)."""
    option(parser, "--tls-cert", env="DECISION_TLS_CERT", metavar="PEM", help=f"certificate chain: {what}")
    option(parser, "--tls-key", env="DECISION_TLS_KEY", metavar="PEM", help="private key of --tls-cert")


def add_auth_tokens_file(parser: argparse.ArgumentParser, help: str) -> None:
    """``--auth-tokens-file``: the bearer tokens accepted (decision.api.auth), with ``DECISION_AUTH_TOKENS``."""
    option(parser, "--auth-tokens-file", env="DECISION_AUTH_TOKENS_FILE", metavar="FILE", help=help)


def auth_tokens(args: argparse.Namespace) -> tuple[BearerToken, ...]:
    """The tokens of ``--auth-tokens-file`` and ``$DECISION_AUTH_TOKENS``; AuthConfigError naming the line."""
    return load_tokens(args.auth_tokens_file, os.environ, ENV_TOKENS)


def add_json(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    option(parser, "--json", action="store_true", help=f"print {what} as JSON on stdout")


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
    """Say what went wrong on one line of stderr (``decision COMMAND: message``); returns ``status``."""
    return cli.fail(f"decision {command}", message, status)


def parse_context(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; a value that parses as JSON is taken as such (120, true, ["a"]), else as a string."""
    return context_of_pairs(("--context", pair) for pair in pairs)
