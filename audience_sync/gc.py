"""``gc``: remove membership fields no reader counts any more, without blocking Redis.

SCAN (never KEYS) walks the membership keys in small batches; HKEYS then an
HDEL of a few fields per key (never a large DEL). A field is garbage when its
generation is not the active one of its audience and can never become so:

* kept: the active generation; the previous one for a grace period after a
  cutover (readers that have not re-read the registry yet); generations of
  snapshots still loading (fresh heartbeat); codes and generations handed out
  after gc read the registry;
* removed: older generations, those of snapshots that failed or were killed,
  audiences no longer in the registry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from audience_sync.registry import (
    DEFAULT_STALE_AFTER,
    PREVIOUS_GENERATION_GRACE,
    RegistryState,
    kept_previous_generation,
)
from audience_sync.store import SyncStore


@dataclass(frozen=True, slots=True)
class KeepRule:
    next_code: int
    active: dict[int, int]  # code -> active generation
    previous: dict[int, int]  # code -> previous generation, within the grace period
    last_handed_out: dict[int, int]  # code -> last generation handed out to a snapshot
    loading: frozenset[tuple[int, int]]  # (code, generation) of live snapshots

    @classmethod
    def build(
        cls,
        state: RegistryState,
        now: float,
        *,
        grace: float = PREVIOUS_GENERATION_GRACE,
        stale_after: float = DEFAULT_STALE_AFTER,
    ) -> KeepRule:
        active = {e.code: e.generation for e in state.entries.values()}
        previous = {}
        for entry in state.entries.values():
            kept = kept_previous_generation(entry, now, grace)
            if kept is not None:
                previous[entry.code] = kept
        last = {
            e.code: max(e.generation, state.last_generation.get(audience_id, 0))
            for audience_id, e in state.entries.items()
        }
        loading = frozenset((p.code, p.generation) for p in state.pending if p.alive(now, stale_after))
        return cls(state.next_code, active, previous, last, loading)

    def is_garbage(self, name: bytes) -> bool:
        if name[:1] == b"@":  # an attribute: a snapshot's (``@<name>/<code>:<gen>``) goes with its generation
            _, snapshot, generation = name.partition(b"/")
            if not snapshot:
                return False  # written by a change: counts whatever the generations
            name = generation
        code_text, sep, gen_text = name.partition(b":")
        if not sep or not code_text.isdigit() or not gen_text.isdigit():
            return False  # not a membership field: not ours to judge
        code, gen = int(code_text), int(gen_text)
        if code > self.next_code or (code, gen) in self.loading:
            return False
        active = self.active.get(code)
        if active is None:
            return True  # an audience gone from the registry, or a new one whose first snapshot never finished
        return not (gen == active or gen == self.previous.get(code) or gen > self.last_handed_out.get(code, active))


def garbage_fields(names: Sequence[bytes], rule: KeepRule) -> list[bytes]:
    return [name for name in names if rule.is_garbage(name)]


@dataclass(slots=True)
class GcOutcome:
    keys_scanned: int = 0
    keys_touched: int = 0
    fields_deleted: int = 0
    pending_dropped: int = 0
    # Records of dead loads dropped (or, in a dry run, that would be): "<code>:<gen> (<audience>, by <owner>)".
    dead_loads: list[str] = field(default_factory=list)


def collect(
    store: SyncStore,
    *,
    batch_size: int = 500,
    grace: float = PREVIOUS_GENERATION_GRACE,
    stale_after: float = DEFAULT_STALE_AFTER,
    dry_run: bool = False,
    clock: Callable[[], float] = time.time,
    on_batch: Callable[[GcOutcome], None] | None = None,
) -> GcOutcome:
    now = clock()
    state = store.registry_state()
    rule = KeepRule.build(state, now, grace=grace, stale_after=stale_after)
    outcome = GcOutcome()

    def sweep(keys: list[bytes]) -> None:
        deletions = []
        for key, names in zip(keys, store.field_names(keys), strict=True):
            garbage = garbage_fields(names, rule)
            if garbage:
                deletions.append((key, garbage))
        outcome.keys_scanned += len(keys)
        outcome.keys_touched += len(deletions)
        if dry_run:
            outcome.fields_deleted += sum(len(g) for _, g in deletions)
        else:
            outcome.fields_deleted += store.delete_fields(deletions)
        if on_batch is not None:
            on_batch(outcome)

    keys: list[bytes] = []
    for key in store.scan_membership_keys(count=batch_size):
        keys.append(key)
        if len(keys) >= batch_size:
            sweep(keys)
            keys = []
    if keys:
        sweep(keys)
    # Records of dead snapshots go last: their fields are gone now.
    for pending in state.pending:
        if pending.alive(now, stale_after):
            continue
        if dry_run or store.drop_pending_if_unchanged(pending.field, pending.raw):
            outcome.pending_dropped += 1
            outcome.dead_loads.append(f"{pending.field} ({pending.audience_id}, by {pending.owner or '?'})")
    return outcome
