"""Per-stage cost of a decision, from the server's own clock (a debugging aid, off by default).

``DECISION_STAGE_TIMING=1`` in a server's environment, with ``--metrics-port``,
exports ``decision_stage_seconds_total{stage}`` and ``decision_stage_calls_total{stage}``:
the time each stage of Decide took, summed. The decision path marks its stages
with :func:`start` and :func:`lap`, which do nothing but return while no sink is
attached, so the hooks cost a function call when off.

Stages that await (the Redis read, the reservations) measure their wall time:
with several calls in flight it includes the other calls' work done meanwhile.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from time import perf_counter

ENV = "DECISION_STAGE_TIMING"

_sink: Callable[[str, float], None] | None = None


def requested() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def attach(sink: Callable[[str, float], None] | None) -> None:
    """Where laps go (``None``: nowhere, the hooks do nothing)."""
    global _sink
    _sink = sink


def start() -> float:
    return perf_counter() if _sink is not None else 0.0


def lap(stage: str, started: float) -> float:
    """Record the time since ``started`` under ``stage``; returns the start of the next stage."""
    if _sink is None:
        return 0.0
    now = perf_counter()
    _sink(stage, now - started)
    return now
