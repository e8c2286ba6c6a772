"""This server's view of total caps (counts across profiles), kept without a Redis round trip per decision.

Total counters live in keys of their own (one slot per offer), not beside the
profile, so a decision does not read them. Instead each server keeps the
latest counts it has seen — from a background refresh (every
``refresh_interval`` seconds, started by a decision that finds the view stale,
off the decision's path) and from the answers of its own reservations — and
leaves out an offer whose total is used up in the current bucket.

* Counted on **decision**: the view only saves work; the reservation script
  (``reserve_total.lua``) is what enforces the cap, exactly, under any
  concurrency.
* Counted on **events** (impressions, clicks...): the view is all there is,
  so an offer may be proposed for up to ``refresh_interval`` after its total
  is reached, and events about propositions already made still count. Such
  a cap bounds what is *counted*, not what is proposed; use decision counting
  when the limit must hold (e.g. coupon codes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from decision.core.controls import TotalCheck, TotalReached

TotalKey = tuple[str, str, str]  # offer id, what is counted, bucket


def key_of(check: TotalCheck) -> TotalKey:
    return (check.offer_id, check.counted, check.bucket)


@dataclass
class TotalsView:
    refresh_interval: float = 1.0
    counts: dict[TotalKey, int] = field(default_factory=dict)
    # Monotonic time of the last completed refresh (-inf: never).
    refreshed_at: float = float("-inf")
    refreshing: bool = False

    def reached(self, checks: Iterable[TotalCheck]) -> TotalReached | None:
        """The first of the checks whose current bucket is used up, as last seen."""
        for check in checks:
            count = self.counts.get(key_of(check), 0)
            if count >= check.limit:
                return TotalReached(check, count)
        return None

    def copy(self) -> TotalsView:
        """A private copy (a dry run's: what it would reserve is seen by its own planning only)."""
        return TotalsView(self.refresh_interval, dict(self.counts), self.refreshed_at, self.refreshing)

    def record(self, check: TotalCheck, count: int) -> None:
        self.counts[key_of(check)] = count

    def stale(self, monotonic_now: float) -> bool:
        return not self.refreshing and monotonic_now - self.refreshed_at >= self.refresh_interval

    def replace(self, counts: dict[TotalKey, int], monotonic_now: float) -> None:
        """A completed refresh: forget buckets that are over (they are no longer asked about)."""
        self.counts = counts
        self.refreshed_at = monotonic_now
