"""One block of an input, parsed: the memberships a snapshot writes, in columns (pure, no I/O).

Both readers produce it: the columnar one (``formats/columnar.py``, pyarrow's C++ readers) and the
line-by-line one (``from_changes``, from the parsers' ``Change``s), so that one writer
(``audience_sync.writes``) turns either into Redis commands. A block is a list of *entries*, each one
profile id and the memberships written to its hash in one ``HMGET`` + ``HSET`` (an XDM line's audiences
under one of its identities; a CSV row), in input order; a profile may have several entries (a repeated
row), each written after the one before — the last value wins, and the writer counts a member once.

Memberships that are not written are only counted, per audience: ``exited`` (status exited/remove) and
``expired`` (a ``validUntil`` already past). ``audience_ids`` lists every audience the block names, in
order of first appearance — the order a load begins new audiences in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from audience_sync.records import Change, LineError, ParseStats

Ints = npt.NDArray[np.int64]


def _ints(values: Iterable[int] = ()) -> Ints:
    return np.fromiter(values, dtype=np.int64)


@dataclass(slots=True)
class MembershipBlock:
    audience_ids: list[str] = field(default_factory=list)
    profiles: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))  # one per entry
    offsets: Ints = field(default_factory=lambda: _ints([0]))  # entry i: memberships offsets[i]:offsets[i + 1]
    audiences: Ints = field(default_factory=_ints)  # per membership: index into audience_ids
    values: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))  # "" or expiry epoch seconds
    exited: Ints = field(default_factory=_ints)  # per audience
    expired: Ints = field(default_factory=_ints)  # per audience
    stats: ParseStats = field(default_factory=ParseStats)
    errors: list[LineError] = field(default_factory=list)

    @property
    def entries(self) -> int:
        return len(self.offsets) - 1

    @property
    def memberships(self) -> int:
        return len(self.audiences)

    def counts(self) -> Ints:
        """Per audience: the memberships written, exited and expired (every change the block read of it)."""
        written = np.bincount(self.audiences, minlength=len(self.audience_ids)).astype(np.int64)
        return written + self.exited + self.expired

    def slice(self, start: int, stop: int) -> MembershipBlock:
        """Entries start..stop (a pipeline's worth); the counters stay with the whole block."""
        low, high = int(self.offsets[start]), int(self.offsets[stop])
        return MembershipBlock(
            self.audience_ids,
            self.profiles.slice(start, stop - start),
            self.offsets[start : stop + 1] - low,
            self.audiences[low:high],
            self.values.slice(low, high - low),
        )

    def take(self, entries: Ints) -> MembershipBlock:
        """Only these entries (in this order); the counters stay with the whole block."""
        sizes = np.diff(self.offsets)[entries]
        offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        gather = np.repeat(self.offsets[entries] - offsets[:-1], sizes) + np.arange(offsets[-1])
        return MembershipBlock(
            self.audience_ids,
            self.profiles.take(pa.array(entries)),
            offsets,
            self.audiences[gather],
            self.values.take(pa.array(gather)),
        )

    def keep(self, kept: npt.NDArray[np.bool_]) -> MembershipBlock:
        """Only the memberships of the audiences marked in ``kept`` (per audience); entries left empty go."""
        mask = kept[self.audiences]
        if mask.all():
            return self
        per_entry = np.add.reduceat(mask.astype(np.int64), self.offsets[:-1]) if self.entries else _ints()
        per_entry[np.diff(self.offsets) == 0] = 0
        entries = per_entry > 0
        offsets = np.concatenate(([0], np.cumsum(per_entry[entries])))
        return MembershipBlock(
            self.audience_ids,
            self.profiles.filter(pa.array(entries)),
            offsets.astype(np.int64),
            self.audiences[mask],
            self.values.filter(pa.array(mask)),
            self.exited * kept,
            self.expired * kept,
            self.stats,
            self.errors,
        )


def from_changes(items: Iterable[Change | LineError], now: float) -> MembershipBlock:
    """The block the line-by-line parsers read: a profile's memberships grouped into one entry (the last
    value of a repeated one wins), errors kept in order."""
    index: dict[str, int] = {}
    exited: list[int] = []
    expired: list[int] = []
    grouped: dict[str, dict[int, str]] = {}
    errors: list[LineError] = []
    for item in items:
        if item.__class__ is LineError:
            errors.append(item)
            continue
        profile_id, audience_id, member, expires_at, _, _ = item  # type: ignore[misc]
        at = index.get(audience_id)
        if at is None:
            at = index[audience_id] = len(index)
            exited.append(0)
            expired.append(0)
        if not member:
            exited[at] += 1
            continue
        if expires_at is None:
            value = ""
        elif expires_at <= now:
            expired[at] += 1
            continue
        else:
            value = str(expires_at)
        fields = grouped.get(profile_id)
        if fields is None:
            grouped[profile_id] = {at: value}
        else:
            fields[at] = value  # a repeated (profile, audience): the last value wins
    audiences = [at for fields in grouped.values() for at in fields]
    values = [value for fields in grouped.values() for value in fields.values()]
    offsets = np.cumsum([0, *(len(fields) for fields in grouped.values())], dtype=np.int64)
    return MembershipBlock(
        list(index),
        pa.array(list(grouped), pa.string()),
        offsets,
        _ints(audiences),
        pa.array(values, pa.string()),
        _ints(exited),
        _ints(expired),
        errors=errors,
    )
