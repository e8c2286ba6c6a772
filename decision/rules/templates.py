"""Personalized content: placeholders in an offer's content strings, rendered per decision. Pure.

A content string may hold placeholders::

    "Hi {{profile.first_name | default: \"there\"}}, 10 % off in {{context.city}} today"

Grammar of what stands between ``{{`` and ``}}`` (spaces allowed around tokens)::

    placeholder := reference [ "|" "default" ":" string ] | string
    reference   := "profile." name | "context." name
    string      := '"' { any character but '"' and '\\' | '\\"' | '\\\\' } '"'

A bare string placeholder writes its text: ``{{ "{{" }}`` writes two braces. Everything
else is copied as written. Templates are parsed once, when the ruleset is loaded (with
their errors located there); rendering only looks values up in the decision's context
(where profile attributes are ``profile.<name>``) and joins strings: no ``eval``, no
format strings, no attribute access. Each inserted value is cut to ``MAX_VALUE_CHARS``
characters before escaping, so a rendered string is at most ``Template.max_length``.

Values are written as: strings as they are, numbers without a needless ``.0``
(``10``, ``10.5``), booleans ``true``/``false``, lists joined with ``", "``.
A missing value takes the placeholder's default; without one, the offer's
``on_missing`` decides: ``blank`` (an empty string) or ``skip`` (the offer is not proposed).
With ``escape: html`` the inserted values (never the author's own text) are HTML-escaped;
without it the content is JSON and whoever puts it into HTML escapes it (the client).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import orjson

from decision.rules.patterns import ATTRIBUTE_PATTERN, PROFILE_SCOPE
from decision.rules.suggest import did_you_mean
from inbound_common.codecs import ATTRIBUTE_NAME

# What templates read: the context the rules see (decision.rules.types.Context; not imported: types
# imports this module).
Context = Mapping[str, object]

OPEN: Final = "{{"
CLOSE: Final = "}}"
MAX_VALUE_CHARS: Final = 256
MAX_TEMPLATE_CHARS: Final = 8192
MAX_PLACEHOLDERS: Final = 64
# html.escape turns one character into at most 6 ("&quot;").
_ESCAPE_GROWTH: Final = 6
_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")


class Escape(StrEnum):
    NONE = "none"
    HTML = "html"


class OnMissing(StrEnum):
    BLANK = "blank"  # the placeholder writes nothing
    SKIP = "skip"  # the offer is not proposed


class TemplateError(ValueError):
    """A template that does not parse; ``column`` is 1-based within the string."""

    def __init__(self, column: int, reason: str) -> None:
        self.column = column
        self.reason = reason
        super().__init__(f"column {column}: {reason}")


@dataclass(frozen=True, slots=True)
class Placeholder:
    key: str  # the key in the context the rules see: ``<name>`` or ``profile.<name>``
    default: str | None
    # Where its name starts in the string (1-based), for the errors of the checks made after parsing.
    column: int = field(default=0, compare=False)

    @property
    def reference(self) -> str:
        return self.key if self.key.startswith(PROFILE_SCOPE) else f"context.{self.key}"


Part = str | Placeholder


@dataclass(frozen=True, slots=True)
class Template:
    parts: tuple[Part, ...]

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        return tuple(p for p in self.parts if isinstance(p, Placeholder))

    def max_length(self, escape: Escape) -> int:
        """An upper bound on the length of any rendering."""
        per_value = MAX_VALUE_CHARS * (_ESCAPE_GROWTH if escape is Escape.HTML else 1)
        bound = 0
        for part in self.parts:
            if isinstance(part, str):
                bound += len(part)
            else:
                bound += max(per_value, len(part.default or ""))
        return bound

    def render(self, context: Context, escape: Escape, on_missing: OnMissing) -> str | None:
        """The text, or None when a value is missing, has no default, and the offer says skip."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = context.get(part.key)
            if value is None:
                if part.default is not None:
                    out.append(part.default)
                elif on_missing is OnMissing.SKIP:
                    return None
                continue
            text = value_text(value)[:MAX_VALUE_CHARS]
            out.append(html.escape(text) if escape is Escape.HTML else text)
        return "".join(out)


