"""A snapshot's writes of one block, built and counted in columns (pure: no I/O).

Per entry of a ``MembershipBlock`` (a profile id and the memberships written to its hash), the
commands a snapshot sends (docs/redis-keys.md):

* ``HMGET`` of each membership's new field (set already: a repeat, not counted again) and, for an
  audience that has an active generation, its active field (set and not expired: an unchanged member);
* ``HSET`` of the new fields and their values;
* ``HDEL`` of the fields of retired generations, dropped while we pass by.

The commands of a whole pipeline are encoded as RESP with pyarrow compute kernels — no Python per
command — and the ``HMGET`` replies counted with numpy. ``commands`` gives the same commands as
tuples, for a client that routes them (Redis Cluster).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audience_sync.memberships import Ints, MembershipBlock

_NONE: Final = np.array(None, dtype=object)
_EMPTY: Final = np.array(b"", dtype=object)


@dataclass(frozen=True, slots=True)
class AudienceFields:
    """What a snapshot writes, reads and drops for one audience (``<code>:<generation>`` field names)."""

    new: str
    active: str = ""  # the generation serving now ('' for a new audience: nothing to read)
    dead: str = ""  # a retired generation's field ('' none)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each membership's reads are in the replies of a pipeline."""

    replies: int  # replies to read
    hmget: Ints  # per entry: the index of its HMGET reply
    new_at: Ints  # per membership: its new field's index in the HMGET replies laid end to end
    reads_active: Any  # per audience (bool): an active field is read after the new one


@dataclass(slots=True)
class Counted:
    """Per audience index of a block: members written (not repeats) and members unchanged."""

    members: Ints
    unchanged: Ints


def _bulk(values: pa.Array) -> pa.Array:
    """Each string as a RESP bulk string."""
    return pc.binary_join_element_wise("$", pc.cast(pc.binary_length(values), pa.string()), "\r\n", values, "\r\n", "")


def _bulk_bytes(value: str) -> str:
    return f"${len(value.encode())}\r\n{value}\r\n"


def _joined(pieces: pa.Array, offsets: Ints) -> pa.Array:
    """Per entry: its memberships' pieces, concatenated."""
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pieces), "")


def _per_entry(per_membership: Ints, offsets: Ints) -> Ints:
    return np.add.reduceat(per_membership, offsets[:-1]) if len(offsets) > 1 else np.zeros(0, np.int64)


def _text(numbers: Ints) -> pa.Array:
    return pa.array(numbers, pa.int64()).cast(pa.string())


def layout(block: MembershipBlock, fields: Sequence[AudienceFields]) -> Layout:
    reads_active = np.array([bool(f.active) for f in fields], dtype=bool)
    has_dead = np.array([bool(f.dead) for f in fields], dtype=bool)
    reads = 1 + reads_active[block.audiences].astype(np.int64)
    new_at = np.concatenate(([0], np.cumsum(reads)[:-1])).astype(np.int64) if len(reads) else reads
    dead_entries = _per_entry(has_dead[block.audiences].astype(np.int64), block.offsets) > 0
    per_entry = 2 + dead_entries.astype(np.int64)
    hmget = np.concatenate(([0], np.cumsum(per_entry)[:-1])).astype(np.int64) if len(per_entry) else per_entry
    return Layout(int(per_entry.sum()), hmget, new_at, reads_active)


def packed(block: MembershipBlock, fields: Sequence[AudienceFields], key: tuple[str, str]) -> tuple[pa.Buffer, Ints]:
    """The RESP of every entry's HMGET, HSET (and HDEL), in entry order, and where each entry's ends in it;
    ``key`` the membership key's text before and after the profile id (inbound_common.keys)."""
    audiences = pa.array(block.audiences, pa.int64())
    reads = pa.array([_bulk_bytes(f.new) + (_bulk_bytes(f.active) if f.active else "") for f in fields], pa.string())
    news = pa.array([_bulk_bytes(f.new) for f in fields], pa.string())
    deads = pa.array([_bulk_bytes(f.dead) if f.dead else "" for f in fields], pa.string())
    reads_count = np.array([1 + bool(f.active) for f in fields], dtype=np.int64)[block.audiences]
    dead_count = np.array([bool(f.dead) for f in fields], dtype=np.int64)[block.audiences]
    offsets = block.offsets
    keys = _bulk(pc.binary_join_element_wise(key[0], block.profiles, key[1], ""))
    n_reads = _per_entry(reads_count, offsets)
    n_pairs = np.diff(offsets)
    n_dead = _per_entry(dead_count, offsets)
    hmget = pc.binary_join_element_wise(
        "*", _text(2 + n_reads), "\r\n$5\r\nHMGET\r\n", keys, _joined(reads.take(audiences), offsets), ""
    )
    if pc.all(pc.equal(pc.binary_length(block.values), 0)).as_py() is not False:  # no expiry: pieces per audience
        pairs = pa.array([_bulk_bytes(f.new) + "$0\r\n\r\n" for f in fields], pa.string()).take(audiences)
    else:
        pairs = pc.binary_join_element_wise(news.take(audiences), _bulk(block.values), "")
    hset = pc.binary_join_element_wise(
        "*", _text(2 + 2 * n_pairs), "\r\n$4\r\nHSET\r\n", keys, _joined(pairs, offsets), ""
    )
    parts = [hmget, hset]
    if n_dead.any():
        hdel = pc.binary_join_element_wise(
            "*", _text(2 + n_dead), "\r\n$4\r\nHDEL\r\n", keys, _joined(deads.take(audiences), offsets), ""
        )
        parts.append(pc.if_else(pa.array(n_dead > 0), hdel, ""))
    entries = pc.binary_join_element_wise(*parts, "")
    ends = np.cumsum(np.asarray(pc.binary_length(entries)), dtype=np.int64)
    whole = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(entries)], pa.int32()), entries), "")
    return whole[0].as_buffer(), ends


