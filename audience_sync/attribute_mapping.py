"""Which input fields become profile attributes: ``--attribute SOURCE[:TYPE][=NAME]``. Pure, no I/O.

``SOURCE`` is a CSV column, an NDJSON field, or a dotted path in an XDM profile
(``person.name.firstName``; every key may carry the ``xdm:`` prefix); ``TYPE`` one of string
(the default), number, bool, timestamp, list; ``NAME`` the attribute's name (default: the
source, when it is a valid name)::

    --attribute tier --attribute ltv:number --attribute person.name.firstName=first_name

Values: JSON inputs give typed values (a timestamp may be ISO 8601 or epoch seconds); CSV cells
are text: numbers as decimals, booleans ``true``/``false``/``1``/``0``, timestamps ISO 8601 or
epoch seconds, lists separated by ``|``. An absent field or an empty CSV cell writes nothing; a
JSON ``null`` removes the attribute. The changes go to ``audience_sync.attributes.write_attributes``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from audience_sync.attributes import AttributeChange
from audience_sync.records import InvalidField, parse_time
from inbound_common.codecs import ATTRIBUTE_NAME, ATTRIBUTE_TAGS

LIST_SEPARATOR = "|"
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})
_ABSENT = object()


@dataclass(frozen=True, slots=True)
class AttributeSource:
    source: str  # the column, field or dotted path
    type: str
    name: str

    @classmethod
    def parse(cls, spec: str) -> AttributeSource:
        """``SOURCE[:TYPE][=NAME]``; ValueError saying what is wrong."""
        head, _, name = spec.partition("=")
        source, _, type_name = head.partition(":")
        return cls.of(source, type_name or "string", name or source, spec=f"--attribute {spec!r}")

    @classmethod
    def of(cls, source: str, type_name: str, name: str, *, spec: str) -> AttributeSource:
        """A checked source; ValueError starting with ``spec`` (where it was written)."""
        if not source:
            raise ValueError(f"{spec}: no source column, field or path")
        if type_name not in ATTRIBUTE_TAGS:
            raise ValueError(f"{spec}: unknown type {type_name!r} (expected {', '.join(ATTRIBUTE_TAGS)})")
        if not ATTRIBUTE_NAME.fullmatch(name):
            raise ValueError(f"{spec}: {name!r} is not an attribute name; add =NAME (letters, digits, _)")
        return cls(source, type_name, name)

    def from_text(self, text: str | None) -> object:
        """A CSV cell's value (``_ABSENT`` for an empty or missing cell). Raises InvalidField."""
        if text is None or text == "":
            return _ABSENT
        field = self.source
        if self.type == "string":
            return text
        if self.type == "number":
            try:
                number = float(text)
            except ValueError:
                raise InvalidField(f"{field}: expected a number, got {text!r}") from None
            if not math.isfinite(number):
                raise InvalidField(f"{field}: numbers must be finite")
            return number
        if self.type == "bool":
            lowered = text.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise InvalidField(f"{field}: expected true or false, got {text!r}")
            return lowered in _TRUE
        if self.type == "timestamp":
            return parse_time(text, field)
        return [item for item in text.split(LIST_SEPARATOR) if item]

    def from_json(self, value: object) -> object:
        """A JSON value (None: removed). Raises InvalidField for another type than declared."""
        if value is None:
            return None
        if self.type == "timestamp":
            return parse_time(value, self.source)
        if self.type == "number" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, list):
            fits = self.type == "list" and all(isinstance(v, str) for v in value)
        else:
            expected = {"string": str, "number": float, "bool": bool}.get(self.type)
            fits = expected is not None and isinstance(value, expected)
        if not fits:
            raise InvalidField(f"{self.source}: expected a {self.type}, got {type(value).__name__}")
        return value


def from_row(
    sources: Sequence[AttributeSource], profile_id: str, row: Mapping[str, str], event_time: float
) -> list[AttributeChange]:
    """A CSV row's attributes (its cells by column name)."""
    return _changes(sources, profile_id, event_time, lambda source: source.from_text(row.get(source.source)))


def from_object(
    sources: Sequence[AttributeSource], profile_id: str, body: Mapping[str, object], event_time: float
) -> list[AttributeChange]:
    """An NDJSON object's or XDM profile's attributes (``source`` a field or a dotted path)."""

    def value_of(source: AttributeSource) -> object:
        value = _at_path(body, source.source)
        return value if value is _ABSENT else source.from_json(value)

    return _changes(sources, profile_id, event_time, value_of)


def _changes(
    sources: Sequence[AttributeSource],
    profile_id: str,
    event_time: float,
    value_of: Callable[[AttributeSource], object],
) -> list[AttributeChange]:
    changes = []
    for source in sources:
        value = value_of(source)
        if value is not _ABSENT:
            changes.append(AttributeChange(profile_id, source.name, source.type, value, event_time))
    return changes


def value_at(body: Mapping[str, object], path: str) -> object | None:
    """The value at a field name or dotted path; None when there is none."""
    value = _at_path(body, path)
    return None if value is _ABSENT else value


def _at_path(body: Mapping[str, object], path: str) -> object:
    """The value at a field name, else at a dotted path (keys with or without ``xdm:``); ``_ABSENT`` if none."""
    if path in body:
        return body[path]
    node: object = body
    for key in path.split("."):
        if not isinstance(node, Mapping):
            return _ABSENT
        if key in node:
            node = node[key]
        elif f"xdm:{key}" in node:
            node = node[f"xdm:{key}"]
        else:
            return _ABSENT
    return node
