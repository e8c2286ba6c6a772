"""Name patterns of the rule language (decision/rules/patterns.py): what each accepts and refuses (profile
attribute names agree with the store's: test_profile_attributes.py)."""

from __future__ import annotations

import pytest

from decision.rules.patterns import (
    ATTRIBUTE_PATTERN,
    AUDIENCE_PATTERN,
    ID_PATTERN,
)
from inbound_common.codecs import ATTRIBUTE_NAME


@pytest.mark.parametrize(
    ("pattern", "accepted", "refused"),
    [
        (ID_PATTERN, ["spring-sale", "o_1", "2026.11:vip", "x" * 128], ["", "-a", "a b", "é", "x" * 129]),
        (ATTRIBUTE_PATTERN, ["cart_value", "page.path", "_x"], ["1x", "a b", ""]),
        # AEP segment ids are UUIDs; anything printable without whitespace.
        (AUDIENCE_PATTERN, ["3f2a1c9e-0b7d-4e8f-9a61-2b5c7d8e9f01", "a.b:c", "é"], ["a b", "", "a\tb", "x" * 257]),
        (ATTRIBUTE_NAME, ["tier", "first_name", "_x"], ["tier.x", "1x", "a-b", "x" * 65]),
    ],
)
def test_names(pattern: object, accepted: list[str], refused: list[str]) -> None:
    assert all(pattern.fullmatch(name) for name in accepted)  # type: ignore[attr-defined]
    assert not any(pattern.fullmatch(name) for name in refused)  # type: ignore[attr-defined]
