"""Format detection from the first lines an input parses as: a blank or corrupt first line decides nothing."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audience_sync.formats import Format, InputOptions, detect, parse
from audience_sync.formats.detection import SAMPLE_LINES, sample_lines, vote
from audience_sync.records import Change, LineError, ParseStats
from audience_sync.sources import open_input
from audience_sync.store import SyncStore
from tests.audience_sync.helpers import cli, seen_by_readers, xdm_line

PROFILES = 150


def good_lines(fmt: Format, audience: str = "a") -> list[bytes]:
    """A header (CSV) and PROFILES records of ``audience`` in ``fmt``."""
    if fmt is Format.CSV:
        return [b"profile_id,audience_id", *(f"p{i},{audience}".encode() for i in range(PROFILES))]
    if fmt is Format.NDJSON:
        return [orjson.dumps({"profile_id": f"p{i}", "audience_id": audience}) for i in range(PROFILES)]
    return [xdm_line(f"p{i}", {audience: "realized"}, namespace="CRMID") for i in range(PROFILES)]


# A first line cut short or damaged the way each kind of file gets damaged.
CORRUPT = {
    Format.CSV: b"\xff\xfe\x00\x81 not text",
    Format.NDJSON: b'{"profile_id": "p-cut", "audi',
    Format.XDM: b'{"identityMap": {"CRMID": [{"id": "p-cut"}]}, "segmentMemb',
}


def write(path: Path, lines: list[bytes], compressed: bool) -> Path:
    body = b"".join(line + b"\n" for line in lines)
    path.write_bytes(gzip.compress(body) if compressed else body)
    return path


def read(path: Path) -> tuple[Format, list[Change], list[LineError], ParseStats]:
    stats = ParseStats()
    with open_input(str(path)) as opened:
        items = list(parse(opened.lines, str(path), opened.format, InputOptions(identity_namespaces=("CRMID",)), stats))
    changes = [i for i in items if isinstance(i, Change)]
    return opened.format, changes, [i for i in items if isinstance(i, LineError)], stats


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("fmt", [Format.CSV, Format.NDJSON, Format.XDM])
@pytest.mark.parametrize("first", ["blank", "corrupt"])
def test_a_blank_or_corrupt_first_line_is_one_bad_line_at_most(
    tmp_path: Path, fmt: Format, first: str, compressed: bool
) -> None:
    # No extension: the content decides (a file named .csv is CSV whatever its lines).
    lines = [b"   " if first == "blank" else CORRUPT[fmt], *good_lines(fmt)]
    path = write(tmp_path / ("part-00000.gz" if compressed else "part-00000"), lines, compressed)
    detected, changes, errors, stats = read(path)
    assert detected is fmt
    assert {c.profile_id for c in changes} == {f"p{i}" for i in range(PROFILES)}
    if first == "blank":
        assert (errors, stats.bad) == ([], 0)
    else:
        assert [(e.line, str(e).startswith(f"{path}:1: ")) for e in errors] == [(1, True)]
        assert stats.bad == 1


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_a_mixed_file_is_read_in_its_majority_format_and_the_rest_located(tmp_path: Path, compressed: bool) -> None:
    xdm = good_lines(Format.XDM)
    ndjson = good_lines(Format.NDJSON)
    # Line 1 corrupt, line 2 blank, lines 3 and 5 of other formats, among XDM profiles.
    lines = [CORRUPT[Format.XDM], b"", ndjson[0], xdm[0], b"p1,a", *xdm[1:]]
    path = write(tmp_path / ("mixed.json.gz" if compressed else "mixed.json"), lines, compressed)
    detected, changes, errors, stats = read(path)
    assert detected is Format.XDM
    assert len(changes) == PROFILES
    assert [(e.line, e.reason) for e in errors] == [
        (1, errors[0].reason),
        (3, "identityMap: missing"),
        (5, errors[2].reason),
    ]
    assert all(e.reason.startswith("bad JSON") for e in (errors[0], errors[2]))
    assert (stats.lines, stats.bad) == (PROFILES + 3, 3)


def test_a_load_of_files_in_several_formats_each_with_a_damaged_start(
    store: SyncStore, tmp_path: Path, capsys: Any, redis_url: str
) -> None:
    paths = []
    for fmt, audience in ((Format.CSV, "c"), (Format.NDJSON, "n"), (Format.XDM, "x")):
        lines = [b"", CORRUPT[fmt], *good_lines(fmt, audience)]
        paths.append(str(write(tmp_path / f"{fmt}-export.gz", lines, compressed=True)))
    status, out, err = cli(capsys, "load", *paths, "--identity-namespace", "CRMID", "--redis-url", redis_url)
    assert status == 0, err
    assert [line.split(": ", 1)[0] for line in err.splitlines()] == [f"{p}:2" for p in paths]
    assert f"lines {3 * PROFILES + 3:,}, bad 3 (0.66%)" in out
    assert seen_by_readers(store) == {f"p{i}": {"c", "n", "x"} for i in range(PROFILES)}


def test_detect() -> None:
    assert detect("a.csv.gz", b'{"identityMap": {}}\n') is Format.CSV  # the name says so
    assert detect("a.json", b'{"profile_id": "p"}') is Format.NDJSON
    assert detect("a.json", b"garbage\n") is Format.NDJSON  # a JSON file of bad lines stays JSON
    assert detect("part-0001", b'{"identityMap": {}}') is Format.XDM
    assert detect("part-0001", b"\n\nprofile_id\n1\n2\n") is Format.CSV
    assert detect("-", b"") is Format.CSV


def test_sample_lines_leave_out_a_line_cut_by_the_sample() -> None:
    assert sample_lines(b"a\n\n  \nb\nc-cut") == [b"a", b"b"]
    assert sample_lines(b"only-line-cut") == [b"only-line-cut"]
    assert len(sample_lines(b"x\n" * 100)) == SAMPLE_LINES


@given(
    good=st.integers(min_value=1, max_value=SAMPLE_LINES // 2),
    junk=st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b), max_size=SAMPLE_LINES // 2),
)
def test_a_minority_of_junk_lines_never_changes_the_format(good: int, junk: list[bytes]) -> None:
    """Lines that are not JSON objects vote CSV; XDM or NDJSON lines in the majority always win."""
    junk = [j for j in junk if vote(j) == "csv"][: good - 1] if good > 1 else []
    for fmt in (Format.XDM, Format.NDJSON):
        sample = b"\n".join([*junk, *good_lines(fmt)[:good]]) + b"\n"
        assert detect("part-0001", sample) is fmt
