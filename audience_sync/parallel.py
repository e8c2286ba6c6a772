"""``load --jobs N``: the blocks of one snapshot parsed and written by N processes, switched in by one cutover.

The driver (this process) reads the inputs in blocks (audience_sync.blocks), hands each to a worker
process with what each audience's memberships write (``AudienceFields``), and merges the workers' answers
in block order: errors are reported, and counted, in file order, exactly as by one process. A worker parses
its block, and writes it into the loading generations only when it knows every audience the block names;
otherwise it writes nothing and names the audiences it lacks: the driver begins them (in block order, so
codes are handed out as by one process) and hands the block out again. The driver alone begins audiences,
heartbeats, checks the whole input and cuts over (audience_sync.snapshot) — so a bad line anywhere refuses
the whole snapshot, and a refused, failed or interrupted load is cleaned up as one: nothing of it visible,
the registry as it was. A worker holds one block at a time (a few MiB), whatever the input's size.

The same worker function writes a partition for a Dask or Spark driver (audience_sync.partitions).
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import multiprocessing
import os
import resource
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from audience_sync.blocks import Block, input_blocks, parse_block
from audience_sync.formats import InputOptions
from audience_sync.records import LineError, ParseStats
from audience_sync.registry import HEARTBEAT_EVERY
from audience_sync.report import ErrorReport
from audience_sync.snapshot import AudienceTally, LoadOptions, LoadOutcome, SnapshotLoad
from audience_sync.sources import open_input
from audience_sync.store import SyncStore
from audience_sync.writes import AudienceFields
from inbound_common.keys import KeySpace


@dataclass(frozen=True, slots=True)
class Plan:
    """What a worker needs to write blocks of one snapshot (picklable)."""

    redis_url: str
    key_prefix: str
    input: InputOptions
    batch_size: int
    now: float
    dry_run: bool = False
    selected: frozenset[str] = frozenset()  # --audience: only these (others are skipped)
    fast: bool = True


@dataclass(slots=True)
class BlockResult:
    """A worker's answer for one block: what it counted, or the audiences it lacks (then it wrote nothing)."""

    needs: list[str] = field(default_factory=list)
    counts: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)  # members, unchanged, exited, expired
    stats: ParseStats = field(default_factory=ParseStats)
    errors: list[LineError] = field(default_factory=list)
    skipped: int = 0
    written: int = 0
    profiles: list[str] | None = None  # the profiles it wrote to (None: too many to list)
    cpu_seconds: float = 0.0
    max_rss_kib: int = 0
    pid: int = 0


class NeedAudiences(Exception):
    def __init__(self, audiences: list[str]) -> None:
        super().__init__(", ".join(audiences))
        self.audiences = audiences


class _Collected(ErrorReport):
    def __init__(self) -> None:
        super().__init__(show=0)
        self.errors: list[LineError] = []

    def add(self, error: LineError) -> None:
        self.errors.append(error)


class _BlockLoad(SnapshotLoad):
    """A worker's part of a snapshot: the driver's audiences, no beginning of its own."""

    def _begin(self, audience_id: str) -> AudienceTally:
        raise NeedAudiences([audience_id])


_STORES: dict[tuple[str, str], SyncStore] = {}


def _store(plan: Plan) -> SyncStore:
    key = (plan.redis_url, plan.key_prefix)
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = SyncStore.from_url(plan.redis_url, KeySpace(plan.key_prefix))
    return store


def write_block(plan: Plan, fields: Mapping[str, AudienceFields], block: Block) -> BlockResult:
    """Parse one block and write its memberships into the loading generations (``fields``: per audience
    begun by the driver); or, when it names an audience not in ``fields``, write nothing and say so."""
    started = time.process_time()
    parsed = parse_block(block.with_data(), plan.input, plan.now, fast=plan.fast)
    if not plan.selected:
        needs = [a for a in parsed.audience_ids if a not in fields]
        if needs:
            return BlockResult(needs=needs)
    report = _Collected()
    options = LoadOptions(input=plan.input, audiences=plan.selected, batch_size=plan.batch_size,
                          dry_run=plan.dry_run, fast=plan.fast)  # fmt: skip
    load = _BlockLoad(_store(plan), options, report)
    load.now = plan.now
    for audience_id, names in fields.items():
        load.tallies[audience_id] = AudienceTally(
            audience_id, new_field=names.new, active_field=names.active, dead_field=names.dead
        )
    try:
        load.take(parsed)
        load.writer.flush()
    finally:
        load.writer.close()
    counts = {a: (t.members, t.unchanged, t.exited, t.expired) for a, t in load.tallies.items() if a in fields}
    profiles = sorted(load.written_profiles) if load.written_profiles is not None else None
    return BlockResult([], counts, load.stats, report.errors, load.skipped, load.written, profiles,
                       time.process_time() - started, peak_rss_kib(), os.getpid())  # fmt: skip


