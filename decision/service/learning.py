"""The counts learned rankings draw from, refreshed by each worker in the background (no Redis on a decision).

For every ``ranking:`` placement and ``allocation: auto`` experiment of the
active ruleset, the outcome counters of the offers concerned over the last
``days`` days are read every ``interval`` seconds (today's) and every
``past_interval`` seconds (earlier days: only late events change them), in
pipelined HGETALLs; the snapshot replaces the learner's rates at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import date, timedelta

from decision.core.learning import Learner, Rates
from decision.core.outcomes import OutcomeRow
from decision.core.periods import day_span
from decision.rules.types import Allocation, Ruleset
from decision.service.active import ActiveRuleset
from decision.service.outcomes import cancel
from decision.store.outcomes import read_outcomes
from decision.store.profiles import ProfileStore, StoreError

log = logging.getLogger(__name__)

BATCH = 500


def wanted(ruleset: Ruleset, now: float) -> dict[tuple[str, str], None]:
    """The (offer id, day) counters learning needs, in order (empty: nothing learns)."""
    today = date.fromisoformat(day_span(ruleset.time_zone, int(now * 1000))[0])
    found: dict[tuple[str, str], None] = {}

    def add(offer_ids: list[str], days: int) -> None:
        for back in range(days):
            day = (today - timedelta(days=back)).isoformat()
            for offer_id in offer_ids:
                found[(offer_id, day)] = None

    for placement in ruleset.placements.values():
        offers = [o.id for o in ruleset.offers_for(placement.id)]
        if placement.ranking is not None:
            add(offers, placement.ranking.days)
        experiment = placement.experiment
        if experiment is not None and experiment.allocation is Allocation.AUTO and experiment.learning is not None:
            add(offers, experiment.learning.days)
    for offer in ruleset.offers.values():
        experiment = offer.experiment
        if experiment is not None and experiment.allocation is Allocation.AUTO and experiment.learning is not None:
            add([offer.id, *(p.fallback for p in ruleset.placements.values() if p.id in offer.placements)],
                experiment.learning.days)  # fmt: skip
    return found


class LearnedRates:
    """The worker's learner and the background refresh of its counts."""

    def __init__(
        self,
        store: ProfileStore,
        *,
        interval: float = 5.0,
        past_interval: float = 60.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clock = clock  # the decisions' clock: which days are "the last N"
        self.interval = interval
        self.past_interval = past_interval
        self.learner = Learner(Rates(), random.Random(seed))
        self._cache: dict[tuple[str, str], list[OutcomeRow]] = {}
        self._past_read_at = -float("inf")
        self._task: asyncio.Task[None] | None = None

    async def refresh(self, ruleset: Ruleset, now: float | None = None) -> None:
        """Read the counters learning needs (today's always, earlier days when due) and swap the rates in."""
        now = self.clock() if now is None else now
        needed = wanted(ruleset, now)
        if not needed:
            self._cache = {}
            self.learner.rates = Rates()
            return
        today = day_span(ruleset.time_zone, int(now * 1000))[0]
        past_due = time.monotonic() - self._past_read_at >= self.past_interval
        stale = [p for p in needed if p[1] == today or past_due or p not in self._cache]
        fresh: dict[tuple[str, str], list[OutcomeRow]] = {p: [] for p in stale}
        for start in range(0, len(stale), BATCH):
            for row in await read_outcomes(self.store.fast, self.store.keys, stale[start : start + BATCH]):
                fresh[(row.offer_id, row.day)].append(row)
        if past_due:
            self._past_read_at = time.monotonic()
        self._cache = {p: fresh[p] if p in fresh else self._cache[p] for p in needed}
        self.learner.rates = Rates.of(row for rows in self._cache.values() for row in rows)

    def start(self, active: ActiveRuleset) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(active))

    async def _run(self, active: ActiveRuleset) -> None:
        while True:
            try:
                await self.refresh(active.current.ruleset)
            except StoreError as exc:  # the last counts stay in use; the next refresh retries
                log.warning("learned ranking counts not refreshed: %r", exc)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
