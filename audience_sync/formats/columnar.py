"""The columnar reader: a block of whole lines parsed by pyarrow's C++ JSON or CSV reader, checked in columns.

It answers with the block's ``MembershipBlock`` only when it can vouch that the line-by-line parsers
(``csv_rows``, ``ndjson_rows``, ``xdm``) read every line of the block the same way: the same memberships,
counters and no bad line. Otherwise it answers None and the block is read line by line, which reports each
bad line as ``file:line: reason`` — so a load's outcome never depends on which reader read a block.

Every check of the parsers is made over the block's columns: ids (not empty, at most 256 bytes, no control
character, no leading ``}``) with compute kernels; statuses, times and ``validUntil`` by the parsers' own
functions (``check_status``, ``parse_time``, ``expiry``) over each column's distinct values — an export
repeats a few. What the columns cannot show is left to the line reader: a line that is not one JSON object
starting the line (blank lines, two objects on a line, a byte-order mark), ``NaN``/``Infinity``, nesting
deeper than the JSON parser allows, bytes that are not UTF-8, a JSON key present twice; a key that a reader
finds case-insensitively under two spellings, both ``xdm:`` and plain spellings of a member, several
primary identities in a profile (their order decides), an absent key told from a null one; quotes, NUL bytes
and fields over the CSV module's limit in CSV.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from audience_sync.formats.csv_rows import CsvOptions, columns_of, find_header

if TYPE_CHECKING:  # the package imports its formats: InputOptions only for the annotations
    from audience_sync.formats import InputOptions
from audience_sync.formats.xdm import XdmOptions
from audience_sync.memberships import Ints, MembershipBlock
from audience_sync.records import MAX_ID_BYTES, InvalidField, ParseStats, check_id, check_status, expiry, parse_time

_CONTROL: Final = r"[\x00-\x1f\x7f]"
# str.strip()'s whitespace: a one-column CSV row of only these is a blank line to the CSV reader.
_BLANK: Final = (
    r"^[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]*$"
)
_MAX_DEPTH: Final = 1000  # orjson refuses nesting past 1024
_CSV_FIELD_LIMIT: Final = csv.field_size_limit()
_TIMES: Final = ("lastQualificationTime", "validUntil")


class Unsure(Exception):
    """The columnar reader cannot vouch for this block: it is read line by line."""


def parse_block(
    data: bytes,
    fmt: str,
    options: InputOptions,
    now: float,
    *,
    first: bool,
    header: tuple[str, ...] | None,
) -> MembershipBlock | None:
    """``fmt`` one of csv, ndjson, xdm; None: read the block line by line."""
    if not data or b"\0" in data or not _utf8(data):
        return None
    try:
        if fmt == "xdm":
            return _xdm(data, XdmOptions(options.identity_namespaces, options.segment_namespace), now)
        if fmt == "ndjson":
            return _records(data, options, now)
        if fmt == "csv":
            csv_options = CsvOptions(options.id_column, options.audience_column, options.audience)
            return _csv(data, csv_options, now, first, header)
    except (Unsure, pa.ArrowException, InvalidField, ValueError, KeyError):
        return None
    return None


def _utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _lines(data: bytes) -> int:
    return data.count(b"\n") + (not data.endswith(b"\n"))


# -- checks over columns ------------------------------------------------------------------------
def _require(condition: Any) -> None:
    if not condition:
        raise Unsure


def _strings(values: pa.Array) -> pa.Array:
    _require(pa.types.is_string(values.type) or pa.types.is_large_string(values.type))
    return values


def _check_ids(ids: pa.Array, *, profile: bool) -> None:
    """check_id / check_profile_id over a column: every value a string, not empty, at most 256 bytes, without
    a control character (a profile id: not starting with '}')."""
    ids = _strings(ids)
    _require(ids.null_count == 0)
    if not len(ids):
        return
    lengths = pc.binary_length(ids)
    _require(pc.min(lengths).as_py() > 0 and pc.max(lengths).as_py() <= MAX_ID_BYTES)
    _require(not pc.any(pc.match_substring_regex(ids, _CONTROL)).as_py())
    if profile:
        _require(not pc.any(pc.starts_with(ids, "}")).as_py())


def _mapped(values: pa.Array, function: Callable[[Any], Any], result: pa.DataType) -> pa.Array:
    """``function`` (a parser's check) over a column's distinct values, taken back per row; nulls stay null."""
    encoded = pc.dictionary_encode(values).combine_chunks() if isinstance(values, pa.ChunkedArray) else None
    encoded = encoded if encoded is not None else pc.dictionary_encode(values)
    mapped = pa.array([function(v) for v in encoded.dictionary.to_pylist()], result)
    return mapped.take(encoded.indices)


def _struct_child(struct: pa.StructArray, name: str) -> pa.Array | None:
    """A member of a struct column with the struct's nulls applied (None when no row has it)."""
    index = struct.type.get_field_index(name)
    return None if index < 0 else struct.flatten()[index]


def _member(struct: pa.StructArray, name: str) -> pa.Array | None:
    """``state.get(name) or state.get("xdm:" + name)`` over strings (null: absent): the plain member where it
    is a non-empty string, else the xdm: one as it is (an empty one too)."""
    plain, prefixed = _struct_child(struct, name), _struct_child(struct, "xdm:" + name)
    if plain is None:
        return None if prefixed is None else _strings(prefixed)
    plain = _strings(plain)
    truthy = pc.fill_null(pc.not_equal(plain, ""), False)
    other = pa.nulls(len(plain), pa.string()) if prefixed is None else _strings(prefixed)
    return pc.if_else(truthy, plain, other)


def _either(plain: pa.Array | None, prefixed: pa.Array | None) -> pa.Array | None:
    """xdm._get: the plain member, or the xdm: one where it is null; both: only when one is null throughout."""
    if plain is not None and prefixed is not None:
        _require(plain.null_count == len(plain) or prefixed.null_count == len(prefixed))
        return prefixed if plain.null_count == len(plain) else plain
    return plain if plain is not None else prefixed


def _get(struct: pa.StructArray, name: str) -> pa.Array | None:
    return _either(_struct_child(struct, name), _struct_child(struct, "xdm:" + name))


def _namespace(struct: pa.StructArray, name: str) -> pa.Array | None:
    """xdm._namespace over a struct: the one member named so (case-insensitively, xdm: allowed)."""
    folded = name.casefold()
    found = [f.name for f in struct.type if f.name == name or f.name.casefold() in (folded, "xdm:" + folded)]
    _require(len(found) <= 1)
    return _struct_child(struct, found[0]) if found else None


def _column(table: pa.Table, name: str) -> pa.Array | None:
    def named(n: str) -> pa.Array | None:
        return table.column(n).combine_chunks() if n in table.column_names else None

    return _either(named(name), named("xdm:" + name))


def _depth(kind: pa.DataType) -> int:
    if pa.types.is_struct(kind):
        return 1 + max((_depth(f.type) for f in kind), default=0)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return 1 + _depth(kind.value_type)
    return 0


def _floats(kind: pa.DataType) -> bool:
    if pa.types.is_struct(kind):
        return any(_floats(f.type) for f in kind)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _floats(kind.value_type)
    return bool(pa.types.is_floating(kind))


def _json_lines(data: bytes) -> int:
    """How many lines, each starting with '{' (no blank line, no byte-order mark); else Unsure."""
    text = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(text == 10)
    starts = ends[ends + 1 < len(text)] + 1
    _require(text[0] == 123 and bool((text[starts] == 123).all()))
    return len(starts) + 1


def _read_json(data: bytes, schema: pa.Schema | None) -> pa.Table:
    """One row per line, each line one object starting the line; else Unsure."""
    lines = _json_lines(data)
    parse = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    table = pa_json.read_json(
        io.BytesIO(data), read_options=pa_json.ReadOptions(use_threads=False, block_size=len(data) + 1),
        parse_options=parse,
    )  # fmt: skip
    _require(table.num_rows == lines)
    _require(1 + max((_depth(f.type) for f in table.schema), default=0) <= _MAX_DEPTH)
    # orjson refuses NaN and Infinity, which pyarrow reads as floats.
    _require(not any(_floats(f.type) for f in table.schema) or (b"NaN" not in data and b"Infinity" not in data))
    return table


# -- from rows of memberships to a block ------------------------------------------------------------
def _expiries(until: pa.Array | None, where: str) -> pa.Array | None:
    """int64 epoch seconds of validUntil values (null: none), by records.expiry."""
    if until is None:
        return None
    return _mapped(_strings(until), lambda v: None if v is None else expiry(v, where), pa.int64())


def _validate_times(values: pa.Array | None, where: str, *, empty_is_absent: bool) -> None:
    """parse_time over a column's values (null: absent; empty: absent in CSV, else a bad time)."""
    if values is not None:

        def check(v: str | None) -> float | None:
            return None if v is None or (empty_is_absent and v == "") else parse_time(v, where)

        _mapped(_strings(values), check, pa.float64())


class _Writes:
    """Per row and audience: present (a change), member, its expiry; gives the block's entries."""

    def __init__(self, rows: int, audiences: int) -> None:
        self.present = np.zeros((rows, audiences), dtype=bool)
        self.member = np.zeros((rows, audiences), dtype=bool)
        self.expires = np.zeros((rows, audiences), dtype=np.int64)
        self.has_expiry = np.zeros((rows, audiences), dtype=bool)

    def block(
        self, audience_ids: list[str], ids: pa.Array, id_rows: Ints, now: float, stats: ParseStats
    ) -> MembershipBlock:
        """Entries: per row, per id of the row (``ids``, with their rows ``id_rows`` ascending), the row's
        memberships written, audiences in column order."""
        per_row_ids = np.bincount(id_rows, minlength=len(self.present)).astype(np.int64)
        alive = self.present & self.member & ~(self.has_expiry & (self.expires <= now))
        weight = per_row_ids[:, None]
        exited = (self.present & ~self.member) * weight
        expired = (self.present & self.member & self.has_expiry & (self.expires <= now)) * weight
        rows, columns = np.nonzero(alive)  # row-major: each row's memberships, audiences in order
        writes_per_row = np.bincount(rows, minlength=len(self.present)).astype(np.int64)
        entry_rows = id_rows[writes_per_row[id_rows] > 0]
        entry_ids = ids.filter(pa.array(writes_per_row[id_rows] > 0))
        row_start = np.concatenate(([0], np.cumsum(writes_per_row)))
        sizes = writes_per_row[entry_rows]
        offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        # Each entry's memberships: its row's range, once per id of the row.
        gather = np.repeat(row_start[entry_rows] - offsets[:-1], sizes) + np.arange(offsets[-1])
        chosen_rows, chosen_columns = rows[gather], columns[gather]
        with_expiry = self.has_expiry[chosen_rows, chosen_columns]
        values = pa.array(self.expires[chosen_rows, chosen_columns], pa.int64()).cast(pa.string())
        values = pc.if_else(pa.array(with_expiry), values, "")
        return MembershipBlock(
            audience_ids,
            entry_ids,
            offsets,
            chosen_columns.astype(np.int64),
            values,
            exited.sum(axis=0).astype(np.int64),
            expired.sum(axis=0).astype(np.int64),
            stats,
        )

    def ordered(self, names: Sequence[str], tie_break: Callable[[int], list[str]]) -> tuple[list[str], list[int]]:
        """The audiences with a change, by first appearance (row, then the key order of that row's line)."""
        seen = self.present.any(axis=0)
        first = np.where(seen, self.present.argmax(axis=0), len(self.present))
        columns = [int(c) for c in np.flatnonzero(seen)]
        orders: dict[int, list[str]] = {}

        def key(column: int) -> tuple[int, int]:
            row = int(first[column])
            if row not in orders:
                orders[row] = tie_break(row) if int((first == row).sum()) > 1 else []
            order = orders[row]
            return row, order.index(names[column]) if names[column] in order else 0

        columns.sort(key=key)
        return [names[c] for c in columns], columns


# -- XDM ------------------------------------------------------------------------------------------
_XDM_SCHEMAS: dict[tuple[str, ...], pa.Schema] = {}


def _canonical(kind: pa.DataType, path: tuple[str, ...]) -> pa.DataType:
    """The explicit type of a member the reader reads: ids and times as strings (never inferred as
    timestamps), primary flags as booleans; everything else as inferred."""
    if pa.types.is_struct(kind):
        fields = []
        for f in kind:
            name = f.name.removeprefix("xdm:")
            inner = (*path, name)
            state = len(path) >= 3 and path[0] == "segmentMembership" and name in ("status", *_TIMES)
            if state or (path[:1] == ("identityMap",) and len(path) == 3 and name == "id"):
                fields.append(pa.field(f.name, pa.string()))
            elif path[:1] == ("identityMap",) and len(path) == 3 and name == "primary":
                fields.append(pa.field(f.name, pa.bool_()))
            else:
                fields.append(pa.field(f.name, _canonical(f.type, inner)))
        return pa.struct(fields)
    if pa.types.is_list(kind):
        return pa.list_(_canonical(kind.value_type, (*path, "[]")))
    return kind


def _xdm_schema(table: pa.Table) -> pa.Schema:
    fields = [
        pa.field(f.name, _canonical(f.type, (f.name.removeprefix("xdm:"),)))
        for f in table.schema
        if f.name.removeprefix("xdm:") in ("identityMap", "segmentMembership")
    ]
    return pa.schema(fields)


def _xdm_table(data: bytes, schema: pa.Schema | None) -> tuple[pa.Table, pa.Schema]:
    """The block read with an explicit schema of the members read (the last good block's); again with a
    wider one when the block brings members it did not have (new audiences, namespaces)."""
    table = _read_json(data, schema)
    wanted = _xdm_schema(table)
    current = pa.schema([table.schema.field(f.name) for f in wanted])
    if not current.equals(wanted):
        table = _read_json(data, wanted)
        _require(pa.schema([table.schema.field(f.name) for f in wanted]).equals(wanted))
    return table, wanted


def _xdm(data: bytes, options: XdmOptions, now: float) -> MembershipBlock:
    """With the last good block's schema, else (its members may be ambiguous here) the block's own."""
    cache = (*options.identity_namespaces, "|", options.segment_namespace)
    schema = _XDM_SCHEMAS.get(cache)
    if schema is not None:
        try:
            return _xdm_block(data, options, now, schema, cache)
        except (Unsure, pa.ArrowException):
            pass
    return _xdm_block(data, options, now, None, cache)


def _identities(identity_map: pa.StructArray, namespaces: tuple[str, ...]) -> tuple[pa.Array, Ints]:
    """The profile ids of each row (xdm.identities), as ids and their rows (ascending, each row's in order)."""
    rows = len(identity_map)
    if not namespaces:  # the one identity flagged primary
        ids_parts, rows_parts = [], []
        for f in identity_map.type:
            listed = _struct_child(identity_map, f.name)
            assert listed is not None
            if not (pa.types.is_list(listed.type) and pa.types.is_struct(listed.type.value_type)):
                continue  # not a list of identities: xdm._primary skips it
            items = pc.list_flatten(listed)
            parents = np.asarray(pc.list_parent_indices(listed))
            primary = _get(items, "primary")
            if primary is None:
                continue
            _require(pa.types.is_boolean(primary.type))
            flagged = pc.fill_null(primary, False)
            identity = _get(items, "id")
            ids_parts.append(pc.filter(identity, flagged) if identity is not None else pa.nulls(0, pa.string()))
            rows_parts.append(parents[np.asarray(flagged)])
            _require(identity is not None or not pc.any(flagged).as_py())
        found = np.concatenate(rows_parts) if rows_parts else np.zeros(0, np.int64)
        _require(np.array_equal(np.bincount(found, minlength=rows), np.ones(rows, np.int64)))
        ids = pa.concat_arrays([_strings(p) for p in ids_parts])
        order = np.argsort(found, kind="stable")
        ids = ids.take(pa.array(order))
        _check_ids(ids, profile=True)
        return ids, found[order].astype(np.int64)
    ids_parts, rows_parts = [], []
    for namespace in namespaces:
        listed = _namespace(identity_map, namespace)
        if listed is None:
            continue
        _require(pa.types.is_list(listed.type) and pa.types.is_struct(listed.type.value_type))
        items = pc.list_flatten(listed)
        _require(items.null_count == 0)  # a null in the list: not an object
        identity = _get(items, "id")
        _require(identity is not None or len(items) == 0)
        if identity is None:
            continue
        ids_parts.append(_strings(identity))
        rows_parts.append(np.asarray(pc.list_parent_indices(listed)))
    _require(ids_parts)
    ids = pa.concat_arrays(ids_parts)
    found = np.concatenate(rows_parts).astype(np.int64)
    _check_ids(ids, profile=True)
    order = np.argsort(found, kind="stable")  # per row: each namespace's ids in turn
    ids, found = ids.take(pa.array(order)), found[order]
    counts = np.bincount(found, minlength=rows)
    _require(counts.min(initial=1) > 0)  # a profile without any id of the namespaces: a bad line
    if counts.max(initial=0) > 1:  # the same id under two namespaces is one profile: keep the first
        texts = ids.to_pylist()
        keep = np.ones(len(texts), dtype=bool)
        start = 0
        for count in counts.tolist():
            seen: set[str] = set()
            for i in range(start, start + count):
                keep[i] = texts[i] not in seen
                seen.add(texts[i])
            start += count
        ids, found = ids.filter(pa.array(keep)), found[keep]
    return ids, found


def _line(data: bytes, row: int) -> bytes:
    start = 0
    for _ in range(row):
        start = data.index(b"\n", start) + 1
    end = data.find(b"\n", start)
    return data[start : None if end < 0 else end]


def _xdm_block(
    data: bytes, options: XdmOptions, now: float, schema: pa.Schema | None, cache: tuple[str, ...]
) -> MembershipBlock:
    table, wanted = _xdm_table(data, schema)
    rows = table.num_rows
    identity_map = _column(table, "identityMap")
    _require(identity_map is not None and pa.types.is_struct(identity_map.type) and identity_map.null_count == 0)
    assert identity_map is not None
    ids, id_rows = _identities(identity_map, options.identity_namespaces)
    segments: pa.StructArray | None = None
    membership = _column(table, "segmentMembership")
    if membership is not None:
        _require(pa.types.is_struct(membership.type))
        segments = _namespace(membership, options.segment_namespace)
        _require(segments is None or pa.types.is_struct(segments.type))
    names = [f.name for f in segments.type] if segments is not None else []
    for name in names:
        check_id(name, "audience")
    writes = _Writes(rows, len(names))
    where = f"segmentMembership.{options.segment_namespace}"
    for j, name in enumerate(names):
        assert segments is not None
        state = _struct_child(segments, name)
        assert state is not None
        if state.null_count == rows:
            continue
        _require(pa.types.is_struct(state.type))
        present = np.asarray(pc.is_valid(state))
        status = _member(state, "status")
        _require(status is not None)
        assert status is not None
        status = pc.filter(_strings(status), pa.array(present))
        _require(status.null_count == 0)
        member = _mapped(status, lambda v: check_status(v, "status"), pa.bool_())
        _validate_times(_member(state, "lastQualificationTime"), f"{where}.{name}.lastQualificationTime",
                        empty_is_absent=False)  # fmt: skip
        until = _expiries(_member(state, "validUntil"), f"{where}.{name}.validUntil")
        writes.present[:, j] = present
        writes.member[present, j] = np.asarray(member)
        if until is not None:
            writes.has_expiry[:, j] = np.asarray(pc.is_valid(until)) & present
            writes.expires[:, j] = np.asarray(pc.fill_null(until, 0))
    order, columns = writes.ordered(names, lambda row: _key_order(_line(data, row), options))
    writes.present, writes.member = writes.present[:, columns], writes.member[:, columns]
    writes.expires, writes.has_expiry = writes.expires[:, columns], writes.has_expiry[:, columns]
    stats = ParseStats(lines=rows, profiles=rows, identities=len(ids))
    block = writes.block(order, ids, id_rows, now, stats)
    _XDM_SCHEMAS[cache] = wanted  # a good block's: the next blocks are read with it
    return block


def _key_order(line: bytes, options: XdmOptions) -> list[str]:
    """The audiences of one line in the order of its JSON object."""
    body = orjson.loads(line)
    membership = body.get("segmentMembership") or body.get("xdm:segmentMembership") or {}
    folded = options.segment_namespace.casefold()
    for key, segments in membership.items():
        if (key == options.segment_namespace or key.casefold() in (folded, "xdm:" + folded)) and segments:
            return [k for k, v in segments.items() if v is not None]
    return []


# -- flat records (NDJSON) and CSV ----------------------------------------------------------------
def _flat(
    profile: pa.Array,
    audience: pa.Array,
    status: pa.Array | None,
    until: pa.Array | None,
    when: pa.Array | None,
    now: float,
    *,
    member_if_empty: bool,
) -> MembershipBlock:
    """One membership per row: profile, audience, status (null — or in CSV empty — means member),
    valid_until, event_time (in CSV empty means none)."""
    rows = len(profile)
    _check_ids(profile, profile=True)
    _check_ids(audience, profile=False)
    if status is not None:
        status = _strings(status)

        def member_of(v: str | None) -> bool:
            return True if v is None or (member_if_empty and v == "") else check_status(v, "status")

        member = np.asarray(pc.fill_null(_mapped(status, member_of, pa.bool_()), True))
    else:
        member = np.ones(rows, dtype=bool)
    expires = _expiries(until, "valid_until")
    _validate_times(when, "event_time", empty_is_absent=member_if_empty)
    encoded = pc.dictionary_encode(audience)
    dictionary = encoded.dictionary.to_pylist()
    codes = np.asarray(encoded.indices).astype(np.int64)
    first = np.full(len(dictionary), rows, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(rows))
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    writes = _Writes(rows, len(dictionary))
    writes.present[np.arange(rows), rank[codes]] = True
    writes.member[np.arange(rows), rank[codes]] = member
    if expires is not None:
        writes.has_expiry[np.arange(rows), rank[codes]] = np.asarray(pc.is_valid(expires))
        writes.expires[np.arange(rows), rank[codes]] = np.asarray(pc.fill_null(expires, 0))
    stats = ParseStats(lines=rows)
    return writes.block([dictionary[i] for i in order], profile, np.arange(rows, dtype=np.int64), now, stats)


def _records(data: bytes, options: InputOptions, now: float) -> MembershipBlock:
    id_field, audience_field = options.id_column, options.audience_column
    names = {id_field, audience_field, "status", "valid_until", "event_time"}
    _require(len(names) == 5)
    explicit = [id_field, "status", "valid_until", "event_time"]
    if options.audience is None:
        explicit.append(audience_field)
    table = _read_json(data, pa.schema([(name, pa.string()) for name in explicit]))
    if options.audience is None:
        audience = table.column(audience_field).combine_chunks()
    elif audience_field in table.column_names:  # some rows name their audience; a null one is not absent
        audience = _strings(table.column(audience_field).combine_chunks())
        _require(audience.null_count == 0)
    else:
        audience = pa.array([options.audience] * table.num_rows, pa.string())
    return _flat(
        table.column(id_field).combine_chunks(),
        audience,
        table.column("status").combine_chunks(),
        table.column("valid_until").combine_chunks(),
        table.column("event_time").combine_chunks(),
        now,
        member_if_empty=False,
    )


def _csv(data: bytes, options: CsvOptions, now: float, first: bool, header: tuple[str, ...] | None) -> MembershipBlock:
    _require(b'"' not in data)
    if header is None:
        _require(first)
        found = find_header(io.BytesIO(data[: data.find(b"\n") + 1 or len(data)]), options)
        _require(found is not None and found[0] == 1)
        assert found is not None
        row = found[1]
        data = data[data.find(b"\n") + 1 :] if b"\n" in data else b""
    else:
        row = list(header)
    columns = columns_of(row, options)
    _require(columns.problem is None)
    lines = _lines(data) if data else 0
    names = [f"c{i}" for i in range(columns.count)]
    if not lines:
        return MembershipBlock()
    table = pa_csv.read_csv(
        io.BytesIO(data),
        read_options=pa_csv.ReadOptions(column_names=names, use_threads=False, block_size=len(data) + 1),
        parse_options=pa_csv.ParseOptions(delimiter=options.delimiter, quote_char=False, ignore_empty_lines=False),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in names}, strings_can_be_null=False, null_values=[]
        ),
    )
    _require(table.num_rows == lines)
    for name in names:
        column = table.column(name)
        _require(not len(column) or pc.max(pc.binary_length(column)).as_py() <= _CSV_FIELD_LIMIT)

    def at(index: int) -> pa.Array | None:
        return table.column(names[index]).combine_chunks() if index >= 0 else None

    profile = at(columns.id_at)
    assert profile is not None
    if columns.count == 1:
        _require(not pc.any(pc.match_substring_regex(profile, _BLANK)).as_py())
    audience = at(columns.audience_at)
    if audience is None:
        audience = pa.array([options.audience] * table.num_rows, pa.string())
    return _flat(
        profile, audience, at(columns.status_at), at(columns.until_at), at(columns.time_at), now,
        member_if_empty=True,
    )  # fmt: skip
