"""The columnar reader reads a block exactly as the line-by-line parsers do, or leaves it to them.

Property: for random exports — XDM, flat NDJSON and CSV, good lines and bad — a block the columnar reader
answers for has the same memberships (the last value of each (profile, audience)), counters, audience order
and statistics as the line-by-line reading; a block with a bad line is never answered for (its errors are
the parsers'). End to end, a load with the columnar reader and one without leave the same Redis, plain or
gzip.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from audience_sync.blocks import Block, line_by_line, parse_block, text_blocks
from audience_sync.formats import Format, InputOptions, columnar, parse
from audience_sync.memberships import MembershipBlock, from_changes
from audience_sync.records import ParseStats
from audience_sync.report import ErrorReport
from audience_sync.snapshot import LoadOptions, SnapshotLoad
from audience_sync.sources import open_input
from audience_sync.store import SyncStore
from tests.audience_sync.helpers import dump, seen_by_readers, write_lines
from tests.redis_cluster import LocalCluster

NOW = 1_800_000_000.0


def either(good: list[Any], bad: list[Any]) -> Any:
    """Good values, and in half the examples bad ones too (decided once per example: else a block would nearly
    always hold a bad line)."""
    return st.shared(st.booleans(), key="spoilt").flatmap(
        lambda spoilt: st.sampled_from(good + bad if spoilt else good)
    )


ids = either(["p1", "p2", "P-3", "é4", "p 5", " ", "a" * 64], ["}bad", "", "x\x01y", "a" * 300])
audiences = either(["a", "b", "c-1"], ["", "bad\x02"])
statuses = either(["realized", "existing", "exited", "Realized", "add", "remove"], ["", "gone", None, 5])
times = either(
    ["2026-11-01T06:00:00Z", "2027-01-01", "1700000000", "1900000000", None], ["", "soon", 1.9e9, "1e12", "  "]
)


def state_of(block: MembershipBlock) -> tuple[Any, ...]:
    """What a block means for Redis: each (profile, audience)'s last value, the counters, the audience order."""
    last: dict[tuple[str, str], str] = {}
    offsets, audience_at, values = block.offsets.tolist(), block.audiences.tolist(), block.values.to_pylist()
    for i, profile_id in enumerate(block.profiles.to_pylist()):
        for m in range(offsets[i], offsets[i + 1]):
            last[(profile_id, block.audience_ids[audience_at[m]])] = values[m]
    exited = dict(zip(block.audience_ids, block.exited.tolist(), strict=True))
    expired = dict(zip(block.audience_ids, block.expired.tolist(), strict=True))
    return last, exited, expired, block.audience_ids, block.stats, [str(e) for e in block.errors]


def same_reading(data: bytes, fmt: Format, options: InputOptions, *, counted: bool = True) -> bool:
    """True when the columnar reader answered (and agreed); asserts agreement."""
    block = Block("export", fmt, 1, data, header=None)
    fast = columnar.parse_block(data, fmt, options, NOW, first=True, header=None)
    slow = line_by_line(block, options, NOW)
    if counted:
        event("read in columns" if fast is not None else "read line by line")
    if fast is None:
        return False
    assert slow.errors == [], "the columnar reader answered for a block with bad lines"
    assert state_of(fast) == state_of(slow)
    return True


@st.composite
def xdm_lines(draw: st.DrawFn) -> bytes:
    """Profiles of an export; in half the examples of an odd shape (namespaces spelt twice, ids missing,
    several or no primary identity, lines that are not profiles)."""
    odd = draw(st.booleans())
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        namespaces: dict[str, Any] = {}
        if odd:
            for namespace in draw(
                st.lists(st.sampled_from(["ECID", "CRMID", "crmid", "Email"]), max_size=2, unique=True)
            ):
                listed = [{"id": draw(ids)} for _ in range(draw(st.integers(0, 2)))]
                if listed and draw(st.booleans()):
                    listed[0]["primary"] = True
                namespaces[namespace] = listed
        else:
            namespaces["ECID"] = [{"id": draw(ids), "primary": True}]
            namespaces["CRMID"] = [{"id": draw(ids)} for _ in range(draw(st.integers(1, 2)))]
        body: dict[str, Any] = {"identityMap": namespaces}
        segments: dict[str, Any] = {}
        for audience in draw(st.lists(audiences, max_size=3, unique=True)):
            if draw(st.integers(0, 9)) == 0:
                segments[audience] = None
                continue
            state: dict[str, Any] = {}
            status = draw(statuses)
            if status is not None:
                state["status" if draw(st.integers(0, 4)) else "xdm:status"] = status
            for name in ("lastQualificationTime", "validUntil"):
                when = draw(times)
                if when is not None:
                    state[name] = when
            segments[audience] = state
        if draw(st.integers(0, 5)):
            body["segmentMembership"] = {"ups": segments}
        rows.append(orjson.dumps(body))
        if odd and draw(st.integers(0, 20)) == 0:
            rows.append(draw(st.sampled_from([b"", b"  ", b"{", b"[1]", b'{"identityMap": 1}', b"\xff"])))
    return b"\n".join(rows) + b"\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=xdm_lines(), namespaces=st.sampled_from([(), ("CRMID",), ("ECID", "CRMID")]))
