"""Opening inputs: plain or gzip (recognised by its magic bytes), a file or ``-`` for stdin; Parquet files."""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from audience_sync.formats import Format, detect
from audience_sync.formats.parquet_rows import is_parquet, row_lines

GZIP_MAGIC = b"\x1f\x8b"
BUFFER = 1 << 20


@dataclass(frozen=True, slots=True)
class Opened:
    lines: Iterator[bytes]
    format: Format
    # Bytes read so far of the file on disk (compressed bytes for gzip), for the progress line.
    position: Callable[[], int]
    size: int | None
    # The (decompressed) bytes of a text input, for reading it in blocks; None for Parquet.
    stream: io.BufferedIOBase | None = None
    # A file on disk read as it is (not compressed, not stdin): a block is also a range of it.
    plain: bool = False


def input_size(path: str) -> int | None:
    if path == "-":
        return None
    with contextlib.suppress(OSError):
        return os.stat(path).st_size
    return None


@contextlib.contextmanager
def open_input(path: str, fmt: Format = Format.AUTO) -> Iterator[Opened]:
    """Open ``path`` for line reading; OSError when it cannot be read."""
    raw: Any = sys.stdin.buffer if path == "-" else open(path, "rb", buffering=BUFFER)  # noqa: SIM115
    try:
        reader: Any = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, BUFFER)
        if fmt in (Format.AUTO, Format.PARQUET) and (fmt is Format.PARQUET or is_parquet(path, reader.peek(4))):
            # Parquet is read by row groups, from a seekable file: stdin is read into memory first.
            seekable = io.BytesIO(reader.read()) if path == "-" else reader
            try:
                lines = row_lines(seekable)
                first = next(lines, None)  # opens the file: not Parquet fails here, before any parsing
            except OSError as exc:
                raise OSError(f"{path}: {exc}") from None
            rows = lines if first is None else itertools.chain([first], lines)
            yield Opened(rows, Format.PARQUET, (lambda: 0) if path == "-" else raw.tell, input_size(path))
            return
        compressed = reader.peek(2)[:2] == GZIP_MAGIC
        stream: Any = io.BufferedReader(gzip.GzipFile(fileobj=reader, mode="rb"), BUFFER) if compressed else reader
        if fmt is Format.AUTO:
            fmt = detect(path, stream.peek(BUFFER))  # the first lines vote: one corrupt line decides nothing
        position = (lambda: 0) if path == "-" else raw.tell
        yield Opened(iter(stream), fmt, position, input_size(path), stream, plain=not compressed and path != "-")
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()
