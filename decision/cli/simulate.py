"""``decision simulate``'s sample file: NDJSON profiles (the simulation itself: decision.core.simulation)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from decision.cli.ndjson import values
from decision.core.simulation import Profile, SampleError, profile_from_json


def read_ndjson(path: str | Path) -> Iterator[Profile]:
    """Profiles from NDJSON, a line each: ``{"profile": "p1", "audiences": ["a"], "context": {"cart_value": 12},
    "profile_attributes": {"tier": "gold"}}``."""
    for where, body in values(path, SampleError):
        yield profile_from_json(body, where)
