"""A snapshot written by partitions on a cluster (Dask, Spark), switched in by the driver's one cutover.

A *partition* is a file of one export, or a row group of a Parquet file. ``write_partition`` runs on a
worker: it reads its partition in blocks and writes each into the loading generations exactly as
``load --jobs`` does (audience_sync.parallel.write_block), and answers with what it counted. The driver —
``PartitionedLoad`` here, on any executor whose ``submit`` returns futures (a ``dask.distributed.Client``,
a ``concurrent.futures`` pool) — begins the audiences, hands out the partitions, merges their answers in
partition order, heartbeats, checks the whole export and cuts over once. A partition naming an audience the
driver has not begun stops before writing that block and says so; the driver begins it and hands out the
rest of the partition. A refused export (bad lines over the threshold, an audience left empty), a failed
or lost partition, an interrupted driver: the driver waits until no partition is writing any more, then
removes what the snapshot wrote and gives back its generations — nothing of it is ever visible.

Spark: the same ``write_batches`` runs in ``mapInArrow`` over a DataFrame's partitions (docs/scale.md).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from audience_sync.blocks import Block, input_blocks, parquet_blocks
from audience_sync.formats import Format
from audience_sync.formats.parquet_rows import is_parquet, jsonable, row_lines
from audience_sync.parallel import BlockResult, DrivenLoad, Plan, write_block
from audience_sync.registry import HEARTBEAT_EVERY
from audience_sync.report import ErrorReport
from audience_sync.snapshot import LoadOptions, LoadOutcome
from audience_sync.sources import open_input
from audience_sync.store import SyncStore
from audience_sync.writes import AudienceFields


@dataclass(frozen=True, slots=True)
class Partition:
    path: str  # a path every worker reads (a shared file system, or an fsspec URL it can open)
    row_group: int | None = None  # Parquet: one row group (None: the whole file)


def partitions_of(paths: Sequence[str]) -> list[Partition]:
    """One partition per file; a Parquet file, one per row group."""
    # lazy, start-up (loadtest.startup): pyarrow.parquet ~30 ms that the loads of other formats do not pay
    import pyarrow.parquet as pq

    out: list[Partition] = []
    for path in paths:
        with open(path, "rb") as head:
            parquet = is_parquet(path, head.read(4))
        if parquet:
            out += [Partition(path, i) for i in range(pq.ParquetFile(path).num_row_groups)]
        else:
            out.append(Partition(path))
    return out


def _blocks(partition: Partition, plan: Plan) -> Iterator[Block]:
    if partition.row_group is None:
        with open_input(partition.path, plan.input.format) as opened:
            yield from input_blocks(opened, partition.path, plan.input)
        return
    import pyarrow.parquet as pq  # lazy, as above

    metadata = pq.ParquetFile(partition.path).metadata
    first = 1 + sum(metadata.row_group(i).num_rows for i in range(partition.row_group))
    for block in parquet_blocks(row_lines(partition.path, [partition.row_group]), partition.path):
        yield Block(block.source, Format.PARQUET, block.first_line + first - 1, rows=block.rows)


def _add(total: BlockResult, part: BlockResult, limit: int) -> None:
    for audience_id, counts in part.counts.items():
        before = total.counts.get(audience_id, (0, 0, 0, 0))
        total.counts[audience_id] = tuple(a + b for a, b in zip(before, counts, strict=True))  # type: ignore[assignment]
    total.stats.add(part.stats)
    total.errors += part.errors
    total.skipped += part.skipped
    total.written += part.written
    if total.profiles is not None:
        total.profiles = None if part.profiles is None else sorted({*total.profiles, *part.profiles})
        if total.profiles is not None and len(total.profiles) > limit:
            total.profiles = None
    total.cpu_seconds += part.cpu_seconds
    total.max_rss_kib = max(total.max_rss_kib, part.max_rss_kib)
    total.pid = part.pid


@dataclass(slots=True)
class PartitionResult:
    result: BlockResult
    next_block: int = 0  # when it stopped for audiences: the block to start again from


def write_blocks(plan: Plan, fields: Mapping[str, AudienceFields], blocks: Iterable[Block], start: int = 0,
                 track_limit: int = 100_000) -> PartitionResult:  # fmt: skip
    """Write blocks in turn from block ``start`` on; stop at the first naming an audience not in ``fields``."""
    total = BlockResult(profiles=[])
    for index, block in enumerate(blocks):
        if index < start:
            continue
        part = write_block(plan, fields, block)
        if part.needs:
            total.needs = part.needs
            return PartitionResult(total, index)
        _add(total, part, track_limit)
    return PartitionResult(total)


def write_partition(
    plan: Plan, fields: Mapping[str, AudienceFields], partition: Partition, start: int = 0
) -> PartitionResult:
    """A worker's task: one file or row group of the export, into the loading generations."""
    return write_blocks(plan, fields, _blocks(partition, plan), start)