def test_xdm_blocks_read_in_columns_as_line_by_line(data: bytes, namespaces: tuple[str, ...]) -> None:
    same_reading(data, Format.XDM, InputOptions(identity_namespaces=namespaces))


@st.composite
def records(draw: st.DrawFn) -> bytes:
    rows = []
    for _ in range(draw(st.integers(1, 8))):
        body: dict[str, Any] = {"profile_id": draw(ids)}
        if draw(st.integers(0, 5)):
            body["audience_id"] = draw(audiences)
        for name, values in (("status", statuses), ("valid_until", times), ("event_time", times)):
            value = draw(values)
            if value is not None or draw(st.booleans()):
                body[name] = value
        rows.append(orjson.dumps(body))
    return b"\n".join(rows) + b"\n"


@settings(max_examples=300, deadline=None)
@given(data=records(), audience=st.sampled_from([None, "vip"]))
def test_ndjson_blocks_read_in_columns_as_line_by_line(data: bytes, audience: str | None) -> None:
    same_reading(data, Format.NDJSON, InputOptions(audience=audience))


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, str | None]:
    columns = draw(st.sampled_from([["profile_id"], ["profile_id", "audience_id"], ["profile_id", "status",
                                    "valid_until", "event_time", "audience_id"]]))  # fmt: skip
    text = either(["p1", "p2", "vip", "b", "realized", "exited", "2027-01-01"], ["", " ", "x\x01", "}p"])
    rows = [",".join(columns)]
    for _ in range(draw(st.integers(1, 8))):
        width = len(columns) + (draw(st.integers(0, 40)) == 0)
        rows.append(",".join(draw(text) for _ in range(width)))
    return ("\n".join(rows) + "\n").encode(), None if "audience_id" in columns else "vip"


@settings(max_examples=300, deadline=None)
@given(file=csv_files())
def test_csv_blocks_read_in_columns_as_line_by_line(file: tuple[bytes, str | None]) -> None:
    data, audience = file
    same_reading(data, Format.CSV, InputOptions(audience=audience))


def test_a_typical_export_is_read_in_columns() -> None:
    """The columnar reader must answer for the ordinary shapes, or the property above would prove nothing."""
    xdm = b"".join(
        orjson.dumps({"identityMap": {"ECID": [{"id": f"e{i}", "primary": True}], "CRMID": [{"id": f"c{i}"}]},
                      "segmentMembership": {"ups": {"a": {"status": "realized", "validUntil": "2027-01-01"},
                                                    "b": {"status": "exited"}}}}) + b"\n"
        for i in range(5)
    )  # fmt: skip
    assert same_reading(xdm, Format.XDM, InputOptions(identity_namespaces=("CRMID",)), counted=False)
    assert same_reading(xdm, Format.XDM, InputOptions(), counted=False)
    flat = b'{"profile_id": "p1", "audience_id": "a"}\n{"profile_id": "p2", "audience_id": "b", "status": "exited"}\n'
    assert same_reading(flat, Format.NDJSON, InputOptions(), counted=False)
    assert same_reading(b"profile_id,audience_id\np1,a\np2,b\n", Format.CSV, InputOptions(), counted=False)


def test_a_bad_line_is_reported_where_it_is(tmp_path: Path) -> None:
    block = Block("export.json", Format.NDJSON, 41, b'{"profile_id": "p1", "audience_id": "a"}\n{"profile_id": 5}\n')
    assert parse_block(block, InputOptions(), NOW).errors[0].__str__() == (
        "export.json:42: profile_id: expected a string, got int"
    )


def load_state(store: SyncStore, path: Path, fast: bool, **options: Any) -> tuple[Any, ...]:
    store.client.flushall()
    options = {"batch_size": 7, **options}
    outcome = SnapshotLoad(store, LoadOptions(fast=fast, **options), ErrorReport(show=0)).run([str(path)])
    tallies = {a: (t.members, t.unchanged, t.expired, t.exited) for a, t in outcome.audiences.items()}
    hashes = {
        key: value for key, value in dump(store).items() if key.startswith(store.keys.membership("").encode()[:-2])
    }
    registry = {a: (e.code, e.generation, e.members) for a, e in store.registry_state().entries.items()}
    return hashes, registry, tallies, outcome.stats


def test_loads_with_and_without_the_columnar_reader_leave_the_same_redis(store: SyncStore, tmp_path: Path) -> None:
    lines = [
        orjson.dumps({"identityMap": {"CRMID": [{"id": f"c{i % 40}"}, {"id": f"d{i}"}]},
                      "segmentMembership": {"ups": {a: {"status": "realized" if (i + j) % 5 else "exited",
                                                        **({"validUntil": "2027-01-01"} if i % 3 else {})}
                                                    for j, a in enumerate(["a", "b", "c"][: 1 + i % 3])}}})
        for i in range(300)
    ]  # fmt: skip
    plain = write_lines(tmp_path / "export.json", lines)
    packed = tmp_path / "export.json.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    options = {"input": InputOptions(identity_namespaces=("CRMID",))}
    reference = load_state(store, plain, fast=False, **options)
    assert load_state(store, plain, fast=True, **options) == reference
    assert load_state(store, packed, fast=True, **options) == reference


