"""``stream``: consume membership events from a Redis Stream with a consumer group.

At-least-once: an entry is acknowledged only after its change is written, so a
consumer killed mid-batch leaves its entries pending. On restart it first
re-reads its own pending entries (same consumer name: the host name by
default); entries left by a consumer that does not come back are claimed by
the others with XAUTOCLAIM once idle for ``claim_idle_ms``. Applying an entry
twice, or an older event after a newer one, changes nothing (the per
(profile, audience) event time check in APPLY_CHANGES), so redelivery is safe.
Malformed entries are reported and acknowledged (they would fail forever).

Attribute entries (``events.py``) are written with ``write_attributes`` (later event time wins,
per attribute: redelivery is as safe), after the batch's memberships and before the ack.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from audience_sync.attributes import AttributeChange, AttributeTally, write_attributes
from audience_sync.deltas import DeltaApplier, DeltaTally
from audience_sync.events import parse_event
from audience_sync.records import Change
from audience_sync.report import ErrorReport
from audience_sync.store import SyncStore

Entries = Sequence[tuple[bytes, dict[bytes, bytes] | None]]


@dataclass(frozen=True, slots=True)
class StreamOptions:
    stream: str
    group: str = "audience-sync"
    consumer: str = "audience-sync"
    batch_size: int = 1000
    block_ms: int = 2000
    claim_idle_ms: int = 60_000
    start_id: str = "0"  # where a new group starts: "0" the whole stream, "$" only new entries
    drain: bool = False  # stop once nothing is left to read (batch jobs, tests)
    id_field: str = "profile_id"


@dataclass(slots=True)
class StreamOutcome:
    entries: int = 0
    bad: int = 0
    acked: int = 0
    batches: int = 0
    tally: DeltaTally = field(default_factory=DeltaTally)
    attributes: AttributeTally = field(default_factory=AttributeTally)


class StreamConsumer:
    def __init__(
        self,
        store: SyncStore,
        options: StreamOptions,
        report: ErrorReport,
        *,
        applier: DeltaApplier | None = None,
        on_batch: Callable[[StreamOutcome], None] | None = None,
    ) -> None:
        self.store = store
        self.options = options
        self.report = report
        self.applier = applier or DeltaApplier(store, source=f"stream:{options.stream}")
        self.on_batch = on_batch
        self.outcome = StreamOutcome()

    def process(self, entries: Entries) -> None:
        """Apply a batch, then acknowledge it (never before the write)."""
        if not entries:
            return
        options = self.options
        changes: list[Change] = []
        attributes: list[AttributeChange] = []
        for entry_id, fields in entries:
            parsed = parse_event(entry_id, fields, options.stream, options.id_field)
            if isinstance(parsed, Change):
                changes.append(parsed)
            elif isinstance(parsed, AttributeChange):
                attributes.append(parsed)
            else:
                self.outcome.bad += 1
                self.report.add(parsed)
        if changes:
            self.outcome.tally.merge(self.applier.apply(changes))
        if attributes:
            self.outcome.attributes.merge(write_attributes(self.store, attributes))
        self.outcome.acked += self.store.ack(options.stream, options.group, [entry_id for entry_id, _ in entries])
        self.outcome.entries += len(entries)
        self.outcome.batches += 1
        if self.on_batch is not None:
            self.on_batch(self.outcome)

    def _recover_own(self) -> None:
        """Entries delivered to this consumer name before a crash and never acknowledged."""
        o = self.options
        while entries := self.store.read_group(
            o.stream, o.group, o.consumer, count=o.batch_size, block_ms=None, pending=True
        ):
            self.process(entries)

    def _claim_abandoned(self) -> int:
        o = self.options
        start, claimed = "0-0", 0
        while True:
            start, entries = self.store.autoclaim(
                o.stream, o.group, o.consumer, min_idle_ms=o.claim_idle_ms, start=start, count=o.batch_size
            )
            self.process(entries)
            claimed += len(entries)
            if start == "0-0":
                return claimed

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> StreamOutcome:
        o = self.options
        self.store.ensure_group(o.stream, o.group, o.start_id)
        self._recover_own()
        next_claim = 0.0
        while not should_stop():
            claimed = 0
            if time.monotonic() >= next_claim:
                claimed = self._claim_abandoned()
                next_claim = time.monotonic() + max(o.claim_idle_ms / 1000 / 2, 1.0)
            block = 1 if o.drain else o.block_ms
            entries = self.store.read_group(
                o.stream, o.group, o.consumer, count=o.batch_size, block_ms=block, pending=False
            )
            self.process(entries)
            if o.drain and not entries and not claimed:
                break
        return self.outcome
