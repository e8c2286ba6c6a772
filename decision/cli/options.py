"""Conventions shared by the ``decision`` commands: exit statuses, Redis options, ``--context`` pairs."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

import orjson

# Invalid input, or a request the server refused (some events rejected, a ruleset that does not validate).
EXIT_INVALID = 1
# Bad options or an unreadable input file: nothing was done.
EXIT_USAGE = 2
# The server, or the server's Redis, could not be reached: worth a retry.
EXIT_UNAVAILABLE = 3


def add_redis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("DECISION_REDIS_URL"),
        help="redis://, rediss:// or redis+cluster:// URL (env DECISION_REDIS_URL)",
    )
    parser.add_argument("--key-prefix", default=os.environ.get("DECISION_KEY_PREFIX", "ib"))


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
