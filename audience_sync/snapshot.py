"""``load``: a full snapshot of audiences — afterwards their members are exactly the input's.

How it stays atomic for readers (docs/redis-keys.md):

1. each audience of the snapshot gets a new generation, recorded as *pending*;
2. members are written as ``<code>:<new gen>`` fields while the input is parsed —
   invisible, since readers count only an audience's active generation;
3. when the whole input has been read and checked (bad lines under the
   threshold), one script switches every audience to its new generation, bumps
   the registry version and publishes it.

A load that fails, is refused or killed before step 3 changes nothing readers
see. One that is refused or fails then deletes the fields it wrote and its
pending records, and gives back the generation numbers and codes it took, so
that Redis is as it was (audience_sync.cleanup); one killed by SIGKILL leaves
them to ``gc``, which ``status`` shows. Profiles absent from the new snapshot need no
deletion at the switch: their old generation stops counting.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from audience_sync.blocks import input_blocks, parse_block, pipelines
from audience_sync.cleanup import TRACKED_PROFILES, Cleanup, clean_up
from audience_sync.formats import InputOptions
from audience_sync.memberships import MembershipBlock
from audience_sync.records import ParseStats
from audience_sync.registry import DEFAULT_STALE_AFTER, HEARTBEAT_EVERY, retired_generation
from audience_sync.report import ErrorReport, Progress
from audience_sync.sources import open_input
from audience_sync.store import Begun, CutoverGuard, CutoverItem, SyncStore
from audience_sync.writes import AudienceFields, Counted, packed
from inbound_common.codecs import IDENTITY_NAMESPACES, AudienceEntry, membership_field


class SnapshotRefused(RuntimeError):
    """The snapshot was not applied (nothing readers see changed); the message says why."""

    def __init__(self, message: str, *, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict  # another writer is in the way (exit 4), rather than bad input (exit 1)


@dataclass(slots=True)
class AudienceTally:
    """One audience of a snapshot: its generations and what the load does to it."""

    audience_id: str
    code: int = 0
    generation: int = 0  # the generation being written (0 in a dry run)
    active_field: str = ""  # the generation serving now ('' for a new audience)
    new_field: str = ""
    dead_field: str = ""  # a retired generation's field, dropped while we pass by
    previous_members: int = 0
    members: int = 0
    unchanged: int = 0
    expired: int = 0
    exited: int = 0

    @property
    def added(self) -> int:
        return self.members - self.unchanged

    @property
    def removed(self) -> int:
        # From the registry's member count of the old generation (expiries since are not subtracted).
        return max(0, self.previous_members - self.unchanged)


@dataclass(frozen=True, slots=True)
class LoadOptions:
    input: InputOptions = field(default_factory=InputOptions)
    # The audiences this snapshot replaces: only their records are read, and each is replaced even if
    # the input has no member left for it. Empty: every audience the input names.
    audiences: frozenset[str] = frozenset()
    batch_size: int = 10_000  # memberships per pipeline
    max_bad_ratio: float = 0.01
    allow_empty: bool = False
    dry_run: bool = False
    source: str = ""
    stale_after: float = DEFAULT_STALE_AFTER
    force: bool = False  # take over a snapshot of the same audience that looks alive
    fast: bool = True  # the columnar reader where it vouches for a block (False: every line by the parsers)


@dataclass(slots=True)
class LoadOutcome:
    audiences: dict[str, AudienceTally]
    stats: ParseStats
    skipped: int = 0  # records of audiences outside --audience
    version: int = 0  # the registry version after the cutover (0: not applied)
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def memberships(self) -> int:
        return sum(t.members for t in self.audiences.values())


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` is a process of this host that no longer runs (a killed load)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def bad_ratio(stats: ParseStats) -> float:
    return stats.bad / stats.lines if stats.lines else 0.0


class SnapshotLoad:
    """One run of ``load``: parse every input, write the new generations, switch them in one step."""

    def __init__(
        self,
        store: SyncStore,
        options: LoadOptions,
        report: ErrorReport,
        *,
        progress: Callable[[str, int | None, Callable[[], int]], Progress] | None = None,
        clock: Callable[[], float] = time.time,
        before_cutover: Callable[[Mapping[str, AudienceTally]], None] | None = None,
        guard: CutoverGuard | None = None,
    ) -> None:
        self.store = store
        # ``audience-sync watch``: the cutover checks the watcher's lease and records its files (atomically).
        self.guard = guard
        # Writes what goes with the new generations (profile attributes), after the checks, before the switch.
        self.before_cutover = before_cutover
        self.options = options
        self.report = report
        self.progress = progress
        self.clock = clock
        self.now = clock()
        self.owner = owner_id()
        self.tallies: dict[str, AudienceTally] = {}
        self.pending_fields: list[str] = []
        # Profiles written to, for the cleanup of a load that is not applied (None: too many, found by SCAN).
        self.written_profiles: set[str] | None = set()
        self.track_limit = TRACKED_PROFILES
        self.stats = ParseStats()  # of the inputs read so far
        self.cleanup: Cleanup | None = None  # set when the load was not applied after it began writing
        self.begun: dict[str, Begun] = {}  # per pending field: what beginning it took (given back if not applied)
        self.attributes_written = False  # snapshot attributes (before_cutover): generations not given back
        self.written = 0
        self.skipped = 0
        self._last_heartbeat = time.monotonic()
        self._entries: dict[str, AudienceEntry] = {}
        self.writer = store.snapshot_writer()  # one pipeline in flight while the next block is parsed

    # -- audiences -----------------------------------------------------------------
    def _begin(self, audience_id: str) -> AudienceTally:
        tally = AudienceTally(audience_id)
        if self.options.dry_run:
            entry = self._entries.get(audience_id)
            tally.new_field = "\0" + audience_id  # never written: tells audiences apart in a batch
        else:
            begun = self._begin_taking_over_dead(audience_id)
            entry = begun.entry
            tally.code, tally.generation = begun.code, begun.generation
            tally.new_field = membership_field(begun.code, begun.generation)
            self.pending_fields.append(tally.new_field)
            self.begun[tally.new_field] = begun
        if entry is not None:
            tally.code = entry.code
            tally.active_field = membership_field(entry.code, entry.generation)
            tally.previous_members = entry.members or 0
            retired = retired_generation(entry, self.now)
            if retired is not None and retired != tally.generation:
                tally.dead_field = membership_field(entry.code, retired)
        self.tallies[audience_id] = tally
        return tally

    def _begin_taking_over_dead(self, audience_id: str) -> Begun:
        """A new generation; a pending one of the same audience left by a dead loader is taken over."""
        takeover = ""
        for _ in range(100):  # killed loads may have left several
            begun = self.store.begin_snapshot(
                audience_id,
                now=self.now,
                stale_after=self.options.stale_after,
                source=self.options.source,
                owner=self.owner,
                takeover=takeover,
            )
            if not begun.busy_field:
                return begun
            if not (self.options.force or owner_is_dead(begun.busy_owner)):
                raise SnapshotRefused(
                    f"audience {audience_id!r}: a snapshot is already loading (generation {begun.busy_field}, "
                    f"by {begun.busy_owner}); wait for it, or pass --force if it is dead",
                    conflict=True,
                )
            takeover = begun.busy_field
        raise SnapshotRefused(f"audience {audience_id!r}: too many snapshots loading at once", conflict=True)

    # -- the load ----------------------------------------------------------------------
    def begin_named(self) -> None:
        """Before the input is read: the registry as it is (a dry run), and the audiences --audience names begun."""
        if self.options.dry_run:
            self._entries = dict(self.store.registry_state().entries)
        for audience_id in sorted(self.options.audiences):
            self._begin(audience_id)

    def run(self, paths: Sequence[str]) -> LoadOutcome:
        started = time.monotonic()
        try:
            self.begin_named()
            for path in paths:
                with open_input(path, self.options.input.format) as opened:
                    progress = self.progress(path, opened.size, opened.position) if self.progress else None
                    for block in input_blocks(opened, path, self.options.input):
                        self.take(parse_block(block, self.options.input, self.now, fast=self.options.fast))
                        if progress is not None:
                            progress.update(self.written)
                    if progress is not None:
                        progress.finish()
            outcome = self.finish()
        finally:
            self.writer.close(failed=True)  # an error left it open (its replies unread)
            if self.pending_fields:  # refused, failed or interrupted: remove what it wrote
                self.cleanup = self._clean_up()
        outcome.seconds = time.monotonic() - started
        return outcome

    def finish(self) -> LoadOutcome:
        """Check the whole input's counts, write what goes with the snapshot, and switch it in (not in a dry run)."""
        self.writer.flush()
        self.writer.close()
        outcome = LoadOutcome(self.tallies, self.stats, self.skipped, dry_run=self.options.dry_run)
        self._check(outcome)
        if not self.options.dry_run:
            if self.before_cutover is not None:
                self.attributes_written = True
                self.before_cutover(self.tallies)
            outcome.version = self._cutover(self.stats)
            self.pending_fields = []
        return outcome

    def audience_fields(self, block: MembershipBlock) -> tuple[list[AudienceTally | None], list[AudienceFields]]:
        """The tallies of a block's audiences (new ones begun, in order; None: outside --audience) and what
        their memberships write."""
        tallies: list[AudienceTally | None] = []
        for audience_id in block.audience_ids:
            tally = self.tallies.get(audience_id)
            if tally is None and not self.options.audiences:
                tally = self._begin(audience_id)
            tallies.append(tally)
        fields = [
            AudienceFields(t.new_field, t.active_field, t.dead_field) if t else AudienceFields("") for t in tallies
        ]
        return tallies, fields

    def take(self, block: MembershipBlock) -> None:
        """One parsed block: its errors reported, its counters added, its memberships written (read in a dry
        run) in pipelines of ``batch_size`` memberships."""
        for error in block.errors:
            self.report.add(error)
        self.stats.add(block.stats)
        tallies, fields = self.audience_fields(block)
        kept = np.array([t is not None for t in tallies], dtype=bool)
        if not kept.all():
            self.skipped += int(block.counts()[~kept].sum())
            block = block.keep(kept)
        for i, tally in enumerate(tallies):
            if tally is not None:
                tally.exited += int(block.exited[i])
                tally.expired += int(block.expired[i])
        if self.options.dry_run:
            self._tally_dry(block, tallies)
        else:
            self._write(block, tallies, fields)
        if time.monotonic() - self._last_heartbeat >= HEARTBEAT_EVERY:
            self._heartbeat()

    def _write(
        self, block: MembershipBlock, tallies: Sequence[AudienceTally | None], fields: Sequence[AudienceFields]
    ) -> None:
        step = self.options.batch_size
        resp, ends = (None, None)
        if self.writer.packs and block.entries:  # every pipeline's commands encoded at once
            resp, ends = packed(block, fields, self.store.membership_key)
        for start, stop in pipelines(block, step):
            part = block.slice(start, stop)
            tracked = self.written_profiles
            if tracked is not None:  # before the write: a batch that fails midway may have written some
                tracked.update(part.profiles.to_pylist())
                if len(tracked) > self.track_limit:
                    self.written_profiles = None

            def add(counted: Counted, tallies: Sequence[AudienceTally | None] = tallies) -> None:
                for i, tally in enumerate(tallies):
                    if tally is not None:
                        tally.members += int(counted.members[i])
                        tally.unchanged += int(counted.unchanged[i])

            data = None
            if resp is not None and ends is not None:
                data = memoryview(resp)[int(ends[start - 1]) if start else 0 : int(ends[stop - 1])]
            self.writer.write(part, fields, self.now, add, data)
            self.written += part.memberships
            if time.monotonic() - self._last_heartbeat >= HEARTBEAT_EVERY:
                self._heartbeat()

    def _tally_dry(self, block: MembershipBlock, tallies: Sequence[AudienceTally | None]) -> None:
        """A dry run reads the active generation's fields instead of writing new ones; a (profile, audience)
        repeated in a block counts once."""
        grouped: dict[str, dict[int, None]] = {}
        offsets, audiences = block.offsets.tolist(), block.audiences.tolist()
        for i, profile_id in enumerate(block.profiles.to_pylist()):
            grouped.setdefault(profile_id, {}).update(dict.fromkeys(audiences[offsets[i] : offsets[i + 1]]))
        named: dict[str, list[AudienceTally]] = {
            p: [t for a in found if (t := tallies[a]) is not None] for p, found in grouped.items()
        }
        reads = {p: [t.active_field or t.new_field for t in found] for p, found in named.items()}
        now = self.now
        for profile_id, values in zip(reads, self.store.read_fields(reads), strict=True):
            for tally, active in zip(named[profile_id], values, strict=True):
                tally.members += 1
                if tally.active_field and active is not None and (active == b"" or int(active) > now):
                    tally.unchanged += 1

    def _clean_up(self) -> Cleanup:
        by_field = {t.new_field: t for t in self.tallies.values()}
        cleanup = Cleanup(
            generations={f: by_field[f].audience_id if f in by_field else "?" for f in self.pending_fields},
            new_codes={t.audience_id: t.code for t in by_field.values() if not t.active_field},
            begun=dict(self.begun),
            reusable=not self.attributes_written,
        )

        def heartbeat(fields: Sequence[str]) -> None:
            self.store.heartbeat(fields, now=self.clock(), written=self.written)

        return clean_up(self.store, cleanup, self.written_profiles, heartbeat=heartbeat)

    def _heartbeat(self) -> None:
        alive = self.store.heartbeat(self.pending_fields, now=self.clock(), written=self.written)
        self._last_heartbeat = time.monotonic()
        if alive < len(self.pending_fields):
            raise SnapshotRefused("the pending generation was given up by gc (no heartbeat for too long)")

    def _check(self, outcome: LoadOutcome) -> None:
        ratio = bad_ratio(outcome.stats)
        if ratio > self.options.max_bad_ratio:
            raise SnapshotRefused(
                f"{outcome.stats.bad} bad line(s) of {outcome.stats.lines} ({ratio:.2%}) exceed the threshold "
                f"({self.options.max_bad_ratio:.2%}): snapshot not applied"
            )
        if not self.tallies:
            raise SnapshotRefused("the input names no audience: nothing to load")
        empty = sorted(t.audience_id for t in self.tallies.values() if t.members == 0)
        if empty and not self.options.allow_empty:
            raise SnapshotRefused(
                f"the snapshot leaves {', '.join(empty)} without members; pass --allow-empty if that is right"
            )

    def _cutover(self, stats: ParseStats) -> int:
        items = [
            CutoverItem(t.audience_id, t.code, t.generation, t.members, self.options.source)
            for t in self.tallies.values()
        ]
        self._heartbeat()
        namespaces = list(self.options.input.identity_namespaces)  # [] is written as {} by the script's cjson
        extra = {"lines": stats.lines, "bad_lines": stats.bad, IDENTITY_NAMESPACES: namespaces}
        outcome = self.store.cutover(items, now=self.clock(), extra=extra, guard=self.guard)
        if outcome.refused:
            raise SnapshotRefused(
                f"audience {outcome.audience_id!r}: cutover refused ({outcome.refused}: {outcome.detail}); "
                "nothing was switched",
                conflict=True,
            )
        return outcome.version
