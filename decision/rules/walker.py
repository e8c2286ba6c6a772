"""Located access to a composed YAML node tree: typed values, or a problem naming file:line and field.

Every reader of a ruleset section takes a :class:`Walker`. It never raises on
bad input: each check that fails appends a :class:`Problem` and returns None,
so one pass reports every problem of a file. Scalars are constructed with
PyYAML's safe constructor only: nothing in a rules file is evaluated as code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from datetime import datetime

from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from decision.rules.errors import Problem
from decision.rules.suggest import did_you_mean
from decision.rules.types import Location


class Walker:
    """Reads YAML nodes of one file into typed values, collecting problems instead of raising."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()

    def loc(self, node: Node) -> Location:
        return Location(self.file, node.start_mark.line + 1)

    def error(self, node: Node, path: str, reason: str) -> None:
        self.problems.append(Problem(self.loc(node), path or "(document)", reason))

    def value(self, node: Node) -> object:
        try:
            return self._constructor.construct_object(node, deep=True)
        except ConstructorError as exc:  # e.g. an unknown !tag
            return Unconstructible(str(exc.problem))
        except ValueError as exc:  # a timestamp that is no date, e.g. 2026-13-45 (the constructor calls date())
            return Unconstructible(f"invalid date: {exc}")

    def mapping(
        self, node: Node, path: str, allowed: frozenset[str], required: frozenset[str] = frozenset()
    ) -> dict[str, Node] | None:
        if not isinstance(node, MappingNode):
            self.error(node, path, f"must be a mapping, got {kind(node)}")
            return None
        fields: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                self.error(key_node, path, f"keys must be strings, got {key!r}")
                continue
            if key in fields:
                self.error(key_node, join(path, key), "duplicate key")
                continue
            if key not in allowed:
                hint = did_you_mean(key, allowed)
                self.error(
                    key_node, join(path, key), f"unknown field{hint} (expected one of: {', '.join(sorted(allowed))})"
                )
                continue
            fields[key] = value_node
        for key in sorted(required - fields.keys()):
            self.error(node, join(path, key), "required field is missing")
        return fields

    def sequence(self, node: Node, path: str, *, allow_empty: bool = False) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.error(node, path, f"must be a list, got {kind(node)}")
            return None
        if not node.value and not allow_empty:
            self.error(node, path, "must not be empty")
            return None
        return list(node.value)

    def string(self, node: Node, path: str, pattern: re.Pattern[str] | None = None, what: str = "") -> str | None:
        value = self.value(node)
        if not isinstance(node, ScalarNode) or not isinstance(value, str):
            self.error(node, path, f"must be a string, got {describe(value, node)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.error(node, path, f"invalid {what or 'value'} {value!r}")
            return None
        return value

    def choice(self, node: Node, path: str, choices: Iterable[str], what: str = "value") -> str | None:
        """One of ``choices`` (None, reported, for any other value)."""
        text = self.string(node, path)
        options = tuple(choices)
        if text is not None and text not in options:
            self.error(node, path, f"unknown {what} {text!r}{did_you_mean(text, options)} "
                                   f"(expected one of: {', '.join(options)})")  # fmt: skip
            return None
        return text

    def named(self, node: Node, path: str, pattern: re.Pattern[str], shape: str) -> Iterator[tuple[Node, str, Node]]:
        """(key node, name, value node) of each entry of a mapping from names to ``shape`` (say, "attribute name to
        type"), its name well-formed and first seen; the other entries are reported."""
        if not isinstance(node, MappingNode):
            self.error(node, path, f"must be a mapping of {shape}, got {kind(node)}")
            return
        seen: set[str] = set()
        for key_node, value_node in node.value:
            name = self.string(key_node, path, pattern, "attribute name")
            if name is None:
                continue
            if name in seen:
                self.error(key_node, f"{path}.{name}", "duplicate attribute")
                continue
            seen.add(name)
            yield key_node, name, value_node

    def integer(self, node: Node, path: str, low: int, high: int) -> int | None:
        value = self.value(node)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(node, path, f"must be an integer, got {describe(value, node)}")
            return None
        if not low <= value <= high:
            self.error(node, path, f"must be between {low} and {high}, got {value}")
            return None
        return value

    def number(self, node: Node, path: str) -> float | None:
        value = self.value(node)
        if isinstance(value, bool) or not isinstance(value, int | float) or not isinstance(node, ScalarNode):
            self.error(node, path, f"must be a number, got {describe(value, node)}")
            return None
        if not math.isfinite(value):
            self.error(node, path, f"numbers must be finite, got {value!r}")
            return None
        return float(value)

    def boolean(self, node: Node, path: str) -> bool | None:
        value = self.value(node)
        if not isinstance(value, bool):
            self.error(node, path, f"must be true or false, got {describe(value, node)}")
            return None
        return value

    def timestamp(self, node: Node, path: str) -> float | None:
        raw = node.value if isinstance(node, ScalarNode) else None
        if not isinstance(raw, str):
            self.error(node, path, f"must be an ISO 8601 timestamp, got {kind(node)}")
            return None
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            self.error(node, path, f"invalid ISO 8601 timestamp {raw!r}")
            return None
        if moment.tzinfo is None:
            self.error(node, path, f"timestamp {raw!r} needs a time zone (e.g. Z or +01:00)")
            return None
        return moment.timestamp()

    def unique_strings(
        self, node: Node, path: str, pattern: re.Pattern[str], what: str, *, allow_empty: bool = False
    ) -> tuple[str, ...] | None:
        items = self.sequence(node, path, allow_empty=allow_empty)
        if items is None:
            return None
        result: list[str] = []
        for index, item in enumerate(items):
            value = self.string(item, f"{path}[{index}]", pattern, what)
            if value is None:
                continue
            if value in result:
                self.error(item, f"{path}[{index}]", f"duplicate {what} {value!r}")
                continue
            result.append(value)
        return tuple(result)


class Unconstructible:
    """A scalar the safe constructor refused (e.g. an unknown tag): reported as a wrong type, never used."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"<{self.reason}>"


def kind(node: Node) -> str:
    """What a node is, for an error message: a mapping, a list, or the scalar as written."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return f"{node.value!r}"


def describe(value: object, node: Node) -> str:
    """What a value is, for an error message: a mapping, a list, nothing (null), or its type and value."""
    if isinstance(node, MappingNode | SequenceNode):
        return kind(node)
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