def value_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, tuple | list):
        return ", ".join(value_text(v) for v in value)
    if isinstance(value, int | float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def has_placeholders(text: str) -> bool:
    return OPEN in text


def parse_template(text: str) -> Template:
    """Parse a content string. Raises TemplateError (with a column) when it does not parse."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(1, f"longer than {MAX_TEMPLATE_CHARS} characters")
    parts: list[Part] = []
    literal: list[str] = []
    position = 0
    count = 0
    while True:
        start = text.find(OPEN, position)
        if start < 0:
            literal.append(text[position:])
            break
        literal.append(text[position:start])
        part, position = _Scanner(text, start + len(OPEN)).placeholder()
        count += 1
        if count > MAX_PLACEHOLDERS:
            raise TemplateError(start + 1, f"more than {MAX_PLACEHOLDERS} placeholders")
        if isinstance(part, str):
            literal.append(part)
            continue
        if any(literal):
            parts.append("".join(literal))
        literal = []
        parts.append(part)
    if any(literal):
        parts.append("".join(literal))
    return Template(tuple(parts))


class _Scanner:
    """Reads one placeholder, from just after its ``{{`` to just after its ``}}``."""

    def __init__(self, text: str, position: int) -> None:
        self.text = text
        self.position = position

    def fail(self, reason: str) -> TemplateError:
        return TemplateError(self.position + 1, reason)

    def spaces(self) -> None:
        while self.position < len(self.text) and self.text[self.position] in " \t":
            self.position += 1

    def take(self, token: str) -> bool:
        self.spaces()
        if self.text.startswith(token, self.position):
            self.position += len(token)
            return True
        return False

    def placeholder(self) -> tuple[Part, int]:
        self.spaces()
        if self.text.startswith('"', self.position):
            part: Part = self.string()
        else:
            part = self.reference()
            if self.take("|"):
                self.spaces()
                if not self.take("default"):
                    raise self.fail("expected 'default: \"...\"' after '|' (the only filter)")
                if not self.take(":"):
                    raise self.fail("expected ':' after default")
                self.spaces()
                part = Placeholder(part.key, self.string(), part.column)
        if not self.take(CLOSE):
            found = self.text[self.position : self.position + 1]
            raise self.fail(f"expected '}}}}', found {found!r}" if found else "'{{' is never closed by '}}'")
        return part, self.position

    def reference(self) -> Placeholder:
        start = self.position
        while self.position < len(self.text) and self.text[self.position] in _NAME_CHARS:
            self.position += 1
        word = self.text[start : self.position]
        if word.startswith(PROFILE_SCOPE):
            name = word[len(PROFILE_SCOPE) :]
            if not ATTRIBUTE_NAME.fullmatch(name):
                raise TemplateError(start + 1, f"invalid profile attribute name {name!r}")
            return Placeholder(word, None, start + 1)
        if word.startswith("context."):
            name = word[len("context.") :]
            if not ATTRIBUTE_PATTERN.fullmatch(name) or name.startswith(PROFILE_SCOPE):
                raise TemplateError(start + 1, f"invalid context attribute name {name!r}")
            return Placeholder(name, None, start + 1)
        shown = repr(word) if word else repr(self.text[start : start + 1] or "}}")
        _, dot, name = word.partition(".")
        hint = did_you_mean(word, (f"profile.{name}", f"context.{name}")) if dot and name else ""
        raise TemplateError(start + 1, f'expected profile.<name>, context.<name> or a "string", found {shown}{hint}')

    def string(self) -> str:
        if not self.take('"'):
            raise self.fail('expected a "string"')
        out: list[str] = []
        text = self.text
        while self.position < len(text):
            char = text[self.position]
            self.position += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                escaped = text[self.position : self.position + 1]
                if escaped not in ('"', "\\"):
                    raise self.fail('only \\" and \\\\ are escapes in a string')
                out.append(escaped)
                self.position += 1
                continue
            out.append(char)
        raise self.fail("unterminated string")


# -- an offer's whole content -------------------------------------------------------------------
# The content as loaded, with each templated string replaced by its Template.
Shape = object


@dataclass(frozen=True, slots=True)
class ContentTemplate:
    """An offer's content with placeholders: rendered to JSON per decision. Offers without
    placeholders have none and keep their content serialized once at load time."""

    shape: Shape
    escape: Escape = Escape.NONE
    on_missing: OnMissing = OnMissing.BLANK

    def references(self) -> tuple[Placeholder, ...]:
        found: list[Placeholder] = []
        _walk(self.shape, lambda t: found.extend(t.placeholders))
        return tuple(found)

    def render_json(self, context: Context, *, skip: bool = True) -> str | None:
        """The content as JSON for this context; None: a value is missing and the offer says skip
        (``skip=False``, for a fallback, which is always served: the placeholder is left blank)."""
        on_missing = self.on_missing if skip else OnMissing.BLANK
        try:
            rendered = _render(self.shape, context, self.escape, on_missing)
        except _Skip:
            return None
        return orjson.dumps(rendered, option=orjson.OPT_NON_STR_KEYS).decode()

    def missing(self, context: Context) -> str:
        """The first placeholder without a value nor a default, as written (``profile.<name>``...); "" if none."""
        lacking = [p for p in self.references() if p.default is None and context.get(p.key) is None]
        return lacking[0].reference if lacking else ""


class _Skip(Exception):
    pass


def _render(shape: Shape, context: Context, escape: Escape, on_missing: OnMissing) -> object:
    if isinstance(shape, Template):
        text = shape.render(context, escape, on_missing)
        if text is None:
            raise _Skip
        return text
    if isinstance(shape, Mapping):
        return {k: _render(v, context, escape, on_missing) for k, v in shape.items()}
    if isinstance(shape, list):
        return [_render(v, context, escape, on_missing) for v in shape]
    return shape


def _walk(shape: Shape, visit: Callable[[Template], None]) -> None:
    if isinstance(shape, Template):
        visit(shape)
    elif isinstance(shape, Mapping):
        for value in shape.values():
            _walk(value, visit)
    elif isinstance(shape, list):
        for value in shape:
            _walk(value, visit)
