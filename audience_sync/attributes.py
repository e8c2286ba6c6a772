"""Writes profile attributes (loyalty tier, lifetime value, first name...) into the profile's hash.

An attribute lives beside the profile's memberships, in ``ib:m:{<profile>}``, so a decision
still reads its whole profile in one round trip (layout: inbound_common.codecs and
docs/redis-keys.md). Every value carries its event time, and one script per profile
(``APPLY_ATTRIBUTES``) compares and writes atomically, so deliveries may come in any order and
be repeated:

* a value older than the stored one is skipped (``stale``);
* at equal times **the later arrival wins**: the order in which Redis runs the profile's writes
  (one at a time: a profile's keys share a slot) and, within one call, the order of the changes
  given — never an order of the values themselves;
* a value equal to the stored one (type and payload) is ``unchanged``; its later time is kept.

Where event times come from (a named field, a push's ``timestamp``, its arrival; a file's
modification time) is the readers' business: docs/audience-sync.md, "Event times of attributes".

Two writers, two kinds of field:

* **changes** (deltas, streams, tests): field ``@<name>``; they count at once.
* **a snapshot** of an audience: field ``@<name>/<code>:<generation>`` of the generation the
  load writes. Readers count it only once that generation is active: the snapshot's
  attributes are switched by its cutover, with its memberships, and those of the snapshot it
  replaced stop counting at the same instant (gc removes them with the old memberships).

When both kinds hold a value of one attribute, the one with the later event time counts (a
change at equal times). A removal (value None) is stored as a tombstone with its time, so an
older write arriving later cannot bring the value back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from audience_sync.lua import CHANGED, SAME
from audience_sync.records import InvalidField, check_profile_id
from audience_sync.store import SyncStore
from inbound_common.codecs import InvalidAttribute, attribute_field, attribute_value

BATCH = 500


@dataclass(frozen=True, slots=True)
class AttributeChange:
    """``profile_id``'s attribute ``name`` is ``value`` (None: removed) as of ``event_time`` (epoch s)."""

    profile_id: str
    name: str
    type: str  # string, number, bool, timestamp (epoch seconds) or list (of strings)
    value: object
    event_time: float


@dataclass(slots=True)
class AttributeTally:
    written: int = 0  # a new value (or a removal of a present one)
    unchanged: int = 0  # the value already stored (an identical resend): nothing visible changed
    stale: int = 0  # older than the stored value: skipped

    def count(self, result: int) -> None:
        """Count one value by what the attribute script answered for it (audience_sync.lua)."""
        if result == CHANGED:
            self.written += 1
        elif result == SAME:
            self.unchanged += 1
        else:
            self.stale += 1

    def merge(self, other: AttributeTally) -> None:
        self.written += other.written
        self.unchanged += other.unchanged
        self.stale += other.stale

    def as_json(self) -> dict[str, int]:
        return {"written": self.written, "unchanged": self.unchanged, "stale": self.stale}

    def describe(self) -> str:
        """For a command's output: ``3 attribute values written, 1 unchanged, 2 older than the stored ones skipped``."""
        return (
            f"{self.written:,} attribute values written, {self.unchanged:,} unchanged, "
            f"{self.stale:,} older than the stored ones skipped"
        )


class AttributeRejected(ValueError):
    """A change that cannot be written; nothing of its batch was written. The message names it."""


def encode(change: AttributeChange, snapshot: tuple[int, int] | None = None) -> tuple[str, str]:
    """(field, value) of a change. Raises AttributeRejected naming the profile and attribute."""
    where = f"profile {change.profile_id!r}: attribute {change.name!r}"
    try:
        check_profile_id(change.profile_id, "profile_id")
        if not (math.isfinite(change.event_time) and change.event_time >= 0):
            raise InvalidAttribute(f"event time must be a non-negative epoch time, got {change.event_time!r}")
        event_ms = round(change.event_time * 1000)
        return attribute_field(change.name, snapshot), attribute_value(change.type, change.value, event_ms)
    except (InvalidAttribute, InvalidField) as exc:
        raise AttributeRejected(f"{where}: {exc}") from exc


def write_attributes(
    store: SyncStore,
    changes: Iterable[AttributeChange],
    *,
    snapshot: tuple[int, int] | None = None,
    batch_size: int = BATCH,
) -> AttributeTally:
    """Write changes, each atomically against its profile's stored value: the later event time wins, and at
    equal times the later arrival (a later change of ``changes``, a later call).

    ``snapshot``: the (code, generation) a snapshot load writes (inbound_common.keys): its
    attributes count from its cutover on. Each batch is encoded whole before any of it is
    written: a bad change raises AttributeRejected with nothing of its batch written.
    """
    tally = AttributeTally()
    batch: list[AttributeChange] = []
    for change in changes:
        batch.append(change)
        if len(batch) >= batch_size:
            _write(store, batch, snapshot, tally)
            batch = []
    if batch:
        _write(store, batch, snapshot, tally)
    return tally


def _write(
    store: SyncStore, batch: list[AttributeChange], snapshot: tuple[int, int] | None, tally: AttributeTally
) -> None:
    per_profile: dict[str, list[str]] = {}
    for change in batch:
        per_profile.setdefault(change.profile_id, []).extend(encode(change, snapshot))
    for results in store.apply_attributes(per_profile):
        for result in results:
            tally.count(int(result))
