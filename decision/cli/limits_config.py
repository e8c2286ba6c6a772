"""Request limits from a TOML or JSON file and ``NAME=N`` command-line pairs.

Every key is a field of ``decision.settings.Limits``; an unknown name or a
value that is not a positive integer is refused with a message naming it.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from decision.settings import Limits

LIMIT_NAMES = tuple(f.name for f in dataclasses.fields(Limits))
# gRPC's own framing and the request's required fields need some room.
MIN_MESSAGE_BYTES = 1024


class LimitsError(ValueError):
    pass


def _value(name: str, value: object, where: str) -> int:
    if name not in LIMIT_NAMES:
        raise LimitsError(f"{where}: unknown limit {name!r} (known: {', '.join(LIMIT_NAMES)})")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LimitsError(f"{where}: {name}: expected a positive integer, got {value!r}")
    if name == "max_message_bytes" and value < MIN_MESSAGE_BYTES:
        raise LimitsError(f"{where}: {name}: at least {MIN_MESSAGE_BYTES}")
    return value


def apply_limits(base: Limits, values: Mapping[str, object], where: str) -> Limits:
    checked = {name: _value(name, value, where) for name, value in values.items()}
    return dataclasses.replace(base, **checked)


def read_limits_file(path: str) -> dict[str, object]:
    """A ``.json`` file holds one JSON object; any other file is TOML (``max_placements = 8``)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LimitsError(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text) if path.endswith(".json") else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LimitsError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise LimitsError(f"{path}: expected an object of limit = number")
    return data


def parse_limit_pairs(pairs: Sequence[str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for pair in pairs:
        name, sep, raw = (part.strip() for part in pair.partition("="))
        if not sep or not name:
            raise LimitsError(f"--limit {pair!r}: expected NAME=N")
        try:
            values[name] = int(raw)
        except ValueError:
            values[name] = raw  # refused, with its name, by apply_limits
    return values


def limits_from(file: str | None, pairs: Sequence[str], base: Limits | None = None) -> Limits:
    """``base`` (the defaults), then the file's values, then the ``--limit`` pairs."""
    limits = base or Limits()
    if file is not None:
        limits = apply_limits(limits, read_limits_file(file), file)
    return apply_limits(limits, parse_limit_pairs(pairs), "--limit")