@pytest.mark.cluster
def test_a_load_on_a_cluster_writes_each_master_its_profiles(
    store: SyncStore, redis_cluster: LocalCluster, tmp_path: Path
) -> None:
    """Each master's entries are encoded and sent to it (all masters at once): the same profiles as on one
    Redis, spread over the masters."""
    lines = [
        orjson.dumps({"identityMap": {"CRMID": [{"id": f"c{i}"}]},
                      "segmentMembership": {"ups": {"a": {"status": "realized"}, "b": {"status": "realized"}}}})
        for i in range(200)
    ]  # fmt: skip
    path = write_lines(tmp_path / "export.json", lines)
    options = LoadOptions(input=InputOptions(identity_namespaces=("CRMID",)), batch_size=50)
    SnapshotLoad(store, options, ErrorReport(show=0)).run([str(path)])
    expected = seen_by_readers(store)
    redis_cluster.flushall()
    cluster = SyncStore.from_url(redis_cluster.url)
    try:
        outcome = SnapshotLoad(cluster, options, ErrorReport(show=0)).run([str(path)])
        assert seen_by_readers(cluster) == expected
        assert {a: t.members for a, t in outcome.audiences.items()} == {"a": 200, "b": 200}
        assert all(redis_cluster.client(node.port).dbsize() > 0 for node in redis_cluster.primaries())
    finally:
        cluster.close()


@st.composite
def quoted_csv(draw: st.DrawFn) -> bytes:
    """CSV with quoted fields (commas, doubled quotes, line breaks inside), blank lines, bad rows."""
    field = st.sampled_from(["p1", "p2", "vip", "exited", '"q,1"', '"a""b"', '"line\nbreak"', '"open', "", "x\x01"])
    rows = ["profile_id,audience_id"]
    for _ in range(draw(st.integers(1, 12))):
        rows.append(",".join(draw(field) for _ in range(draw(st.sampled_from([2, 2, 2, 1, 3])))))
        if draw(st.integers(0, 8)) == 0:
            rows.append("")
    return ("\n".join(rows) + "\n").encode()


def read_whole_and_in_blocks(path: Path, fmt: Format, options: InputOptions, size: int) -> None:
    """Blocks of any size, columnar or line by line: the memberships, counters and errors (``file:line:
    reason``, in order) of the whole file read line by line by the parsers, as before blocks."""
    with open_input(str(path), fmt) as opened:
        whole_stats = ParseStats()
        whole = from_changes(parse(opened.lines, str(path), fmt, options, whole_stats), NOW)
        whole.stats = whole_stats
    for fast in (True, False):
        with open_input(str(path), fmt) as opened:
            assert opened.stream is not None
            parsed = [parse_block(b, options, NOW, fast=fast)
                      for b in text_blocks(opened.stream, str(path), fmt, options, size)]  # fmt: skip
        assert [str(e) for p in parsed for e in p.errors] == [str(e) for e in whole.errors]
        stats = ParseStats()
        merged: dict[tuple[str, str], str] = {}
        exited: dict[str, int] = {}
        for p in parsed:
            stats.add(p.stats)
            merged.update(state_of(p)[0])
            for audience, count in state_of(p)[1].items():
                exited[audience] = exited.get(audience, 0) + count
        assert stats == whole.stats
        assert merged == state_of(whole)[0]
        assert {a: n for a, n in exited.items() if n} == {a: n for a, n in state_of(whole)[1].items() if n}


SLOW = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


@settings(max_examples=60, deadline=None, suppress_health_check=SLOW)
@given(data=xdm_lines(), compressed=st.booleans(), size=st.sampled_from([64, 300, 4096]))
def test_an_export_read_in_blocks_is_read_as_a_whole(tmp_path: Path, data: bytes, compressed: bool, size: int) -> None:
    path = tmp_path / ("export.json.gz" if compressed else "export.json")
    path.write_bytes(gzip.compress(data) if compressed else data)
    read_whole_and_in_blocks(path, Format.XDM, InputOptions(identity_namespaces=("CRMID",)), size)


@settings(max_examples=60, deadline=None, suppress_health_check=SLOW)
@given(data=quoted_csv(), compressed=st.booleans(), size=st.sampled_from([16, 64, 4096]))
def test_a_csv_file_read_in_blocks_is_read_as_a_whole(tmp_path: Path, data: bytes, compressed: bool, size: int) -> None:
    path = tmp_path / ("members.csv.gz" if compressed else "members.csv")
    path.write_bytes(gzip.compress(data) if compressed else data)
    read_whole_and_in_blocks(path, Format.CSV, InputOptions(), size)
