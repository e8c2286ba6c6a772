"""CSV: a header row, then one membership per row.

Columns (names from the header; the id column is configurable): the profile id,
``audience_id`` (or the audience named on the command line for a file of one
audience), and optionally ``status`` (realized/existing/add = member,
exited/remove = not), ``valid_until`` and ``event_time`` (ISO 8601 or epoch
seconds). Ids cannot hold line breaks, so a row is one line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from audience_sync.records import (
    Change,
    InvalidField,
    LineError,
    ParseStats,
    check_id,
    check_profile_id,
    check_status,
    expiry,
    parse_time,
)


@dataclass(frozen=True, slots=True)
class CsvOptions:
    id_column: str = "profile_id"
    audience_column: str = "audience_id"
    # The audience of every row when the file has no audience column.
    audience: str | None = None
    delimiter: str = ","


class _Lines:
    """Decodes lines for csv.reader, setting invalid UTF-8 aside with its line number."""

    def __init__(self, lines: Iterable[bytes], start: int = 1) -> None:
        self._lines = lines
        self.number = start - 1
        self.done = False  # the lines ran out
        self.undecodable: list[tuple[int, bytes, UnicodeDecodeError]] = []
        self.consumed: list[int] = []  # numbers of the lines handed to csv.reader for the current row

    def __iter__(self) -> Iterator[str]:
        self.done = False
        for raw in self._lines:
            self.number += 1
            try:
                text = raw.decode()
            except UnicodeDecodeError as exc:
                self.undecodable.append((self.number, raw, exc))
                continue
            self.consumed.append(self.number)
            yield text
        self.done = True  # asked for a line after the last


@dataclass(frozen=True, slots=True)
class Columns:
    """Where a CSV file's fields are, from its header row (-1: no such column)."""

    count: int
    id_at: int
    audience_at: int
    status_at: int
    until_at: int
    time_at: int
    problem: str | None  # why the header cannot be used (the file is refused)


def columns_of(row: list[str], options: CsvOptions) -> Columns:
    header = [name.strip().lstrip("\ufeff") for name in row]
    where = {name: i for i, name in enumerate(header)}
    id_at = where.get(options.id_column, -1)
    audience_at = where.get(options.audience_column, -1)
    problem = None
    if id_at < 0:
        problem = f"header: no column {options.id_column!r} (columns: {', '.join(header)})"
    elif audience_at < 0 and options.audience is None:
        problem = f"header: no column {options.audience_column!r} and no --audience for this file"
    return Columns(
        len(header),
        id_at,
        audience_at,
        where.get("status", -1),
        where.get("valid_until", -1),
        where.get("event_time", -1),
        problem,
    )


def is_blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def ends_a_record(lines: Iterable[bytes], options: CsvOptions) -> bool:
    """Whether the CSV reader, fed ``lines`` from the start of a record, ends them between records — not
    inside a quoted field that goes on after them. A block of a file is cut only there: its rows are then
    the rows the reader reads in the whole file."""
    feed = _Lines(lines)
    reader = csv.reader(feed, delimiter=options.delimiter, strict=True)
    while True:
        try:
            next(reader)
        except StopIteration:
            return True
        except csv.Error:
            if feed.done:  # the lines ran out inside a quoted field
                return False


def find_header(lines: Iterable[bytes], options: CsvOptions) -> tuple[int, list[str]] | None:
    """The number of the line that ends a CSV file's header row, and the row: the first row that is not
    blank. None when it cannot be told from ``lines`` alone (a bad line before it, or no row)."""
    feed = _Lines(lines)
    reader = csv.reader(feed, delimiter=options.delimiter, strict=True)
    try:
        for row in reader:
            if feed.undecodable:
                return None
            if not is_blank(row):
                return feed.number, row
    except csv.Error:
        return None
    return None


def parse_csv(
    lines: Iterable[bytes],
    source: str,
    options: CsvOptions,
    stats: ParseStats,
    *,
    start: int = 1,
    header: list[str] | None = None,
) -> Iterator[Change | LineError]:
    """``header``: the file's header row, when ``lines`` (from line ``start`` on) come after it."""
    feed = _Lines(lines, start)
    reader = csv.reader(feed, delimiter=options.delimiter, strict=True)
    columns = 0
    id_at = audience_at = status_at = until_at = time_at = -1
    if header is not None:
        found = columns_of(header, options)
        columns, id_at, audience_at = found.count, found.id_at, found.audience_at
        status_at, until_at, time_at = found.status_at, found.until_at, found.time_at
    while True:
        feed.consumed.clear()
        try:
            row = next(reader)
        except StopIteration:
            row = None
        except csv.Error as exc:
            row = []
            stats.lines += 1
            stats.bad += 1
            yield LineError(source, feed.number, f"bad CSV: {exc}")
            continue
        for number, raw, undecodable in feed.undecodable:
            stats.lines += 1
            stats.bad += 1
            yield LineError(source, number, f"invalid UTF-8 at byte offset {undecodable.start}", raw)
        feed.undecodable.clear()
        if row is None:
            return
        line = feed.consumed[0] if feed.consumed else feed.number
        if is_blank(row):
            continue  # blank line
        if header is None:
            header = row
            found = columns_of(row, options)
            columns, id_at, audience_at = found.count, found.id_at, found.audience_at
            status_at, until_at, time_at = found.status_at, found.until_at, found.time_at
            if found.problem:
                stats.lines += 1
                stats.bad += 1
                yield LineError(source, line, found.problem)
                return
            continue
        stats.lines += 1
        if len(feed.consumed) > 1:
            stats.bad += 1
            yield LineError(source, line, "a quoted field spans several lines")
            continue
        if len(row) != columns:
            stats.bad += 1
            yield LineError(source, line, f"expected {columns} columns, got {len(row)}", ",".join(row).encode())
            continue
        try:
            profile_id = check_profile_id(row[id_at], options.id_column)
            audience_id = check_id(row[audience_at], options.audience_column) if audience_at >= 0 else options.audience
            assert audience_id is not None
            member = check_status(row[status_at], "status") if status_at >= 0 and row[status_at] else True
            expires_at = expiry(row[until_at], "valid_until") if until_at >= 0 else None
            event_time = parse_time(row[time_at], "event_time") if time_at >= 0 and row[time_at] else None
        except InvalidField as exc:
            stats.bad += 1
            yield LineError(source, line, str(exc), ",".join(row).encode())
            continue
        yield Change(profile_id, audience_id, member, expires_at, event_time, line)
