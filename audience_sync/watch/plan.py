"""Which files to apply now, and in which order (pure: from a listing, the previous one and the ledger).

* A file is a snapshot or deltas by the first pattern it matches (``--snapshot``/``--deltas`` globs, on
  its path below the prefix); others are ignored.
* It is **ready** when it is complete: unchanged (ETag and size) since the previous poll (``stable``), or
  when a marker file (Spark's ``_SUCCESS``) is in its folder (``marker``).
* The files of one export — same kind, series and export time (naming.py) — are applied together: a
  snapshot split into parts is one snapshot.
* Exports are applied in the order of their export time (from the name, else the file's modification
  time), then series. An export not ready yet holds back every later one: a delta is never applied
  before the snapshot it follows.
* An export is **due** unless every file of it is done (ledger.py: its current version has a final
  outcome). A snapshot older than one already applied of the same series is not applied (a late
  arrival would bring old members back): it is recorded ``superseded``.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from audience_sync.watch.naming import export_name
from audience_sync.watch.record import Record
from audience_sync.watch.storage import StoredFile

SNAPSHOT: Final = "snapshot"
DELTAS: Final = "deltas"
STABLE: Final = "stable"
MARKER: Final = "marker"


@dataclass(frozen=True, slots=True)
class Rules:
    snapshot: Sequence[str] = ()
    deltas: Sequence[str] = ()
    ready: str = STABLE
    marker: str = "_SUCCESS"

    def kind(self, relative: str) -> str | None:
        if posixpath.basename(relative) == self.marker:
            return None
        if any(fnmatch.fnmatchcase(relative, pattern) for pattern in self.snapshot):
            return SNAPSHOT
        if any(fnmatch.fnmatchcase(relative, pattern) for pattern in self.deltas):
            return DELTAS
        return None


@dataclass(frozen=True, slots=True)
class Export:
    """The files of one export, applied together."""

    kind: str
    series: str
    time: float
    files: tuple[StoredFile, ...]

    @property
    def key(self) -> tuple[float, str, int]:
        return (self.time, self.series, 0 if self.kind == SNAPSHOT else 1)  # a full export before its deltas

    @property
    def name(self) -> str:
        return ", ".join(f.url for f in self.files)


@dataclass(slots=True)
class Plan:
    due: list[Export] = field(default_factory=list)  # ready, in order
    superseded: list[Export] = field(default_factory=list)
    waiting: list[Export] = field(default_factory=list)  # not complete yet, and what they hold back
    done: int = 0  # files already applied, refused or superseded in their current version


def _done(stored: StoredFile, record: Record | None) -> bool:
    return record is not None and record.final and record.version == stored.version


def make_plan(
    listing: Sequence[StoredFile],
    previous: Mapping[str, str],
    ledger: Mapping[str, Record],
    rules: Rules,
) -> Plan:
    """``previous``: path -> version at the previous poll (``stable``)."""
    marked = {posixpath.dirname(f.relative) for f in listing if posixpath.basename(f.relative) == rules.marker}
    groups: dict[tuple[str, str, float], list[tuple[int, StoredFile]]] = {}
    for stored in listing:
        kind = rules.kind(stored.relative)
        if kind is None:
            continue
        named = export_name(stored.relative)
        time = named.time if named.time is not None else (stored.mtime or 0.0)
        groups.setdefault((kind, named.series, time), []).append((named.part, stored))
    plan = Plan()
    exports = sorted(
        (Export(kind, series, time, tuple(s for _, s in sorted(parts, key=lambda p: (p[0], p[1].relative))))
         for (kind, series, time), parts in groups.items()),
        key=lambda e: e.key,
    )  # fmt: skip
    applied_snapshots: dict[str, float] = {}
    for record in ledger.values():
        if record.kind == SNAPSHOT and record.outcome == "applied":
            applied_snapshots[record.series] = max(applied_snapshots.get(record.series, 0.0), record.export_time)
    holding = False
    for export in exports:
        if all(_done(f, ledger.get(f.path)) for f in export.files):
            plan.done += len(export.files)
            continue
        if holding or not all(_ready(f, previous, marked, rules) for f in export.files):
            holding = True
            plan.waiting.append(export)
            continue
        if export.kind == SNAPSHOT and applied_snapshots.get(export.series, 0.0) > export.time:
            plan.superseded.append(export)
            continue
        plan.due.append(export)
    return plan


def forgotten(listing: Sequence[StoredFile], ledger: Mapping[str, Record]) -> dict[str, str]:
    """The final records of files no longer listed (path -> version), which the ledger drops so that it stays
    about as large as the listing — except, per series, the latest snapshot applied: what a late, older
    snapshot is found ``superseded`` by, even once its file is gone."""
    listed = {f.path for f in listing}
    latest: dict[str, tuple[float, str]] = {}
    for path, record in ledger.items():
        if record.kind == SNAPSHOT and record.outcome == "applied":
            latest[record.series] = max(
                latest.get(record.series, (record.export_time, path)), (record.export_time, path)
            )
    kept = {path for _, path in latest.values()}
    return {p: r.version for p, r in ledger.items() if p not in listed and r.final and p not in kept}


def _ready(stored: StoredFile, previous: Mapping[str, str], marked: set[str], rules: Rules) -> bool:
    if rules.ready == MARKER:
        return posixpath.dirname(stored.relative) in marked
    return previous.get(stored.path) == stored.version
