"""HTML that escapes by default: every value put into a template is escaped unless it is already ``Html``.

``html("<td>{}</td>", value)`` escapes ``value`` (``&``, ``<``, ``>``, ``"`` and ``'``: safe in text and in quoted
attribute values); ``Html`` marks markup built by these functions (or by decision.present, which escapes what
it writes), so it is put in as is. ``join`` concatenates pieces, escaping the ones that are not ``Html``. A
page is made only of these: there is no way to put a raw string into a page by mistake.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode


class Html(str):
    """Markup, safe to put into a page as it is."""

    __slots__ = ()


def text(value: object) -> Html:
    """``value`` as text: escaped."""
    return value if isinstance(value, Html) else Html(escape(str(value), quote=True))


class _Escaping(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Html):
            return value if not format_spec else text(format(str(value), format_spec))
        return text(format(value, format_spec))


_FORMATTER = _Escaping()


def html(template: str, /, *args: object, **kwargs: object) -> Html:
    """``template`` (a literal of the code, never data) with its ``{}`` fields filled in, each escaped."""
    return Html(_FORMATTER.format(template, *args, **kwargs))


def join(parts: Iterable[object], separator: str = "") -> Html:
    """The pieces one after the other, each escaped unless it is ``Html``."""
    return Html(text(separator).join(text(part) for part in parts))


def table(headers: Sequence[object], rows: Iterable[Sequence[object]], css: str = "") -> Html:
    """A table: its header row and rows of cells (each escaped unless ``Html``)."""
    head = join(html("<th>{}</th>", h) for h in headers)
    body = join(html("<tr>{}</tr>", join(html("<td>{}</td>", cell) for cell in row)) for row in rows)
    return html('<table class="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', css, head, body)


def link(path: str, label: object, query: Mapping[str, object] | Sequence[tuple[str, object]] = ()) -> Html:
    """A link to a page of the console, its query encoded."""
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    href = path + ("?" + urlencode([(k, str(v)) for k, v in pairs]) if pairs else "")
    return html('<a href="{}">{}</a>', href, label)
