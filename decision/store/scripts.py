"""The Lua scripts of the decision service (``decision/store/lua/*.lua``), as source text. Pure.

``times.lua`` holds the counter helpers that ``select.lua`` and
``record_events.lua`` share; it is prepended to them here. Each script touches
only keys of one hash tag (one Redis Cluster slot), all named in KEYS.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

NAMES = ("read_profile", "select", "record_events", "reserve_total", "add_totals", "count_outcomes")
_WITH_TIMES = {"select", "record_events"}


def _text(name: str) -> str:
    return resources.files("decision.store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


@cache
def source(name: str) -> str:
    if name not in NAMES:
        raise KeyError(name)
    body = _text(name)
    return _text("times") + "\n" + body if name in _WITH_TIMES else body


@dataclass(frozen=True, slots=True)
class Script:
    """A script as EVALSHA needs it: its text (to load on NOSCRIPT) and its SHA1."""

    name: str
    text: str
    sha: str

    @classmethod
    def of(cls, name: str, text: str) -> Script:
        return cls(name, text, hashlib.sha1(text.encode()).hexdigest())


@cache
def script(name: str) -> Script:
    """One of ``NAMES``, ready for EVALSHA."""
    return Script.of(name, source(name))
