"""Where the CPU of a Decide goes, from the server's own clock (a debugging aid, off by default).

``DECISION_STAGE_TIMING=1`` in a server's environment, with ``--metrics-port``,
exports ``decision_stage_seconds_total{stage}`` and ``decision_stage_calls_total{stage}``:
the CPU time (of the thread deciding: ``time.thread_time``) each stage of Decide took, summed.

A call's stages cover all of its own work in Python, from the request's bytes to the answer's:
the decision path calls :func:`mark` where a stage begins (which ends the one before) and
:func:`done` where the call hands its answer back. While a call waits for Redis, its stage is
put aside (``decision.store.fastpath.waiting`` tells when the commands are written and when the
replies have come: the writing's system call is in the stage, the other calls' work done meanwhile
is not) and taken up again, for that call, when the replies have come. What the server spends
outside every call's stages -- gRPC's core and its Python layer, the event loop, reading and
writing sockets, interceptors, garbage collection started between stages, other threads -- is
the server's CPU time per call (``/proc``) minus the stages' sum: the bench prints that as
"outside any stage" next to the echo's whole CPU per call. Every hook does nothing but return
while no sink is attached.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextvars import ContextVar
from time import thread_time

from decision.store import fastpath

ENV = "DECISION_STAGE_TIMING"

# The stages of Decide, in the order a call goes through them.
ORDER = (
    "request",  # parse the request's bytes, check and convert them
    "prepare",  # the ruleset, request checks, ids, the Redis budget and breaker
    "redis_read",  # the profile read: command written, reply decoded
    "eligibility",  # the engine: fact, assert, fired rules
    "planning",  # ranking, delivery controls, the fill
    "reservations",  # select.lua, total caps: payloads written, replies read
    "render",  # items, tracking tokens signed
    "outcomes",  # the proposal tally
    "response",  # metrics counted, the answer's bytes written
)

_sink: Callable[[str, float], None] | None = None
# The segment running now (no two calls' segments interleave: a call runs until it waits).
_stage: str | None = None
_since = 0.0
# The stage a call put aside while it waits for Redis (per call: each is its own asyncio task).
_waiting_in: ContextVar[str | None] = ContextVar("waiting_in", default=None)


def requested() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def attach(sink: Callable[[str, float], None] | None) -> None:
    """Where stages' CPU times go (``None``: nowhere, the hooks do nothing)."""
    global _sink
    _sink = sink
    fastpath.waiting = None if sink is None else _wait


def mark(stage: str) -> None:
    """The stage ``stage`` begins (the one running ends)."""
    global _stage, _since
    if _sink is None:
        return
    now = thread_time()
    if _stage is not None:
        _sink(_stage, now - _since)
    _stage, _since = stage, now


def done() -> None:
    """The call hands its answer back: its last stage ends."""
    global _stage
    if _sink is None or _stage is None:
        return
    _sink(_stage, thread_time() - _since)
    _stage = None


def _wait(begins: bool) -> None:
    """fastpath's hook: a call waits for Redis (its stage put aside), or its replies came (taken up again)."""
    global _stage
    if begins:
        _waiting_in.set(_stage)
        done()
    else:
        stage = _waiting_in.get()
        if stage is not None:
            mark(stage)
