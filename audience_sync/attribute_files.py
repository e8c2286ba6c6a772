"""Profile attributes from files (``audience-sync attributes``): CSV, NDJSON or Parquet, one profile per line.

Which fields become which attributes: ``--attribute SOURCE[:TYPE][=NAME]``
(audience_sync.attribute_mapping). The profile id is in ``--id-column`` (a CSV column, a JSON
member or dotted path); an XDM profile (a line with an ``identityMap``) is written under the
same identities as its memberships: every id listed under each ``--identity-namespace`` it has,
else its primary one. A Parquet row is read as the JSON object of its columns, its nulls left out
(null means absent in Parquet: formats/parquet_rows.py), located as ``file:row N``. A line's event time
is its ``--attribute-time-field`` (alias ``--time-column``; ISO 8601 or epoch seconds) or, without one (or
where it is empty), the file's modification time — its export time: re-reading a file changes nothing
(``unchanged``), and an older export never overwrites what a newer one wrote. The changes are returned in
file and line order, the order they are written in: at equal times the later line wins, and a later run over
an earlier one (attributes.py). Never a membership's ``lastQualificationTime`` unless named. Every line is
read and checked before anything is
written: a file with bad lines writes nothing (errors name ``file:line``).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import IO

import orjson

from audience_sync.attribute_mapping import AttributeSource, from_object, from_row, value_at
from audience_sync.attributes import AttributeChange, AttributeRejected, encode
from audience_sync.formats.parquet_rows import is_parquet, row_lines, without_nulls
from audience_sync.formats.xdm import identities, is_profile
from audience_sync.records import InvalidField, ParseStats, check_profile_id, parse_time
from audience_sync.sources import gunzipped


def _open(path: str) -> IO[str]:
    if path.endswith(".gz"):
        return io.TextIOWrapper(gunzipped(open(path, "rb"), path, owned=True), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _is_csv(path: str) -> bool:
    return path.removesuffix(".gz").lower().endswith((".csv", ".txt"))


def _records(path: str) -> Iterator[tuple[int | str, Mapping[str, object] | str]]:
    """(line number or ``row N``, the record as a mapping, or why the line is not one)."""
    with open(path, "rb") as head:
        parquet = is_parquet(path, head.read(4))
    if parquet:
        try:
            for number, raw in enumerate(row_lines(path), 1):
                yield f"row {number}", without_nulls(orjson.loads(raw))
        except OSError as exc:  # not readable Parquet: a usage error, as for a load
            raise OSError(f"{path}: {exc}") from None
        return
    with _open(path) as handle:
        if _is_csv(path):
            reader = csv.DictReader(handle)
            for row in reader:
                yield reader.line_num, row
            return
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                body = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, f"invalid JSON: {exc}"
                continue
            yield number, body if isinstance(body, dict) else "expected a JSON object"


def read_files(
    paths: Sequence[str],
    sources: Sequence[AttributeSource],
    *,
    id_column: str,
    time_column: str | None,
    identity_namespaces: tuple[str, ...] = (),
    stats: ParseStats | None = None,
) -> tuple[list[AttributeChange], list[str]]:
    """Every line's attribute changes, and the errors (``file:line: reason``) of the lines that have some.

    ``stats``: counts the XDM profiles read and the identities they go under.
    """
    changes: list[AttributeChange] = []
    errors: list[str] = []
    for path in paths:
        modified = os.path.getmtime(path)
        for number, record in _records(path):
            where = f"{path}:{number}"
            if isinstance(record, str):
                errors.append(f"{where}: {record}")
                continue
            profile_ids: list[str] = []  # an XDM profile's
            try:
                raw_time = value_at(record, time_column) if time_column else None
                at = modified if raw_time is None or raw_time == "" else parse_time(raw_time, str(time_column))
                if _is_csv(path):
                    profile_id = check_profile_id(value_at(record, id_column), id_column)
                    found = from_row(sources, profile_id, record, at)  # type: ignore[arg-type]
                elif isinstance(record, dict) and is_profile(record):  # XDM: its memberships' identities
                    profile_ids = identities(record, identity_namespaces)
                    found = [c for p in profile_ids for c in from_object(sources, p, record, at)]
                else:
                    profile_id = check_profile_id(value_at(record, id_column), id_column)
                    found = from_object(sources, profile_id, record, at)
                for change in found:
                    encode(change)  # checked now: nothing is written from a file with bad lines
            except (InvalidField, AttributeRejected) as exc:
                errors.append(f"{where}: {exc}")
                continue
            changes.extend(found)
            if stats is not None and profile_ids:
                stats.profiles += 1
                stats.identities += len(profile_ids)
    return changes, errors