def expected_replies(block: MembershipBlock, fields: Sequence[AudienceFields], nil: bytes) -> bytes | None:
    """The replies of ``packed``'s commands if every new field was unset and every active field set without
    expiry (a first load, or an unchanged one): ``count_as_expected`` then counts the block without reading a
    reply. None when its audiences differ in having an active generation, or it drops retired fields.
    ``nil``: how the connection's protocol writes a null (RESP2 ``$-1``, RESP3 ``_``)."""
    used = {int(a) for a in np.unique(block.audiences)}
    if any(fields[a].dead for a in used) or len({bool(fields[a].active) for a in used}) > 1:
        return None
    active = bool(used) and bool(fields[next(iter(used))].active)
    read = nil + b"$0\r\n\r\n" if active else nil
    sizes = np.diff(block.offsets).tolist()
    per = {size: b"*%d\r\n%s:%d\r\n" % (size * (1 + active), read * size, size) for size in set(sizes)}
    return b"".join(map(per.__getitem__, sizes))


def count_as_expected(block: MembershipBlock, fields: Sequence[AudienceFields]) -> Counted:
    """The counts when the replies were ``expected_replies``: every membership a member, unchanged where its
    audience has an active generation."""
    size = len(block.audience_ids)
    members = np.bincount(block.audiences, minlength=size).astype(np.int64)
    active = np.array([bool(f.active) for f in fields], dtype=bool)
    return Counted(members, members * active)


def commands(block: MembershipBlock, fields: Sequence[AudienceFields], membership: Any) -> list[tuple[str, ...]]:
    """The same commands as tuples (``membership``: profile id -> key), for a client that routes them."""
    out: list[tuple[str, ...]] = []
    offsets = block.offsets.tolist()
    audiences = block.audiences.tolist()
    values = block.values.to_pylist()
    for i, profile_id in enumerate(block.profiles.to_pylist()):
        key = membership(profile_id)
        mine = [fields[a] for a in audiences[offsets[i] : offsets[i + 1]]]
        reads = [name for f in mine for name in ((f.new, f.active) if f.active else (f.new,))]
        pairs = [part for f, v in zip(mine, values[offsets[i] : offsets[i + 1]], strict=True) for part in (f.new, v)]
        out.append(("HMGET", key, *reads))
        out.append(("HSET", key, *pairs))
        dead = [f.dead for f in mine if f.dead]
        if dead:
            out.append(("HDEL", key, *dead))
    return out


def count(block: MembershipBlock, where: Layout, replies: Sequence[Any], now: float) -> Counted:
    """Members and unchanged members per audience, from the HMGET replies: a new field not set before is a
    member (set: a repeat of this snapshot); then an active field set, without expiry or expiring after
    ``now``, an unchanged one."""
    size = len(block.audience_ids)
    if not block.memberships:
        return Counted(np.zeros(size, np.int64), np.zeros(size, np.int64))
    got = itemgetter(*where.hmget.tolist())(replies)
    hmgets = (got,) if len(where.hmget) == 1 else got
    flat = np.array(list(itertools.chain.from_iterable(hmgets)), dtype=object)
    new = np.equal(flat[where.new_at], _NONE)
    audiences = block.audiences
    members = np.bincount(audiences[new], minlength=size).astype(np.int64)
    active = where.reads_active[audiences] & new
    unchanged = np.zeros(size, np.int64)
    if active.any():
        values = flat[where.new_at[active] + 1]
        alive = np.equal(values, _EMPTY)
        for i in np.flatnonzero(~alive & ~np.equal(values, _NONE)).tolist():
            alive[i] = int(values[i]) > now
        unchanged = np.bincount(audiences[active][alive], minlength=size).astype(np.int64)
    return Counted(members, unchanged)
