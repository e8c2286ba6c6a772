"""Opening inputs: a truncated or corrupt gzip or Parquet file is refused in one located line, by every reader of it."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow
import pyarrow.parquet as pq
import pytest

from audience_sync.blocks import input_blocks
from audience_sync.formats import InputOptions
from audience_sync.sources import open_input
from audience_sync.store import SyncStore
from inbound_common.cli import Exit
from tests.audience_sync.helpers import cli, dump

HEADER = b"profile_id,audience_id\n"


def rows(count: int) -> bytes:
    # Distinct ids, so that the compressed file is about as long as its lines and a cut lands where intended.
    return HEADER + b"".join(b"p%d-%08x,vip\n" % (i, (i * 2654435761) % 2**32) for i in range(count))


def truncated(data: bytes, at: float) -> bytes:
    """A half-uploaded export: gzip raises EOFError (not an OSError) when it reaches the end."""
    compressed = gzip.compress(data)
    return compressed[: int(len(compressed) * at)]


def corrupt_deflate(data: bytes) -> bytes:
    """Garbage in the deflate stream just after the 10-byte header: zlib.error (not an OSError)."""
    compressed = bytearray(gzip.compress(data))
    compressed[10:14] = b"\xff\xff\xff\xff"
    return bytes(compressed)


def bad_crc(data: bytes) -> bytes:
    compressed = bytearray(gzip.compress(data))
    compressed[-8] ^= 0xFF  # the trailer's CRC32: gzip.BadGzipFile, an OSError without the file's name
    return bytes(compressed)


def corrupt_parquet(path: Path) -> bytes:
    """A Parquet file whose footer reads but whose last row group is corrupt in a way pyarrow reports as
    ArrowInvalid (a ValueError, not an OSError): bytes of its first data page overwritten, at the first offset
    where that is what pyarrow itself says (found by pyarrow alone, whatever reads it here)."""
    rows = [f"p{i}" for i in range(5_000)]
    pq.write_table(pyarrow.table({"profile_id": rows, "audience_id": ["vip"] * len(rows)}), path,
                   compression="none", row_group_size=1_000)  # fmt: skip
    data = path.read_bytes()
    start = pq.ParquetFile(path).metadata.row_group(4).column(0).data_page_offset
    for offset in range(start, start + 200):
        bad = bytearray(data)
        bad[offset : offset + 8] = b"\xff" * 8
        path.write_bytes(bad)
        try:
            for _ in pq.ParquetFile(path).iter_batches():
                pass
        except pyarrow.ArrowInvalid:
            return bytes(bad)
        except OSError:
            continue
    raise AssertionError("no corruption of the data page that pyarrow calls ArrowInvalid")


BROKEN: dict[str, Callable[[], bytes]] = {
    "cut in the first MiB (the format's detection reads it)": lambda: truncated(rows(2_000), 0.5),
    "cut after the first MiB (the blocks read it)": lambda: truncated(rows(200_000), 0.9),
    "corrupt deflate data": lambda: corrupt_deflate(rows(2_000)),
    "a wrong CRC": lambda: bad_crc(rows(2_000)),
}


@pytest.fixture(params=[*sorted(BROKEN), "Parquet"])
def broken(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "Parquet":
        path = tmp_path / "a_full_20260301000000.parquet"
        path.write_bytes(corrupt_parquet(path))
        return path
    path = tmp_path / "a_full_20260301000000.csv.gz"
    path.write_bytes(BROKEN[request.param]())
    return path


def corrupt(path: Path) -> str:
    return f"{path}: corrupt {'Parquet' if path.suffix == '.parquet' else 'gzip'}: "


def test_reading_a_broken_file_is_an_os_error_naming_it(broken: Path) -> None:
    with pytest.raises(OSError, match=r"corrupt") as raised, open_input(str(broken)) as opened:
        for _ in input_blocks(opened, str(broken), InputOptions()):
            pass
    assert str(raised.value).startswith(corrupt(broken))
    with pytest.raises(OSError, match=r"corrupt"), open_input(str(broken)) as opened:  # apply's line reader
        for _ in opened.lines:
            pass


def test_an_intact_gzip_file_reads_as_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.csv.gz"
    data = rows(200_000)
    path.write_bytes(gzip.compress(data))
    with open_input(str(path)) as opened:
        assert b"".join(block.data for block in input_blocks(opened, str(path), InputOptions())) == data


@pytest.mark.parametrize("command", ["load", "apply"])
def test_load_and_apply_refuse_a_broken_file_in_one_line(
    command: str, broken: Path, store: SyncStore, capsys: Any, redis_url: str
) -> None:
    before = dump(store)
    status, _, err = cli(capsys, command, str(broken), "--redis-url", redis_url)
    assert status == Exit.INVALID
    *cleaned, line = err.splitlines()
    assert line.startswith(f"audience-sync {command}: {corrupt(broken)}")
    # A load that wrote blocks before the broken part says what it removed (SNAPSHOTS in --help), no more.
    assert all(said.startswith("audience-sync load: not applied; removed") for said in cleaned)
    assert dump(store) == before


def test_attributes_refuse_a_broken_file_in_one_line(
    broken: Path, store: SyncStore, capsys: Any, redis_url: str
) -> None:
    status, _, err = cli(capsys, "attributes", str(broken), "--attribute", "audience_id", "--redis-url", redis_url)
    assert status == Exit.INVALID
    (line,) = err.splitlines()
    assert line.startswith(f"audience-sync attributes: {corrupt(broken)}")
