"""Applies the changes of concurrent requests together, with the delta semantics of ``apply``.

Requests hand their (already checked) changes to one writer task and wait for it. The writer takes
every request waiting, up to ``max_changes`` changes, and applies them as one ``DeltaApplier`` batch
(one pipeline: one script per profile), in a thread (redis-py is synchronous). So under
load, many small pushes cost a few round trips together rather than a few each; alone, a push waits
for nothing. A request's changes are never split over two batches: each profile's changes of a request
are applied by one script, atomically; the profiles of a request are not one transaction (see
docs/receive.md). A failed batch fails every request in it; the sender retries, which is safe: a change
is applied only if not older than the last one applied to its (profile, audience).

A request's attribute values go into the same batch: a profile's memberships and attributes are
applied by one script (APPLY_PROFILE: the membership and attribute scripts' bodies run in one call),
so they are one atomic write: a Decide sees both of a push or neither, and a Redis failure leaves
neither half of a profile applied. Attributes are checked by event time as ``write_attributes`` does
(later event time wins, per attribute). Requests are written in the order they were handed over — the
order of their arrival, one batch at a time, a batch's requests in order — so at equal event times
the later arrival wins (docs/audience-sync.md, "Event times of attributes").
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from audience_sync.attributes import AttributeChange, AttributeTally
from audience_sync.deltas import DeltaApplier, DeltaTally
from audience_sync.records import Change

Tallies = tuple[DeltaTally, AttributeTally]


@dataclass(slots=True)
class _Waiting:
    changes: Sequence[Change]
    attributes: Sequence[AttributeChange]
    done: asyncio.Future[Tallies]


class BatchWriter:
    def __init__(self, applier: DeltaApplier, *, max_changes: int = 5000) -> None:
        self.applier = applier
        self.max_changes = max_changes
        self._waiting: list[_Waiting] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audience-sync receive writer")

    async def close(self) -> None:
        """Apply what is waiting, then stop (graceful shutdown: requests in flight are answered first)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def apply(self, changes: Sequence[Change], attributes: Sequence[AttributeChange] = ()) -> Tallies:
        """Apply one request's changes and attribute values; their tallies. Raises what the store raised
        (Redis down: StoreUnavailable)."""
        if not changes and not attributes:
            return DeltaTally(), AttributeTally()
        if self._closing:
            raise RuntimeError("the writer is closed")
        done: asyncio.Future[Tallies] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(changes, attributes, done))
        self._wake.set()
        return await asyncio.shield(done)  # a client that hangs up does not cancel a write half-way

    def _write(self, batch: Sequence[_Waiting]) -> list[Tallies]:
        """The whole batch in one go: one script per profile (a thread: redis-py blocks)."""
        return self.applier.apply_each([w.changes for w in batch], [w.attributes for w in batch])

    def _take(self) -> list[_Waiting]:
        taken: list[_Waiting] = []
        size = 0
        while self._waiting and (not taken or size + _size(self._waiting[0]) <= self.max_changes):
            item = self._waiting.pop(0)
            taken.append(item)
            size += _size(item)
        return taken

    async def _run(self) -> None:
        while not (self._closing and not self._waiting):
            await self._wake.wait()
            self._wake.clear()
            while batch := self._take():
                try:
                    tallies = await asyncio.to_thread(self._write, batch)
                except Exception as exc:
                    for waiting in batch:
                        if not waiting.done.done():
                            waiting.done.set_exception(exc)
                    continue
                for waiting, tally in zip(batch, tallies, strict=True):
                    if not waiting.done.done():
                        waiting.done.set_result(tally)


def _size(waiting: _Waiting) -> int:
    return len(waiting.changes) + len(waiting.attributes)
