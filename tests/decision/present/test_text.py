"""Values shown in a terminal: every character a terminal would obey is written as its escape, nothing else moves."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from decision.present.text import terminal_safe

BIDI = {"\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}


def obeyed(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in BIDI


def test_a_terminal_attack_is_shown_as_text() -> None:
    assert terminal_safe("Bob\x1b]0;owned\x07\x1b[2J") == r"Bob\x1b]0;owned\x07\x1b[2J"
    assert terminal_safe("a\tb\nc\rd\x9b31m\u202eé ü 日本 😀 \\x") == r"a\tb\nc\rd\x9b31m\u202eé ü 日本 😀 \x"


@given(st.text())
def test_nothing_obeyed_is_left_and_the_rest_is_kept(text: str) -> None:
    said = terminal_safe(text)
    assert not any(obeyed(c) for c in said)
    assert terminal_safe(said) == said  # once is enough
    if not any(obeyed(c) for c in text):
        assert said == text
