"""Inputs read in blocks of whole lines, and each block parsed: in columns when the columnar reader can
vouch for it, else line by line.

A block is a few MiB of whole lines (``BLOCK_BYTES``; Parquet: ``BATCH_ROWS`` rows), with the number of
its first line: the memory a load holds is a block's, whatever the file's size, and blocks can be parsed
anywhere (``--jobs``, a Dask worker) and still report ``file:line``. The columnar reader
(``formats/columnar.py``) parses a block with pyarrow's C++ JSON or CSV reader and checks it in columns;
when it cannot vouch for every line of the block (a bad line, a shape it does not handle), the block is
read again line by line by the parsers of ``audience_sync.formats`` — the reference, whose results and
``file:line: reason`` messages are the load's.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from audience_sync.formats import Format, InputOptions, columnar, parse
from audience_sync.formats.csv_rows import CsvOptions, columns_of, ends_a_record, find_header
from audience_sync.formats.parquet_rows import BATCH_ROWS
from audience_sync.memberships import MembershipBlock, from_changes
from audience_sync.records import ParseStats
from audience_sync.sources import Opened

BLOCK_BYTES: Final = 4 << 20
# A CSV block is not cut inside a quoted field (formats.csv_rows.ends_a_record); past this much more, it is.
QUOTED_SLACK: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Block:
    source: str
    format: Format
    first_line: int  # the number of its first line (Parquet: its first row), from 1
    data: bytes = b""  # whole lines of a text input
    rows: tuple[bytes, ...] = ()  # Parquet: rows as JSON objects
    header: tuple[str, ...] | None = None  # CSV: the file's header row, for a block after it
    offset: int = -1  # of a plain file: where ``data`` starts in it (-1: not a plain file)
    length: int = 0  # of a block sent as a range of its file (``data`` empty): how many bytes

    def as_range(self) -> Block:
        """The block without its bytes, which are read again from the file (a worker's copy costs less)."""
        return replace(self, data=b"", length=len(self.data)) if self.offset >= 0 and self.data else self

    def with_data(self) -> Block:
        if self.data or self.length == 0:
            return self
        with open(self.source, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(self.length)
        if len(data) != self.length:
            raise OSError(f"{self.source}: changed while it was read")
        return replace(self, data=data, length=0)


def _csv_options(options: InputOptions) -> CsvOptions:
    return CsvOptions(options.id_column, options.audience_column, options.audience)


def _read(stream: io.BufferedIOBase, size: int, whole: bool) -> bytes:
    """Up to ``size`` bytes: as many as a file has, what a pipe has now (its lines are written as they come)."""
    chunk = stream.read1(size)
    if not whole or not chunk:
        return chunk
    parts, got = [chunk], len(chunk)
    while got < size and (more := stream.read1(size - got)):
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def text_blocks(
    stream: io.BufferedIOBase,
    source: str,
    fmt: Format,
    options: InputOptions,
    size: int = BLOCK_BYTES,
    *,
    plain: bool = False,
) -> Iterator[Block]:
    """The blocks of a text input (plain or decompressed), each ending at a line end; ``plain``: a file read
    as it is (its blocks know their offset)."""
    line = 1
    offset = 0
    rest = b""
    header: tuple[str, ...] | None = None
    first = True
    whole = stream.seekable()
    while True:
        chunk = _read(stream, size, whole)
        if chunk and not chunk.endswith(b"\n"):
            chunk += stream.readline()  # to the end of its last line
        data = rest + chunk if rest else chunk
        if not chunk:
            if data:
                yield Block(source, fmt, line, data, header=header, offset=offset if plain else -1)
            return
        quoted = fmt is Format.CSV and b'"' in data and len(data) < size + QUOTED_SLACK
        if quoted and not ends_a_record(io.BytesIO(data), _csv_options(options)):
            rest = data  # a quoted field still open: read on
            continue
        block, rest = data, b""
        yield Block(source, fmt, line, block, header=header, offset=offset if plain else -1)
        line += block.count(b"\n")
        offset += len(block)
        if first and fmt is Format.CSV:
            found = find_header(io.BytesIO(block), _csv_options(options))
            if found is None or columns_of(found[1], _csv_options(options)).problem:
                # A refused header ends the file (the parser reports it); one that cannot be told from the
                # first block alone (bad lines before it): the rest is one block, read after the first.
                if found is None:
                    remaining = rest + (stream.read() or b"")
                    if remaining:
                        yield Block(source, fmt, line, remaining, header=None, offset=offset if plain else -1)
                return
            header = tuple(found[1])
        first = False


def input_blocks(opened: Opened, source: str, options: InputOptions) -> Iterator[Block]:
    """The blocks of an opened input (sources.open_input)."""
    if opened.stream is None:
        return parquet_blocks(opened.lines, source)
    return text_blocks(opened.stream, source, opened.format, options, plain=opened.plain)


def pipelines(block: MembershipBlock, memberships: int) -> Iterator[tuple[int, int]]:
    """Ranges of a block's entries of about ``memberships`` memberships each (an entry is never split)."""
    offsets = block.offsets
    start = 0
    while start < block.entries:
        stop = int(np.searchsorted(offsets, offsets[start] + memberships, side="left"))
        stop = min(max(stop, start + 1), block.entries)
        yield start, stop
        start = stop


def parquet_blocks(rows: Iterable[bytes], source: str) -> Iterator[Block]:
    line = 1
    iterator = iter(rows)
    while chunk := tuple(itertools.islice(iterator, BATCH_ROWS)):
        yield Block(source, Format.PARQUET, line, rows=chunk)
        line += len(chunk)


def parse_block(block: Block, options: InputOptions, now: float, *, fast: bool = True) -> MembershipBlock:
    """A block's memberships, errors and counters: in columns if the columnar reader vouches for every line,
    else line by line. ``now`` tells expired memberships (a ``validUntil`` at or before it)."""
    if fast and not block.rows:
        parsed = columnar.parse_block(block.data, block.format, options, now, first=block.first_line == 1,
                                      header=block.header)  # fmt: skip
        if parsed is not None:
            return parsed
    return line_by_line(block, options, now)


def line_by_line(block: Block, options: InputOptions, now: float) -> MembershipBlock:
    """The reference reading: each line by the parsers of ``audience_sync.formats``."""
    stats = ParseStats()
    lines: Iterable[bytes] = block.rows if block.rows else io.BytesIO(block.data)
    header = list(block.header) if block.header is not None else None
    items = parse(lines, block.source, block.format, options, stats, start=block.first_line, header=header)
    parsed = from_changes(items, now)
    parsed.stats = stats
    return parsed
