"""Opening inputs: plain or gzip (recognised by its magic bytes), a file or ``-`` for stdin."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from audience_sync.formats import Format, detect

GZIP_MAGIC = b"\x1f\x8b"
BUFFER = 1 << 20


@dataclass(frozen=True, slots=True)
class Opened:
    lines: Iterator[bytes]
    format: Format
    # Bytes read so far of the file on disk (compressed bytes for gzip), for the progress line.
    position: Callable[[], int]
    size: int | None


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
        compressed = reader.peek(2)[:2] == GZIP_MAGIC
        stream: Any = io.BufferedReader(gzip.GzipFile(fileobj=reader, mode="rb"), BUFFER) if compressed else reader
        if fmt is Format.AUTO:
            fmt = detect(path, stream.peek(BUFFER))  # the first lines vote: one corrupt line decides nothing
        position = (lambda: 0) if path == "-" else raw.tell
        yield Opened(iter(stream), fmt, position, input_size(path))
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()
