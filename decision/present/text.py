"""Stored or requested values in text for a terminal: shown as text, never obeyed as the terminal's commands.

A profile id, an attribute value, an audience name or a rendered content is data from outside (an export, a
push, a request): printed raw, ``ESC ] 0 ; ... BEL`` retitles the window and ``ESC [ 2 J`` clears the screen,
a newline forges a line of the output, a right-to-left override reverses what follows. ``terminal_safe`` writes each
such character as its escape (``\\x1b``, ``\\n``, ``\\u202e``): control characters (C0, DEL, C1), the line and
paragraph separators and the bidirectional formatting characters. Every other character, backslash included,
is kept as it is. JSON output needs none of this: its encoder escapes control characters already.
"""

from __future__ import annotations

from typing import Final


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_BIDI: Final = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_ESCAPES: Final = {code: _escape(code) for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *_BIDI)} | {
    0x09: "\\t",
    0x0A: "\\n",
    0x0D: "\\r",
}


def terminal_safe(text: str) -> str:
    """``text`` with every character that would act on a terminal written as its escape (idempotent)."""
    return text.translate(_ESCAPES)
