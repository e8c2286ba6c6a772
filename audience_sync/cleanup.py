"""Undoing a snapshot load that was not applied: its generations' fields, then its pending records.

A refused (bad lines, an audience left empty, a conflict) or failed (Redis
error, SIGINT/SIGTERM) load wrote fields of generations no reader counts; it
deletes them before it exits rather than leaving memory to ``gc``:

1. HMGET its pending records: only a generation whose record is still there is
   ours to delete — a missing one was switched in after all (a cutover whose
   reply was lost), taken over by another load, or given up by gc;
2. HDEL its fields from the profiles it wrote (remembered while they are few),
   or from every membership hash by SCAN (a large load);
3. drop the pending records last (servers' field names of ``pending``), and give
   back what beginning the load took (ABANDON_SNAPSHOT): the audience's last
   generation and a new audience's code, so that the registry is as it was — a
   refused load changes nothing in Redis. A load killed during the cleanup
   leaves a record that ``status`` and ``gc`` report.

A generation is not given back when a delta (``apply``, ``stream``, ``receive``)
wrote to it while it loaded (its record says so: MARK_PENDING): those fields lie in
profiles the load never wrote, left to gc, and a reused number could make them
count. Nor when the load wrote snapshot attributes (their fields are named after
the attributes) or could not finish removing its fields; nor a code another
audience took a later one after. Such numbers are never reused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from audience_sync.registry import HEARTBEAT_EVERY
from audience_sync.store import Begun, SyncStore

# Profiles remembered for the cleanup; past this many a failed load finds its fields by SCAN.
TRACKED_PROFILES = 100_000
BATCH = 1000


@dataclass(slots=True)
class Cleanup:
    """What a load that was not applied removed of what it wrote, and what it left to gc."""

    generations: dict[str, str] = field(default_factory=dict)  # pending field `<code>:<gen>` -> audience
    fields_removed: int = 0
    pending_removed: list[str] = field(default_factory=list)
    # Records already gone: switched in after all, taken over, or given up by gc (nothing of them deleted).
    not_found: list[str] = field(default_factory=list)
    # Codes handed out to new audiences for this load (audience -> code): given back, or never reused.
    new_codes: dict[str, int] = field(default_factory=dict)
    scanned: bool = False  # found by SCAN rather than from the profiles remembered
    error: str = ""  # why it could not finish: the rest is left to gc
    # What beginning each generation took (pending field -> BEGIN_SNAPSHOT's answer), to give back.
    begun: dict[str, Begun] = field(default_factory=dict)
    # False when the load wrote fields it cannot name (snapshot attributes): nothing is given back.
    reusable: bool = True
    given_back: list[str] = field(default_factory=list)  # generations given back (pending fields)
    codes_given_back: list[str] = field(default_factory=list)  # audiences whose new code was given back

    @property
    def codes_not_reused(self) -> dict[str, int]:
        return {a: c for a, c in self.new_codes.items() if a not in self.codes_given_back}

    @property
    def left_to_gc(self) -> list[str]:
        return [f for f in self.generations if f not in self.pending_removed and f not in self.not_found]

    def _named(self, fields: Iterable[str]) -> str:
        return ", ".join(f"{f} ({self.generations[f]})" for f in fields)

    def describe(self, stale_after: float) -> str:
        parts = []
        if self.pending_removed:
            parts.append(
                f"removed the {self.fields_removed:,} membership field(s) it had written and the pending "
                f"registration of generation(s) {self._named(self.pending_removed)}"
            )
        if self.not_found:
            parts.append(
                f"left {self._named(self.not_found)} alone: no longer pending (switched in, taken over by "
                "another load, or given up by gc)"
            )
        if self.left_to_gc:
            parts.append(
                f"could not remove {self._named(self.left_to_gc)} ({self.error}): `audience-sync gc` deletes "
                f"their fields and records once their heartbeat is {stale_after:.0f}s old (`status` lists them)"
            )
        kept = [f for f in self.pending_removed if f not in self.given_back]
        if self.given_back and not kept and not self.codes_not_reused:
            parts.append("gave back the generation number(s) and code(s) it took: the registry is as it was")
        elif kept:
            parts.append(
                f"generation(s) {self._named(kept)} are not reused (deltas wrote to them while they loaded, or it "
                "wrote snapshot attributes: gc removes what is left)"
            )
        if self.codes_not_reused:
            codes = ", ".join(f"{code} ({audience})" for audience, code in sorted(self.codes_not_reused.items()))
            parts.append(f"the code(s) handed out to new audiences, {codes}, are not reused")
        return "; ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "fields_removed": self.fields_removed,
            "pending_removed": self.pending_removed,
            "not_found": self.not_found,
            "left_to_gc": self.left_to_gc,
            "given_back": self.given_back,
            "codes_not_reused": self.codes_not_reused,
            "found_by_scan": self.scanned,
            "error": self.error,
        }


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def clean_up(
    store: SyncStore,
    cleanup: Cleanup,
    profiles: Collection[str] | None,
    *,
    heartbeat: Callable[[Sequence[str]], object],
) -> Cleanup:
    """Delete the fields of ``cleanup.generations`` still pending, then their records; never raises.

    ``profiles``: every profile the load sent a write for, or None when it wrote too many to remember.
    """
    fields = list(cleanup.generations)
    try:
        records = store.pending_records(fields)
        ours = [f for f, raw in zip(fields, records, strict=True) if raw is not None]
        cleanup.not_found = [f for f in fields if f not in ours]
        if not ours:
            return cleanup
        membership = store.keys.membership
        keys: Iterable[str | bytes]
        if profiles is None:
            cleanup.scanned = True
            keys = store.scan_membership_keys(count=BATCH)
        else:
            keys = (membership(p) for p in profiles)
        beat = time.monotonic()
        for chunk in _chunks(keys, BATCH):
            cleanup.fields_removed += store.delete_fields([(key, ours) for key in chunk], skip_errors=True)
            if time.monotonic() - beat >= HEARTBEAT_EVERY:  # a long sweep keeps its records alive
                heartbeat(ours)
                beat = time.monotonic()
        if cleanup.reusable and all(f in cleanup.begun for f in ours):
            snapshots = [(f, cleanup.generations[f], cleanup.begun[f]) for f in ours]
            results = dict(zip(ours, store.give_back(snapshots), strict=True))
            cleanup.given_back = [f for f in ours if results[f] & 2]
            cleanup.codes_given_back = [cleanup.generations[f] for f in ours if results[f] & 4]
            cleanup.not_found += [f for f in ours if not results[f]]  # taken over meanwhile
            ours = [f for f in ours if results[f]]
        else:
            store.abandon(ours)
        cleanup.pending_removed = ours
    except Exception as exc:  # Redis down or failing: what is left is reported, for gc
        cleanup.error = f"{type(exc).__name__}: {exc}"
    return cleanup
