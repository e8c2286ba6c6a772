"""A circuit breaker for the Redis reads of decisions.

While Redis is down or hung, every decision would otherwise wait for its own
connection attempt or timeout: calls pile up and all of them spend their
budget. The breaker opens after ``failure_threshold`` consecutive failures;
while open, decisions skip Redis at once (the caller answers fallbacks,
``degraded``). Every ``probe_interval`` seconds one read is let through as a
probe (half-open): its success closes the breaker, so normal answers resume
within about one probe interval of Redis returning.

A probe that never reports back (its call was cancelled) needs no
bookkeeping: the next probe is simply let through one interval later.
``BreakerBoard`` keeps one breaker per Redis shard (Cluster node).
Pure and synchronous: the clock is injected, so behaviour can be tested
without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # open, with a probe out


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 5,
        probe_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        """``on_change(is_open)`` is called when the breaker opens or closes (for logs)."""
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if probe_interval <= 0:
            raise ValueError("probe_interval must be positive")
        self.failure_threshold = failure_threshold
        self.probe_interval = probe_interval
        self._clock = clock
        self._on_change = on_change
        self._open = False
        self._consecutive_failures = 0
        self._next_probe_at = 0.0
        self._probe_out = False
        # Counters for logs and metrics exporters.
        self.opened_total = 0
        self.attempts_total = 0
        self.short_circuited_total = 0

    @property
    def state(self) -> BreakerState:
        if not self._open:
            return BreakerState.CLOSED
        return BreakerState.HALF_OPEN if self._probe_out else BreakerState.OPEN

    @property
    def is_open(self) -> bool:
        return self._open

    def allow(self) -> bool:
        """May this call read Redis? False: answer without it, now."""
        if self._open:
            now = self._clock()
            if now < self._next_probe_at:
                self.short_circuited_total += 1
                return False
            self._next_probe_at = now + self.probe_interval
            self._probe_out = True
        self.attempts_total += 1
        return True

    def record_success(self) -> None:
        self._consecutive_failures = 0
        self._probe_out = False
        if self._open:
            self._open = False
            if self._on_change is not None:
                self._on_change(False)

    def record_failure(self) -> None:
        if self._open:
            # A failed probe, or a call that started before the breaker opened:
            # the next probe is already scheduled.
            self._probe_out = False
            return
        self._consecutive_failures += 1
        if self._consecutive_failures >= self.failure_threshold:
            self._open = True
            self._probe_out = False
            self._next_probe_at = self._clock() + self.probe_interval
            self.opened_total += 1
            if self._on_change is not None:
                self._on_change(True)


class BreakerBoard:
    """One breaker per Redis shard (a Cluster node; a single Redis is one shard "").

    When one master of a Cluster fails, reads of the profiles it served
    short-circuit while the other masters' profiles keep their normal answers.
    A shard appears on first use; after a failover the slot's new owner is a
    new shard, with a closed breaker.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        probe_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.probe_interval = probe_interval
        self._clock = clock
        self._on_change = on_change
        self._breakers: dict[str, CircuitBreaker] = {}

    def for_shard(self, shard: str) -> CircuitBreaker:
        breaker = self._breakers.get(shard)
        if breaker is None:
            notify = self._on_change
            breaker = self._breakers[shard] = CircuitBreaker(
                self.failure_threshold,
                self.probe_interval,
                self._clock,
                None if notify is None else lambda is_open: notify(shard, is_open),
            )
        return breaker

    def open_shards(self) -> list[str]:
        return sorted(shard for shard, breaker in self._breakers.items() if breaker.is_open)

    def by_shard(self) -> dict[str, tuple[bool, int]]:
        """Each shard's breaker: (open, times opened), for metrics."""
        return {shard: (b.is_open, b.opened_total) for shard, b in self._breakers.items()}

    # Totals over the shards, for logs and metrics exporters.
    @property
    def opened_total(self) -> int:
        return sum(b.opened_total for b in self._breakers.values())

    @property
    def attempts_total(self) -> int:
        return sum(b.attempts_total for b in self._breakers.values())

    @property
    def short_circuited_total(self) -> int:
        return sum(b.short_circuited_total for b in self._breakers.values())
