"""Incremental changes (``apply`` files, ``stream`` entries, ``receive`` pushes): realized/exited on a snapshot.

A change writes or deletes the field ``<code>:<active gen>`` of the profile —
and the same field of a snapshot of that audience being loaded, so that the
change survives its cutover. One script per profile applies its changes in
order and, when a change carries an event time, only if it is not older than
the last one applied to that (profile, audience): replays and late deliveries
do nothing.

``apply_each`` may take attribute changes too (``receive``): a profile's memberships and attributes
are then applied by one script (APPLY_PROFILE), one atomic write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from audience_sync.attributes import AttributeChange, AttributeTally, encode
from audience_sync.lua import CHANGED, SAME, STALE
from audience_sync.records import Change
from audience_sync.registry import DEFAULT_STALE_AFTER, RegistryState
from audience_sync.store import SyncStore
from inbound_common.codecs import AudienceEntry, membership_field

BATCH = 5000  # changes per apply() in write_memberships


def event_wins(stored: str | None, time_ms: int, op: str) -> bool:
    """Whether an event (time in ms, op '+'/'-') applies over the stored ``<time><op>`` — as APPLY_CHANGES decides."""
    if stored is None:
        return True
    stored_time, stored_op = int(stored[:-1]), stored[-1]
    if time_ms != stored_time:
        return time_ms > stored_time
    return stored_op != "-" and stored_op != op


@dataclass(slots=True)
class DeltaTally:
    added: int = 0
    removed: int = 0
    unchanged: int = 0  # already so (a member added again, a non-member removed)
    stale: int = 0  # older than the last event applied
    expired: int = 0  # realized with a validUntil already past: applied as a removal

    def merge(self, other: DeltaTally) -> None:
        self.added += other.added
        self.removed += other.removed
        self.unchanged += other.unchanged
        self.stale += other.stale
        self.expired += other.expired


@dataclass(slots=True)
class DeltaOutcome:
    audiences: dict[str, DeltaTally] = field(default_factory=dict)

    def total(self) -> DeltaTally:
        total = DeltaTally()
        for tally in self.audiences.values():
            total.merge(tally)
        return total


class DeltaApplier:
    """Applies batches of changes; keeps the per-audience tally across batches."""

    def __init__(
        self,
        store: SyncStore,
        *,
        source: str,
        dry_run: bool = False,
        stale_after: float = DEFAULT_STALE_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.source = source
        self.dry_run = dry_run
        self.stale_after = stale_after
        self.clock = clock
        self.outcome = DeltaOutcome()

    def _targets(self, state: RegistryState, audiences: Iterable[str], now: float) -> dict[str, tuple[str, list[str]]]:
        """audience id -> (code, fields to write: the active generation's, then those being loaded).

        A generation being loaded is written to only once marked as such (MARK_PENDING): a load that is
        then not applied knows that fields of it may lie in profiles it never wrote, and does not give
        its generation back. A generation whose load ended meanwhile is not written to.
        """
        targets: dict[str, tuple[str, list[str]]] = {}
        loading: dict[str, list[str]] = {}
        for audience_id in audiences:
            entry: AudienceEntry | None = state.entries.get(audience_id)
            if entry is None:
                if self.dry_run:  # not registered yet: no field to read, a name to tell it apart
                    targets[audience_id] = ("new:" + audience_id, [])
                    continue
                entry = self.store.ensure_audience(audience_id, now=now, source=self.source)
            targets[audience_id] = (str(entry.code), [membership_field(entry.code, entry.generation)])
            fields = [p.field for p in state.loading(audience_id, now, self.stale_after) if p.code == entry.code]
            if fields:
                loading[audience_id] = fields
        if loading and not self.dry_run:
            every = [f for fields in loading.values() for f in fields]
            pending = {f for f, alive in zip(every, self.store.mark_pending(every), strict=True) if alive}
            for audience_id, fields in loading.items():
                targets[audience_id][1].extend(f for f in fields if f in pending)
        elif loading:  # a dry run reads the active generation's field only
            for audience_id, fields in loading.items():
                targets[audience_id][1].extend(fields)
        return targets

    def apply(self, changes: Sequence[Change]) -> DeltaTally:
        """Apply one batch (a few thousand changes); returns its tally (also added to ``outcome``)."""
        return self.apply_each([changes])[0][0]

    def apply_each(
        self, groups: Sequence[Sequence[Change]], attributes: Sequence[Sequence[AttributeChange]] = ()
    ) -> list[tuple[DeltaTally, AttributeTally]]:
        """Apply several groups of changes (pushed requests) as one batch, in order; the tallies of each group.

        ``attributes``: each group's attribute changes (none if empty). A profile with attribute changes
        has its memberships and attributes of the batch applied by one script, atomically (APPLY_PROFILE).
        """
        now = self.clock()
        audiences = {c.audience_id for changes in groups for c in changes}
        targets = self._targets(self.store.registry_state(), audiences, now) if audiences else {}
        batch: dict[str, list[str]] = {}
        # per profile: (audience, op, expired, group) per change
        kinds: dict[str, list[tuple[str, str, bool, int]]] = {}
        for group, changes in enumerate(groups):
            for change in changes:
                code, fields = targets[change.audience_id]
                expired = change.member and change.expires_at is not None and change.expires_at <= now
                op = "+" if change.member and not expired else "-"
                value = "" if change.expires_at is None or op == "-" else str(change.expires_at)
                stamp = "" if change.event_time is None else str(int(change.event_time * 1000))
                args = batch.setdefault(change.profile_id, [])
                args += (code, op, value, stamp, str(len(fields)), *fields)
                kinds.setdefault(change.profile_id, []).append((change.audience_id, op, expired, group))
        pairs: dict[str, list[str]] = {}
        owners: dict[str, list[int]] = {}  # per profile: the group of each attribute pair
        for group, attribute_changes in enumerate(attributes):
            for attribute in attribute_changes:
                pairs.setdefault(attribute.profile_id, []).extend(encode(attribute))
                owners.setdefault(attribute.profile_id, []).append(group)
        if pairs and self.dry_run:
            raise ValueError("a dry run does not simulate attribute writes")
        attribute_results: dict[str, list[int]] = {}
        if self.dry_run:
            results = self._simulate(batch)
        elif pairs:  # one script per profile for both
            profiles = {p: (batch.get(p, []), pairs.get(p, [])) for p in (*batch, *pairs)}
            both = dict(zip(profiles, self.store.apply_profiles(profiles), strict=True))
            results = [both[p][0] for p in batch]
            attribute_results = {p: both[p][1] for p in pairs}
        else:
            results = self.store.apply_changes(batch)
        tallies = [(DeltaTally(), AttributeTally()) for _ in groups]
        member_deltas: dict[str, int] = {}
        for profile_id, outcomes in zip(batch, results, strict=True):
            for (audience_id, op, expired, group), result in zip(kinds[profile_id], outcomes, strict=True):
                per = self.outcome.audiences.setdefault(audience_id, DeltaTally())
                for t in (per, tallies[group][0]):
                    if expired:
                        t.expired += 1
                    if result == STALE:
                        t.stale += 1
                    elif result == SAME:
                        t.unchanged += 1
                    elif op == "+":
                        t.added += 1
                    else:
                        t.removed += 1
                if result == CHANGED:
                    member_deltas[audience_id] = member_deltas.get(audience_id, 0) + (1 if op == "+" else -1)
        for profile_id, answers in attribute_results.items():
            for group, result in zip(owners[profile_id], answers, strict=True):
                tallies[group][1].count(result)
        if not self.dry_run:
            self.store.touch(member_deltas, now=now, source=self.source)
        return tallies

    def _simulate(self, batch: Mapping[str, list[str]]) -> list[list[int]]:
        """What APPLY_CHANGES would answer, from reads only (dry runs)."""
        reads: dict[str, list[str]] = {}
        codes: dict[str, list[str]] = {}
        for profile_id, args in batch.items():
            i = 0
            while i < len(args):
                n = int(args[i + 4])
                if n:
                    reads.setdefault(profile_id, []).append(args[i + 5])
                    codes.setdefault(profile_id, []).append(args[i])
                i += 5 + n
        values = dict(zip(reads, self.store.read_fields(reads), strict=True)) if reads else {}
        times = dict(zip(codes, self.store.read_event_times(codes), strict=True)) if codes else {}
        results: list[list[int]] = []
        for profile_id, args in batch.items():
            present = {
                f: v is not None for f, v in zip(reads.get(profile_id, ()), values.get(profile_id, ()), strict=True)
            }
            stamps = {
                c: (None if v is None else v.decode())
                for c, v in zip(codes.get(profile_id, ()), times.get(profile_id, ()), strict=True)
            }
            out: list[int] = []
            i = 0
            while i < len(args):
                code, op, stamp, n = args[i], args[i + 1], args[i + 3], int(args[i + 4])
                active = args[i + 5] if n else code
                if stamp and not event_wins(stamps.get(code), int(stamp), op):
                    out.append(STALE)
                else:
                    if stamp:
                        stamps[code] = stamp + op
                    was = present.get(active, False)
                    present[active] = op == "+"
                    out.append(CHANGED if was != (op == "+") else SAME)
                i += 5 + n
            results.append(out)
        return results


def write_memberships(
    store: SyncStore,
    memberships: Iterable[tuple[str, str, bool, int | None]],
    *,
    source: str,
    clock: Callable[[], float] = time.time,
) -> DeltaTally:
    """Apply (profile, audience, member, expiry) statements as delta batches (the demo, tests, benches):
    new audiences are registered and every write is atomic, as for an ``apply`` file."""
    applier = DeltaApplier(store, source=source, clock=clock)
    batch: list[Change] = []
    for index, (profile_id, audience_id, member, expires_at) in enumerate(memberships):
        batch.append(Change(profile_id, audience_id, member, expires_at, None, index))
        if len(batch) >= BATCH:
            applier.apply(batch)
            batch = []
    if batch:
        applier.apply(batch)
    return applier.outcome.total()
