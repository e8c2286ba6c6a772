"""Proposals counted per worker and added to the outcome counters in the background.

A decision only adds to an in-memory tally (``decision.core.outcomes``; a dry run adds nothing); a
task adds the tally to Redis every ``interval`` (1 s by default), one
pipeline per flush, off every decision's path. What a crash can lose: the
proposals of at most one interval (the tally not yet flushed) of the worker
that crashed. A flush that fails keeps its counts for the next one; a
graceful stop flushes one last time (``RunningServer.stop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from decision.core.outcomes import ProposalTally
from decision.core.types import Decision
from decision.store.profiles import ProfileStore, StoreError

log = logging.getLogger(__name__)

DEFAULT_RETENTION = 90 * 86_400.0  # seconds an outcome day is kept after it ends
FINAL_FLUSH_WAIT = 2.0  # seconds a stopping server waits for Redis to take the last proposal counts


class ProposalCounter:
    """The worker's proposal tally and its background flush."""

    def __init__(self, store: ProfileStore, *, retention: float = DEFAULT_RETENTION, interval: float = 1.0) -> None:
        self.store = store
        self.retention_ms = int(retention * 1000)
        self.interval = interval
        self.tally = ProposalTally()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one flush at a time: the final one waits for a running one

    def add(self, decision: Decision, time_zone: str, now: float) -> None:
        """Tally the decision's proposals; a dry run's are not proposals: never tallied."""
        if not decision.dry_run:
            self.tally.add(decision, time_zone, int(now * 1000))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        """Add what was counted to Redis; on failure keep it for the next flush."""
        async with self._lock:
            counts, ends = self.tally.take()
            if not counts:
                return
            now_ms = int(time.time() * 1000)
            changes = [
                (offer, day, max(ends[day] - now_ms, 0) + self.retention_ms, fields)
                for (offer, day), fields in counts.items()
            ]
            try:
                await self.store.add_outcomes(changes)
            except StoreError as exc:
                log.warning("proposal counts not flushed (kept for the next flush): %r", exc)
                self.tally.give_back(counts, ends)
            except asyncio.CancelledError:  # stopped mid-flush: the final flush adds them (HINCRBY may repeat a
                self.tally.give_back(counts, ends)  # part Redis already applied: errs high by at most one flush)
                raise

    async def stop(self) -> None:
        """Stop the background flush, then flush what is left (a graceful stop loses no count while Redis
        answers; a Redis that does not answer within ``FINAL_FLUSH_WAIT`` s does not hold the stop up)."""
        timeout = FINAL_FLUSH_WAIT
        await cancel(self._task)
        self._task = None
        try:
            async with asyncio.timeout(timeout):
                await self.flush()
        except TimeoutError:
            log.warning("Redis did not take the last proposal counts within %.1f s: they are lost", timeout)


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it is gone (None: nothing to do)."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
