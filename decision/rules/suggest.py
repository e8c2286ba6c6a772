"""'Did you mean' hints for misspelt names: operators, attributes, audiences, placements, offers."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

# Spellings of the operators from other languages, which string similarity alone gets wrong (gte: gt or ge?).
OPERATOR_ALIASES: Mapping[str, str] = {
    "gte": "ge",
    ">=": "ge",
    "lte": "le",
    "<=": "le",
    ">": "gt",
    "<": "lt",
    "==": "eq",
    "=": "eq",
    "equals": "eq",
    "!=": "ne",
    "neq": "ne",
    "nin": "not_in",
    "startswith": "starts_with",
    "has": "contains",
}


def did_you_mean(name: str, known: Iterable[str], aliases: Mapping[str, str] | None = None, scope: str = "") -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or an empty string when none is close.

    ``scope`` (e.g. ``profile.``) is shown before the name suggested, not compared: a shared prefix
    would make unrelated names look alike."""
    candidates = sorted(set(known))
    alias = (aliases or {}).get(name.lower())
    if alias is not None and alias in candidates:
        return f" (did you mean {scope + alias!r}?)"
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return f" (did you mean {scope + close[0]!r}?)" if close else ""
