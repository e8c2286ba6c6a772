"""Why answers were degraded (the fallbacks, without the profile): counted by reason, logged by cause.

Every degraded answer is counted under one of :data:`REASONS` (a small fixed set: a metric label) and
reported to the metrics when a server exports them. Its cause -- the reason and what failed, e.g.
``count_error`` "OOM command not allowed when used memory > 'maxmemory'" -- is logged at most once per
:data:`LOG_EVERY` seconds: the first answer of a cause is logged at once, the ones that follow within
the interval are counted and logged as one line when it ends ("N more ..."), so a Redis that refuses
every write for an hour writes a line every ten seconds, not one per decision, and never nothing.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from typing import Final, Protocol

log = logging.getLogger("decision.service.degraded")

REASONS: Final = (
    "no_time",  # the call's deadline (or --redis-timeout-ms) left no time for Redis
    "breaker_open",  # the Redis node's reads keep failing: its circuit breaker is open
    "registry_lost",  # Redis lost the audience registry (flushed, or a new empty instance)
    "read_timeout",  # the profile read did not answer in time
    "read_error",  # the profile read failed
    "count_timeout",  # counting the decision (caps, contact policies, total caps) did not answer in time
    "count_error",  # counting the decision failed (e.g. Redis refused the write: OOM, READONLY)
    "rules_error",  # rule evaluation failed
    "internal_error",  # anything else (a bug)
)
LOG_EVERY: Final = 10.0  # seconds: at most one line per cause in that time
MAX_CAUSES: Final = 256  # causes remembered at once (their text may vary: bounded)


class DegradedMetrics(Protocol):
    """Where degraded answers are reported (decision.observe.metrics.Metrics)."""

    def degraded(self, reason: str) -> None: ...


@dataclass(slots=True)
class _Cause:
    quiet_until: float  # loop time: until then, answers of this cause are counted, not logged
    suppressed: int = 0
    flush: asyncio.TimerHandle | None = None


class DegradedAnswers:
    """The degraded answers of one worker: running totals by reason, and their rate-limited log."""

    def __init__(self, every: float = LOG_EVERY) -> None:
        self.every = every
        self.by_reason: collections.Counter[str] = collections.Counter()
        self.metrics: DegradedMetrics | None = None
        self._causes: dict[tuple[str, str], _Cause] = {}

    def record(self, reason: str, cause: str, *, traceback: BaseException | None = None) -> None:
        """One answer degraded for ``reason``; ``cause`` says what failed (logged); ``traceback``: log it too."""
        self.by_reason[reason] += 1
        if self.metrics is not None:
            self.metrics.degraded(reason)
        key = (reason, cause)
        loop = asyncio.get_running_loop()
        now = loop.time()
        entry = self._causes.get(key)
        if entry is None or (now >= entry.quiet_until and entry.flush is None):
            if entry is None and len(self._causes) >= MAX_CAUSES:
                self._forget_quiet(now)
            log.warning("answering with fallbacks (degraded, %s): %s", reason, cause, exc_info=traceback)
            self._causes[key] = _Cause(now + self.every)
            return
        entry.suppressed += 1
        if entry.flush is None:
            entry.flush = loop.call_at(entry.quiet_until, self._flush, key)

    def _flush(self, key: tuple[str, str]) -> None:
        entry = self._causes[key]
        entry.flush = None
        reason, cause = key
        log.warning(
            "answered %d more with fallbacks in the last %g s (degraded, %s): %s",
            entry.suppressed,
            self.every,
            reason,
            cause,
        )
        entry.suppressed = 0
        entry.quiet_until = asyncio.get_running_loop().time() + self.every

    def _forget_quiet(self, now: float) -> None:
        for key, entry in list(self._causes.items()):
            if entry.flush is None and now >= entry.quiet_until:
                del self._causes[key]
        while len(self._causes) >= MAX_CAUSES:  # all still active: drop the oldest (its count is lost from the log)
            key = next(iter(self._causes))
            dropped = self._causes.pop(key)
            if dropped.flush is not None:
                dropped.flush.cancel()

    def stop(self) -> None:
        """Log what is still counted (a stopping server) and cancel the pending lines."""
        for key, entry in self._causes.items():
            if entry.flush is not None:
                entry.flush.cancel()
                self._flush(key)
        self._causes.clear()
