"""Opening inputs: plain or gzip (recognised by its magic bytes), a file or ``-`` for stdin; Parquet files."""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import os
import sys
import zlib
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


class _Gunzipped(io.RawIOBase):
    """A gzip stream's decompressed bytes, where a truncated or corrupt stream is an OSError naming the file.

    gzip raises EOFError for a stream cut short (a half-uploaded export) and zlib.error for corrupt deflate
    data, neither an OSError: every read of the input goes through ``readinto`` here, so every reader (the
    format's detection, the blocks, apply's lines, attributes) refuses the file in one located line.
    """

    def __init__(self, fileobj: Any, path: str, *, owned: bool) -> None:
        super().__init__()
        self._gzip = gzip.GzipFile(fileobj=fileobj, mode="rb")
        self._file = fileobj if owned else None
        self._path = path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._gzip.readinto(buffer)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise OSError(f"{self._path}: corrupt gzip: {exc}") from None

    def close(self) -> None:
        self._gzip.close()
        if self._file is not None:
            self._file.close()
        super().close()


def gunzipped(fileobj: Any, path: str, *, owned: bool = False) -> io.BufferedReader:
    """The decompressed bytes of a gzip stream (``fileobj``, closed with them if ``owned``), read through
    ``_Gunzipped``."""
    return io.BufferedReader(_Gunzipped(fileobj, path, owned=owned), BUFFER)


def _located(path: str, rows: Iterator[bytes]) -> Iterator[bytes]:
    """A Parquet file's rows, a corrupt part of it an OSError naming the file."""
    try:
        yield from rows
    except OSError as exc:
        raise OSError(f"{path}: {exc}") from None


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
            rows = _located(path, lines if first is None else itertools.chain([first], lines))
            yield Opened(rows, Format.PARQUET, (lambda: 0) if path == "-" else raw.tell, input_size(path))
            return
        compressed = reader.peek(2)[:2] == GZIP_MAGIC
        stream: Any = gunzipped(reader, path) if compressed else reader
        if fmt is Format.AUTO:
            fmt = detect(path, stream.peek(BUFFER))  # the first lines vote: one corrupt line decides nothing
        position = (lambda: 0) if path == "-" else raw.tell
        yield Opened(iter(stream), fmt, position, input_size(path), stream, plain=not compressed and path != "-")
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()