def write_batches(plan: Plan, fields: Mapping[str, AudienceFields], batches: Iterable[Any], source: str,
                  first_row: int = 1) -> PartitionResult:  # fmt: skip
    """Spark's ``mapInArrow``: a partition's Arrow record batches (rows of either shape, as Parquet's),
    written like a Parquet row group; ``first_row`` numbers its rows in errors."""

    def blocks() -> Iterator[Block]:
        row = first_row
        for batch in batches:
            rows = tuple(orjson.dumps(r, default=jsonable) for r in batch.to_pylist(maps_as_pydicts="lossy"))
            yield Block(source, Format.PARQUET, row, rows=rows)
            row += len(rows)

    return write_blocks(plan, fields, blocks())


class PartitionedLoad(DrivenLoad):
    """The driver of a snapshot whose partitions workers write (see the module)."""

    def __init__(self, store: SyncStore, options: LoadOptions, report: ErrorReport, *, url: str,
                 submit: Callable[..., Any] | None = None, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(store, options, report, url=url, **kwargs)
        self.submit = submit

    def start(self) -> tuple[Plan, dict[str, AudienceFields]]:
        """Begin the named audiences (--audience): what a driver hands its workers."""
        self.begin_named()
        return self.plan(), self.fields()

    def clean_up(self) -> None:
        """A load that was not applied (refused, failed): remove what it wrote, give back its generations."""
        self.writer.close(failed=True)
        if self.pending_fields:
            self.cleanup = self._clean_up()

    def run_partitions(self, partitions: Sequence[Partition]) -> LoadOutcome:
        """Hand out ``partitions`` with ``submit`` (a Dask client's, a pool's), merge, cut over once."""
        if self.submit is None:
            raise ValueError("run_partitions needs an executor's submit")
        started = time.monotonic()
        submitted: list[Any] = []
        try:
            plan, fields = self.start()
            pending = [self.submit(write_partition, plan, fields, p) for p in partitions]
            submitted += pending
            for index, partition in enumerate(partitions):
                future = pending[index]
                while True:
                    answer: PartitionResult = self._wait(future)
                    self.merge(answer.result)
                    if not answer.result.needs:
                        break
                    for audience_id in answer.result.needs:  # begin them, then the rest of the partition
                        if audience_id not in self.tallies:
                            self._begin(audience_id)
                    future = self.submit(write_partition, plan, self.fields(), partition, answer.next_block)
                    submitted.append(future)
            outcome = self.finish()
        except BaseException:
            self.written_profiles = None  # partitions in flight: their profiles are found by SCAN
            for future in submitted:  # nothing may write once the cleanup begins
                with contextlib.suppress(BaseException):
                    self._wait(future)
            raise
        finally:
            self.clean_up()
        outcome.seconds = time.monotonic() - started
        return outcome

    def _wait(self, future: Any) -> Any:
        """A future's result, heartbeating the loading generations while it runs."""
        while True:
            try:
                return future.result(timeout=HEARTBEAT_EVERY)
            except TimeoutError:
                self._heartbeat()