def peak_rss_kib() -> int:
    """This process's peak resident memory (KiB): ``VmHWM``, which starts again at an exec — unlike rusage's
    ``ru_maxrss``, which keeps the forking parent's (a spawned worker would report its parent's)."""
    with contextlib.suppress(OSError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _ignore_interrupts() -> None:
    """Workers finish the block they write; the driver alone is interrupted, and stops handing out blocks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@dataclass(slots=True)
class WorkerUsage:
    cpu_seconds: float = 0.0
    max_rss_kib: dict[int, int] = field(default_factory=dict)  # per worker process: its peak resident set


class DrivenLoad(SnapshotLoad):
    """The driver's part of a snapshot whose blocks or partitions other processes write: it begins the
    audiences, hands out what they write (``plan``, ``fields``), merges their answers in input order, checks
    the whole input and cuts over (or cleans up) once."""

    def __init__(self, store: SyncStore, options: LoadOptions, report: ErrorReport, *, url: str,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(store, options, report, **kwargs)
        self.url = url
        self.usage = WorkerUsage()

    def plan(self) -> Plan:
        return Plan(self.url, self.store.keys.prefix, self.options.input, self.options.batch_size, self.now,
                    self.options.dry_run, self.options.audiences, self.options.fast)  # fmt: skip

    def fields(self) -> dict[str, AudienceFields]:
        return {a: AudienceFields(t.new_field, t.active_field, t.dead_field) for a, t in self.tallies.items()}

    def merge(self, result: BlockResult) -> None:
        """A worker's answer (in input order): its errors reported, its counters added, the profiles it wrote."""
        for error in result.errors:
            self.report.add(error)
        self.stats.add(result.stats)
        self.skipped += result.skipped
        self.written += result.written
        for audience_id, (members, unchanged, exited, expired) in result.counts.items():
            tally = self.tallies[audience_id]
            tally.members += members
            tally.unchanged += unchanged
            tally.exited += exited
            tally.expired += expired
        tracked = self.written_profiles
        if tracked is not None:
            if result.profiles is None:
                self.written_profiles = None
            else:
                tracked.update(result.profiles)
                if len(tracked) > self.track_limit:
                    self.written_profiles = None
        self.usage.cpu_seconds += result.cpu_seconds
        self.usage.max_rss_kib[result.pid] = max(self.usage.max_rss_kib.get(result.pid, 0), result.max_rss_kib)


class ParallelLoad(DrivenLoad):
    """A snapshot load whose blocks are parsed and written by ``jobs`` processes (see the module)."""

    def __init__(self, store: SyncStore, options: LoadOptions, report: ErrorReport, *, url: str, jobs: int,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(store, options, report, url=url, **kwargs)
        self.jobs = jobs

    def run(self, paths: Sequence[str]) -> LoadOutcome:
        started = time.monotonic()
        try:
            self.begin_named()
            plan = self.plan()
            context = multiprocessing.get_context("spawn")
            with futures.ProcessPoolExecutor(self.jobs, mp_context=context, initializer=_ignore_interrupts) as pool:
                try:
                    self._hand_out(pool, plan, self._blocks(paths))
                except BaseException:
                    self.written_profiles = None  # blocks in flight: their profiles are found by SCAN
                    pool.shutdown(wait=True, cancel_futures=True)  # nothing writes while it cleans up
                    raise
            outcome = self.finish()
        finally:
            self.writer.close(failed=True)
            if self.pending_fields:
                self.cleanup = self._clean_up()
        outcome.seconds = time.monotonic() - started
        return outcome

    def _blocks(self, paths: Sequence[str]) -> Iterator[Block]:
        for path in paths:
            with open_input(path, self.options.input.format) as opened:
                progress = self.progress(path, opened.size, opened.position) if self.progress else None
                for block in input_blocks(opened, path, self.options.input):
                    yield block
                    if progress is not None:
                        progress.update(self.written)
                if progress is not None:
                    progress.finish()

    def _hand_out(self, pool: futures.ProcessPoolExecutor, plan: Plan, blocks: Iterator[Block]) -> None:
        """Keep 2 blocks per worker in flight; merge the answers in block order."""
        in_flight: dict[int, tuple[Block, futures.Future[BlockResult]]] = {}
        submitted = merged = 0
        fields = self.fields()
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < 2 * self.jobs:
                block = next(blocks, None)
                if block is None:
                    exhausted = True
                    break
                block = block.as_range()  # a plain file's block is read by the worker
                in_flight[submitted] = (block, pool.submit(write_block, plan, fields, block))
                submitted += 1
            if merged not in in_flight:
                return
            block, future = in_flight[merged]
            while True:
                try:
                    result = future.result(timeout=HEARTBEAT_EVERY)
                    break
                except futures.TimeoutError:
                    self._heartbeat()
            if result.needs:  # begin them, in the block's order, and hand the block out again
                for audience_id in result.needs:
                    if audience_id not in self.tallies:
                        self._begin(audience_id)
                fields = self.fields()
                in_flight[merged] = (block, pool.submit(write_block, plan, fields, block))
                continue
            del in_flight[merged]
            merged += 1
            self.merge(result)
            if time.monotonic() - self._last_heartbeat >= HEARTBEAT_EVERY:
                self._heartbeat()


def snapshot_load(
    store: SyncStore, options: LoadOptions, report: ErrorReport, *, url: str, jobs: int, **kwargs: Any
) -> SnapshotLoad:
    """``load``'s snapshot: in this process (``jobs`` 1) or spread over ``jobs`` processes."""
    if jobs <= 1:
        return SnapshotLoad(store, options, report, **kwargs)
    return ParallelLoad(store, options, report, url=url, jobs=jobs, **kwargs)
