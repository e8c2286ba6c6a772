"""A ruleset text parsed for a test: the ruleset (its problems, if any, in the failure message), or its problems."""

from __future__ import annotations

from decision.rules.loader import parse
from decision.rules.types import Ruleset


def loaded(text: str, file: str = "r.yaml") -> Ruleset:
    ruleset, found = parse(text.encode(), file)
    assert ruleset is not None, [str(p) for p in found]
    return ruleset


def problems(text: str, file: str = "r.yaml") -> list[str]:
    """The problems of a ruleset expected to be invalid, as ``file:line: field: reason``."""
    ruleset, found = parse(text.encode(), file)
    assert ruleset is None, "expected errors"
    return [str(p) for p in found]
